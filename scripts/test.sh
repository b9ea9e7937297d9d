#!/usr/bin/env bash
# The project's test command: builds everything and runs every test (unit, onnxruntime fixtures, the
# amp-host binary on bad input). Needs only the Rust toolchain; the fixtures it reads are committed.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --workspace --all-targets
cargo test --workspace --no-fail-fast
