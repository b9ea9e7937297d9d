#!/usr/bin/env bash
# Builds amp and evaluates the MobileNet-style example at FP32 and at each uniform precision on the
# reference backend (no phone, no QNN SDK needed).
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release -p amp-host
model=examples/mnist_mbv/model.onnx
data=examples/mnist_mbv/val.npz
./target/release/amp-host info --model "$model"
for p in fp32 a8w8 a16w8 a16w16; do
    echo
    ./target/release/amp-host eval --model "$model" --data "$data" --precision "$p"
done
