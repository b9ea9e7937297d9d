#!/usr/bin/env bash
# The project's test command: fetches Qualcomm's HTP emulator library (pip, from the onnxruntime-qnn
# wheel), builds everything and runs every test: unit tests, the onnxruntime fixtures, the QNN tests against
# the real libQnnHtp.so, and the binaries end to end. Needs the Rust toolchain and python3 with pip.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/fetch-qnn-runtime.sh
cargo build --workspace --all-targets
cargo test --workspace --no-fail-fast
