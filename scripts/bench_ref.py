#!/usr/bin/env python3
"""Reference backend throughput beside onnxruntime FP32, measured in one run on the same model, data,
batch size and thread count (1). Prints samples/s and ratios.

    python3 -m venv /tmp/amp-py && /tmp/amp-py/bin/pip install numpy onnxruntime
    cargo build --release -p amp-host
    /tmp/amp-py/bin/python scripts/bench_ref.py [examples/mnist_mbv] [--batch 32] [--repeat 3]

Targets (issue 2): reference FP32 >= 0.5x onnxruntime FP32; reference a8w8 >= 0.4x onnxruntime FP32.
"""
import argparse
import json
import os
import subprocess
import time

import numpy as np
import onnxruntime as ort

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def ort_rate(model, x, batch, repeat):
    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    so.inter_op_num_threads = 1
    sess = ort.InferenceSession(model, so, providers=["CPUExecutionProvider"])
    name = sess.get_inputs()[0].name
    sess.run(None, {name: x[:batch]})
    best = 0.0
    for _ in range(repeat):
        t = time.perf_counter()
        for i in range(0, len(x), batch):
            sess.run(None, {name: x[i:i + batch]})
        best = max(best, len(x) / (time.perf_counter() - t))
    return best


def amp_rate(model, data, precision, batch, repeat):
    exe = os.path.join(ROOT, "target", "release", "amp-host")
    best = 0.0
    for _ in range(repeat + 1):  # the first run also fills the calibration cache
        out = subprocess.run([exe, "eval", "--model", model, "--data", data, "--precision", precision,
                              "--batch", str(batch), "--json", "--cache", "/tmp/amp-bench-cache"],
                             check=True, capture_output=True, text=True).stdout
        best = max(best, json.loads(out)["samples_per_s"])
    return best


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("example", nargs="*", default=["examples/mnist_mbv", "examples/textori"])
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--repeat", type=int, default=3)
    a = ap.parse_args()
    for ex in a.example:
        model = os.path.join(ex, "model.onnx")
        data = os.path.join(ex, "val.npz")
        x = np.load(data)["inputs"]
        base = ort_rate(model, x, a.batch, a.repeat)
        print(f"{ex}: batch {a.batch}, 1 thread, {len(x)} samples")
        print(f"  onnxruntime fp32   {base:10.1f} samples/s   1.00x")
        for p in ("fp32", "a8w8", "a16w8", "a16w16"):
            r = amp_rate(model, data, p, a.batch, a.repeat)
            print(f"  amp ref {p:<10} {r:10.1f} samples/s   {r / base:.2f}x")


if __name__ == "__main__":
    main()
