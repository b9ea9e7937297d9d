#!/usr/bin/env bash
# Fetches Qualcomm's HTP runtime for x86_64 Linux (HTP emulation) from the onnxruntime-qnn 2.7.0 wheel on
# PyPI and extracts libQnnHtp.so and the three C++ runtime libraries it links into qnn-runtime/lib
# (git-ignored; never commit them: they are Qualcomm's, under the license shipped in the wheel).
# Idempotent: does nothing when the files are already there with the expected checksums.
#
# Users with the QAIRT SDK set QNN_SDK_ROOT (or QNN_LIB_DIR / --qnn-lib) instead.
set -euo pipefail
cd "$(dirname "$0")/.."
dest=${QNN_RUNTIME_DIR:-qnn-runtime}
lib="$dest/lib"
wheel_sha=c56c01562b8534fe8980cfea4601408d950c065f8251fb862ce82101c52c9849
sums="66fbcc1a97b3ca186c0170123e03978f2351222d59b2e9ceb0202e4a9b0116c0  libQnnHtp.so
46cee8e5f62e9b4a79b863b058879c5e9d4f41841650841df6f6669ebef2e2e2  libc++-71bc274c.so.1.0
2cb6d3e6acc815575d5a76acb45f99ae4ed5a4fcc04febaa8cd8981e07b89a47  libc++abi-0539aa51.so.1.0
a00822cc6221850754a491cbafa2b2e2fefac06f61f108cc8e80f0869fe5f724  libunwind-6b740a46.so.1.0"

if (cd "$lib" 2>/dev/null && echo "$sums" | sha256sum --quiet -c - 2>/dev/null); then
    echo "QNN runtime already in $lib"
    exit 0
fi

mkdir -p "$dest/download" "$lib"
whl="$dest/download/onnxruntime_qnn-2.7.0-cp311-cp311-manylinux_2_35_x86_64.whl"
if [ ! -f "$whl" ] || ! echo "$wheel_sha  $whl" | sha256sum --quiet -c - 2>/dev/null; then
    python3 -m pip download --no-deps --quiet onnxruntime-qnn==2.7.0 \
        --python-version 3.11 --platform manylinux_2_35_x86_64 --only-binary=:all: -d "$dest/download"
fi
echo "$wheel_sha  $whl" | sha256sum --quiet -c - || { echo "checksum mismatch for $whl" >&2; exit 1; }

python3 - "$whl" "$lib" <<'PY'
import os, sys, zipfile
whl, lib = sys.argv[1], sys.argv[2]
want = {"onnxruntime_qnn/libQnnHtp.so", "onnxruntime_qnn.libs/libc++-71bc274c.so.1.0",
        "onnxruntime_qnn.libs/libc++abi-0539aa51.so.1.0", "onnxruntime_qnn.libs/libunwind-6b740a46.so.1.0"}
with zipfile.ZipFile(whl) as z:
    for name in want:
        with z.open(name) as src, open(os.path.join(lib, os.path.basename(name)), "wb") as dst:
            dst.write(src.read())
PY
(cd "$lib" && echo "$sums" | sha256sum --quiet -c -) || { echo "extracted libraries do not match their checksums" >&2; exit 1; }
echo "QNN runtime extracted to $lib"
