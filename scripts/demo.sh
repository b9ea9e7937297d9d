#!/usr/bin/env bash
# Builds amp and tunes the example whose activations carry outliers (uniform int8 loses ~35 points of top-1)
# on the reference backend: no phone and no QNN SDK needed. The chosen config is then measured again on
# Qualcomm's HTP emulator (libQnnHtp.so from the onnxruntime-qnn wheel, fetched with pip when python3 has
# it; without it the run says why it was not verified). Prints the choice and writes the pareto curve, the
# report (with phase 3's Convert-reduction table, priced by estimate on this backend) and QNN-ready
# encodings under amp-results/digits_outlier/.
set -euo pipefail
cd "$(dirname "$0")/.."
# amp-host and the agent it starts for --device local (the default)
cargo build --release -p amp-host -p amp-device
bash scripts/fetch-qnn-runtime.sh || echo "HTP emulator not fetched: the chosen config will not be verified on HTP"
ex=examples/digits_outlier
out=amp-results/digits_outlier
./target/release/amp-host tune --model "$ex/model.onnx" --data "$ex/val.npz" --allowed-drop 0.01 --phase3 --results "$out"
./target/release/amp-host export --results "$out" --out "$out/encodings.json"
./target/release/amp-host eval --model "$ex/model.onnx" --data "$ex/val.npz" --encodings "$out/encodings.json"
echo
cat "$out/report.md"
echo
echo "pareto curve: $out/pareto.html"
