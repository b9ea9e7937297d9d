#!/usr/bin/env python3
"""Checks that a change of amp's code leaves its answers alone: tunes every example with the amp-host of an
earlier commit and with the current one, and compares everything but timings (pareto points, phase-1
sensitivities, the chosen config and the exported encodings).

    python3 scripts/compare_results.py BASE_REV [--new REV] [--htp] [EXAMPLE ...]

BASE_REV (and REV with --new; else the working tree) is built in a git worktree under target/compare/, with
a target folder of its own, so the builds do not disturb each other or the working tree. Without --htp the reference backend runs everything; with --htp phases 0 and 2 also run
on the HTP emulator (phase 1 on the reference backend, as `--phase1-backend ref`), which needs
`bash scripts/fetch-qnn-runtime.sh`. Exit 0 when every example gives the same answers, 1 otherwise.
"""
import json
import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
EXAMPLES = ["digits", "digits_outlier", "mnist_mbv", "textori"]
# fields that measure time, not answers
TIMING = {"seconds", "latency_us", "latency", "samples_per_s", "elapsed"}
COMPARED = ["pareto.json", "sensitivity.json", "config.json", "encodings.json"]


def sh(cmd, **kw):
    print("+", " ".join(cmd), flush=True)
    subprocess.run(cmd, check=True, **kw)


def build(rev, label):
    """amp-host and amp-agent of `rev` (None: the working tree); returns the folder holding them."""
    if rev is None:
        sh(["cargo", "build", "--release", "-q", "-p", "amp-host", "-p", "amp-device"], cwd=ROOT)
        return os.path.join(ROOT, "target", "release")
    tree = os.path.join(ROOT, "target", "compare", label)
    if os.path.isdir(tree):
        sh(["git", "-C", tree, "checkout", "-q", "--detach", rev])
    else:
        sh(["git", "-C", ROOT, "worktree", "add", "-f", "--detach", tree, rev])
    target = os.path.join(ROOT, "target", "compare", f"target-{label}")
    sh(["cargo", "build", "--release", "-q", "-p", "amp-host", "-p", "amp-device", "--target-dir", target],
       cwd=tree)
    return os.path.join(target, "release")


def strip(v):
    if isinstance(v, dict):
        return {k: strip(x) for k, x in v.items() if k not in TIMING}
    if isinstance(v, list):
        return [strip(x) for x in v]
    return v


def tune(bindir, name, out, htp):
    ex = os.path.join(ROOT, "examples", name)
    cmd = [os.path.join(bindir, "amp-host"), "tune", "--model", os.path.join(ex, "model.onnx"),
           "--data", os.path.join(ex, "val.npz"), "--allowed-drop", "0.01", "--results", out, "--fresh"]
    if htp:
        cmd += ["--backend", "htp", "--phase1-backend", "ref"]
    env = dict(os.environ, AMP_AGENT=os.path.join(bindir, "amp-agent"))
    sh(cmd, env=env, stdout=subprocess.DEVNULL)
    sh([os.path.join(bindir, "amp-host"), "export", "--results", out, "--out", os.path.join(out, "encodings.json")],
       env=env, stdout=subprocess.DEVNULL)


def main():
    args = sys.argv[1:]
    if not args or args[0].startswith("-"):
        print(__doc__)
        return 2
    base, rest = args[0], args[1:]
    new_rev = None
    if "--new" in rest:
        k = rest.index("--new")
        new_rev = rest[k + 1]
        del rest[k:k + 2]
    htp = "--htp" in rest
    names = [a for a in rest if not a.startswith("-")] or EXAMPLES
    old, new = build(base, "base"), build(new_rev, "new")
    work = os.path.join(ROOT, "target", "compare", "results")
    bad = 0
    for name in names:
        dirs = {}
        for label, bindir in (("base", old), ("now", new)):
            dirs[label] = os.path.join(work, f"{name}-{'htp' if htp else 'ref'}-{label}")
            tune(bindir, name, dirs[label], htp)
        for f in COMPARED:
            a, b = (strip(json.load(open(os.path.join(dirs[k], f)))) for k in ("base", "now"))
            same = a == b
            bad += not same
            print(f"{name:>15} {f:<17} {'same' if same else 'DIFFERENT'}", flush=True)
    print("every answer is the same" if not bad else f"{bad} files differ")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
