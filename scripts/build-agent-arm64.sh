#!/usr/bin/env bash
# Builds amp-agent for aarch64 Linux (Qualcomm Linux boards: RB3 Gen 2, QCS6490/QCS8550 kits) with
# Debian's cross toolchain, installing what it needs (gcc-aarch64-linux-gnu, libc6-dev-arm64-cross; with
# --emulator also qemu-user, which runs the build on this machine) and the Rust target.
#
# Output: target/aarch64-unknown-linux-gnu/release/amp-agent. On the board, push it with the QAIRT SDK's
# libraries for the board's arch (lib/aarch64-oe-linux-gcc11.2: libQnnHtp.so, libQnnHtpPrepare.so,
# libQnnHtpV<NN>Stub.so; lib/hexagon-v<NN>/unsigned/libQnnHtpV<NN>Skel.so) in one folder, and run it with
# LD_LIBRARY_PATH and ADSP_LIBRARY_PATH set to that folder. Through adb, amp-host does all of that:
#   AMP_AGENT_DEVICE=target/aarch64-unknown-linux-gnu/release/amp-agent \
#   amp-host tune --model m.onnx --data d.npz --device adb:SERIAL --backend htp --qnn-lib FOLDER
set -euo pipefail
cd "$(dirname "$0")/.."
need=(gcc-aarch64-linux-gnu libc6-dev-arm64-cross)
[ "${1:-}" = --emulator ] && need+=(qemu-user)
missing=()
for p in "${need[@]}"; do
    dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
    sudo=""
    [ "$(id -u)" = 0 ] || sudo=sudo
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}" >/dev/null
fi
rustup target list --installed | grep -qx aarch64-unknown-linux-gnu ||
    rustup target add aarch64-unknown-linux-gnu
export CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_LINKER=aarch64-linux-gnu-gcc
export CC_aarch64_unknown_linux_gnu=aarch64-linux-gnu-gcc
export AR_aarch64_unknown_linux_gnu=aarch64-linux-gnu-ar
cargo build --release --target aarch64-unknown-linux-gnu -p amp-device --bin amp-agent
echo "built target/aarch64-unknown-linux-gnu/release/amp-agent"
