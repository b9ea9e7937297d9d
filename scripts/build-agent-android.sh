#!/usr/bin/env bash
# Builds amp-agent for Android phones (arm64-v8a) with the NDK, for `amp-host tune --device adb:SERIAL`.
# Needs: the Android NDK (ANDROID_NDK_HOME), `cargo install cargo-ndk`, `rustup target add aarch64-linux-android`.
# No NDK is reachable from amp's CI machines, so this script is for users; it is not run in CI.
#
# Then:  AMP_AGENT_DEVICE=target/aarch64-linux-android/release/amp-agent \
#        amp-host tune --model m.onnx --data d.npz --device adb:SERIAL --backend htp --qnn-lib $QNN_SDK_ROOT/lib/aarch64-android
# and put the Skel library for your SoC (hexagon-v<NN>/unsigned/libQnnHtpV<NN>Skel.so) into the same --qnn-lib folder
# beside libQnnHtp.so, libQnnHtpPrepare.so and libQnnHtpV<NN>Stub.so: amp pushes every .so in it.
set -euo pipefail
cd "$(dirname "$0")/.."
: "${ANDROID_NDK_HOME:?set ANDROID_NDK_HOME to your Android NDK}"
command -v cargo-ndk >/dev/null || { echo "install cargo-ndk: cargo install cargo-ndk" >&2; exit 1; }
cargo ndk -t arm64-v8a -P 31 build --release -p amp-device --bin amp-agent
echo "built target/aarch64-linux-android/release/amp-agent"
