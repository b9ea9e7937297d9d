#!/usr/bin/env python3
"""A whole tune, timed: the full pareto curve (`--allowed-drop none --search bruteforce`) on the reference
backend, for this build and (with --vs) an older one, in one run of this script. Prints wall time, peak
memory and evaluations per phase of each, and the ratio.

    cargo build --release -p amp-host -p amp-device
    git worktree add /tmp/amp-old <commit>
    (cd /tmp/amp-old && CARGO_TARGET_DIR=/tmp/amp-old/target cargo build --release -p amp-host -p amp-device)
    python3 scripts/bench_tune.py [examples/mnist_mbv ...] --vs /tmp/amp-old/target/release/amp-host [--runs 2]

Each run starts from an empty results folder (no journal to resume from) and the builds alternate, so both
see the same machine state. Each build runs the amp-agent built beside it (`--device local`). Peak memory is
`/usr/bin/time -v`'s maximum resident set size: the largest of amp-host and the agent it starts.
"""
import argparse
import json
import os
import re
import statistics
import subprocess
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def tune(exe, example, extra):
    """One fresh tune: (wall seconds, peak RSS in MB, [(phase, evaluations, seconds)], its answer)."""
    with tempfile.TemporaryDirectory(prefix="amp-bench-tune-") as d:
        cmd = ["/usr/bin/time", "-v", exe, "tune", "--model", os.path.join(example, "model.onnx"),
               "--data", os.path.join(example, "val.npz"), "--device", "local", "--allowed-drop", "none",
               "--search", "bruteforce", "--results", d, "--json", "--quiet"] + extra
        env = dict(os.environ, AMP_AGENT=os.path.join(os.path.dirname(exe), "amp-agent"))
        p = subprocess.run(cmd, capture_output=True, text=True, env=env)
        if p.returncode != 0:
            raise SystemExit(f"{' '.join(cmd)} failed ({p.returncode}):\n{p.stderr[-2000:]}")
        out = json.loads(p.stdout)
        rss = re.search(r"Maximum resident set size \(kbytes\): (\d+)", p.stderr)
        phases = [(i, ph["evaluations"], ph["seconds"]) for i, ph in enumerate(out["phases"])]
        # what the tune answered, to check that both builds answer the same
        answer = (out["uniform"], out["chosen"], out["pareto_points"])
        return out["seconds"], int(rss.group(1)) / 1024 if rss else float("nan"), phases, answer


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("example", nargs="*", default=["examples/mnist_mbv"])
    ap.add_argument("--vs", metavar="AMP_HOST", help="an older amp-host build, measured in the same run")
    ap.add_argument("--runs", type=int, default=1)
    ap.add_argument("--extra", default="", help="more tune flags, e.g. \"--calib-samples 64\"")
    a = ap.parse_args()
    this = os.path.join(ROOT, "target", "release", "amp-host")
    builds = [("this build", this)] + ([("--vs build", a.vs)] if a.vs else [])
    for ex in a.example:
        walls = {name: [] for name, _ in builds}
        answers = {}
        print(f"{ex}: full curve, --search bruteforce, {a.runs} run(s) each")
        for run in range(a.runs):
            for name, exe in builds:
                wall, rss, phases, answer = tune(exe, ex, a.extra.split())
                walls[name].append(wall)
                answers.setdefault(name, answer)
                per = ", ".join(f"phase {p} {n} in {s:.1f} s" for p, n, s in phases)
                print(f"  run {run + 1} {name:<10} {wall:7.1f} s  peak {rss:6.0f} MB  evaluations: {per}")
        if a.vs:
            new, old = statistics.median(walls["this build"]), statistics.median(walls["--vs build"])
            print(f"  median: this build {new:.1f} s, --vs build {old:.1f} s: {old / new:.2f}x faster")
            same = answers["this build"] == answers["--vs build"]
            print("  both builds chose the same config with the same scores and curve" if same else
                  f"  the builds' answers DIFFER:\n    this build {answers['this build']}\n"
                  f"    --vs build {answers['--vs build']}")


if __name__ == "__main__":
    main()
