#!/usr/bin/env python3
"""Reference backend throughput beside onnxruntime FP32, measured in one run on the same model, data,
batch size and thread count (1). Prints samples/s and ratios.

    python3 -m venv /tmp/amp-py && /tmp/amp-py/bin/pip install numpy onnxruntime
    cargo build --release -p amp-host
    /tmp/amp-py/bin/python scripts/bench_ref.py [examples/mnist_mbv] [--batch 32] [--iters 10] [--no-vnni]
        [--vs OLD_AMP_HOST]

--no-vnni adds a8w8 with the int8 GEMM turned off (AMP_REFERENCE_NO_VNNI), the path an x86 CPU without VNNI
takes, so one machine measures both.

--vs measures another amp-host build (an older commit, built in a worktree) in the same run, beside this one:

    git worktree add /tmp/amp-old <commit>
    (cd /tmp/amp-old && CARGO_TARGET_DIR=/tmp/amp-old/target cargo build --release -p amp-host)
    /tmp/amp-py/bin/python scripts/bench_ref.py --vs /tmp/amp-old/target/release/amp-host

Targets (issue 2): reference FP32 >= 0.5x onnxruntime FP32; reference a8w8 >= 0.4x onnxruntime FP32.
"""
import argparse
import hashlib
import json
import os
import subprocess
import time

import numpy as np
import onnxruntime as ort

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def ort_rate(model, x, batch, warmup, iters):
    """onnxruntime samples/s: the first `batch` samples, median of `iters` timed runs after `warmup`."""
    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    so.inter_op_num_threads = 1
    sess = ort.InferenceSession(model, so, providers=["CPUExecutionProvider"])
    name = sess.get_inputs()[0].name
    xb = x[:batch]
    for _ in range(warmup):
        sess.run(None, {name: xb})
    t = time.perf_counter()
    sess.run(None, {name: xb})
    # at least `iters` runs and about a second of them: a small model's run is a fraction of a millisecond
    iters = max(iters, int(1.0 / max(time.perf_counter() - t, 1e-6)))
    times = []
    for _ in range(iters):
        t = time.perf_counter()
        sess.run(None, {name: xb})
        times.append(time.perf_counter() - t)
    return len(xb) / float(np.median(times)), iters


def amp_rate(model, data, precision, batch, warmup, iters, no_vnni=False, exe=None):
    """amp's reference backend, measured the same way by `amp-host bench` (one thread)."""
    env = dict(os.environ, AMP_REFERENCE_NO_VNNI="1") if no_vnni else None
    exe = exe or os.path.join(ROOT, "target", "release", "amp-host")
    cache = "/tmp/amp-bench-cache-" + hashlib.sha1(os.path.realpath(exe).encode()).hexdigest()[:8]
    out = subprocess.run([exe, "bench", "--backend", "ref", "--model", model, "--data", data,
                          "--precision", precision, "--batch", str(batch), "--warmup", str(warmup),
                          "--iters", str(iters), "--json", "--cache", cache],
                         check=True, capture_output=True, text=True, env=env).stdout
    o = json.loads(out)
    return o["batch"] / (o["wall_us"]["median"] * 1e-6)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("example", nargs="*", default=["examples/mnist_mbv", "examples/textori"])
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--iters", type=int, default=10)
    ap.add_argument("--no-vnni", action="store_true", help="also a8w8 without the int8 GEMM")
    ap.add_argument("--vs", metavar="AMP_HOST", help="another amp-host build, measured beside this one")
    a = ap.parse_args()
    for ex in a.example:
        model = os.path.join(ex, "model.onnx")
        data = os.path.join(ex, "val.npz")
        x = np.load(data)["inputs"]
        base, iters = ort_rate(model, x, a.batch, a.warmup, a.iters)
        print(f"{ex}: batch {a.batch}, 1 thread, median of {iters} runs after {a.warmup} warm-up runs")
        print(f"  onnxruntime fp32   {base:10.1f} samples/s   1.00x")
        for p in ("fp32", "a8w8", "a16w8", "a16w16"):
            r = amp_rate(model, data, p, a.batch, a.warmup, iters)
            line = f"  amp ref {p:<10} {r:10.1f} samples/s   {r / base:.2f}x"
            if a.vs:
                old = amp_rate(model, data, p, a.batch, a.warmup, iters, exe=a.vs)
                line += f"   (--vs build {old:8.1f} samples/s, {old / base:.2f}x; this one {r / old:.2f}x it)"
            print(line)
        if a.no_vnni:
            r = amp_rate(model, data, "a8w8", a.batch, a.warmup, iters, no_vnni=True)
            print(f"  amp ref a8w8 no-VNNI {r:6.1f} samples/s   {r / base:.2f}x")


if __name__ == "__main__":
    main()
