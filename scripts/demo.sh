#!/usr/bin/env bash
# Builds amp and tunes the example whose activations carry outliers (uniform int8 loses ~20 points of top-1)
# on the reference backend: no phone and no QNN SDK needed. Prints the choice and writes the pareto curve,
# the report and QNN-ready encodings under amp-results/digits_outlier/.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release -p amp-host
ex=examples/digits_outlier
out=amp-results/digits_outlier
./target/release/amp-host tune --model "$ex/model.onnx" --data "$ex/val.npz" --allowed-drop 0.01 --results "$out"
./target/release/amp-host export --results "$out" --out "$out/encodings.json"
./target/release/amp-host eval --model "$ex/model.onnx" --data "$ex/val.npz" --encodings "$out/encodings.json"
echo
cat "$out/report.md"
echo
echo "pareto curve: $out/pareto.html"
