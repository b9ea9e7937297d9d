#!/usr/bin/env bash
# The project's test command: fetches Qualcomm's HTP emulator library (pip, from the onnxruntime-qnn
# wheel), builds everything and runs every test: unit tests, the onnxruntime fixtures, the QNN tests against
# the real libQnnHtp.so, and the binaries end to end (adb through Debian's client). Needs the Rust
# toolchain, python3 with pip, and apt for adb when it is missing.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/fetch-qnn-runtime.sh
# a Python with numpy for the metric-command tests (.venv, git-ignored)
bash scripts/python-env.sh
# Debian's adb client drives the adb tests (against amp's adbd stand-in; no phone needed)
if ! command -v adb >/dev/null; then
    if [ "$(id -u)" = 0 ]; then
        apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq adb >/dev/null
    else
        sudo apt-get update -qq && sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -qq adb >/dev/null
    fi
fi
# the agent as it runs on an ARM device, for the emulated adb test (Debian's cross gcc and qemu-user)
bash scripts/build-agent-arm64.sh --emulator
cargo build --workspace --all-targets
cargo test --workspace --no-fail-fast
