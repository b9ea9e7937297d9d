#!/usr/bin/env bash
# A Python at .venv/bin/python (git-ignored) for the tests that run Python the way users do: numpy for the
# metric commands; onnx, onnxruntime and the onnxruntime-qnn wheel (the one scripts/fetch-qnn-runtime.sh
# downloads, run it first) for the QDQ exports on onnxruntime's CPU and QNN execution providers. A venv
# where python3 can make one; otherwise (Debian without python3-venv) the packages installed with pip into
# .venv/site and a .venv/bin/python that puts them on the path. Idempotent: does nothing when
# .venv/bin/python already imports them.
set -euo pipefail
cd "$(dirname "$0")/.."
check='import numpy, onnx, onnxruntime, onnxruntime_qnn'
if .venv/bin/python -c "$check" 2>/dev/null; then
    exit 0
fi
wheel=$(ls "${QNN_RUNTIME_DIR:-qnn-runtime}"/download/onnxruntime_qnn-2.7.0-*.whl 2>/dev/null | head -1)
if [ -z "$wheel" ]; then
    echo "no onnxruntime-qnn wheel: run scripts/fetch-qnn-runtime.sh first" >&2
    exit 1
fi
pkgs=("numpy>=1.24,<3" "onnx==1.23.2" "onnxruntime==1.32.0" "$wheel")
if { [ -x .venv/bin/pip ] || { rm -rf .venv && python3 -m venv .venv 2>/dev/null && [ -x .venv/bin/pip ]; }; }; then
    .venv/bin/python -m pip install --quiet --disable-pip-version-check "${pkgs[@]}"
else
    rm -rf .venv
    python3 -m pip install --quiet --disable-pip-version-check --target .venv/site "${pkgs[@]}"
    mkdir -p .venv/bin
    printf '#!/bin/sh\nPYTHONPATH="%s/.venv/site${PYTHONPATH:+:$PYTHONPATH}" exec python3 "$@"\n' "$PWD" \
        > .venv/bin/python
    chmod +x .venv/bin/python
fi
.venv/bin/python -c "$check; print('numpy', numpy.__version__, 'onnxruntime', onnxruntime.__version__, 'in .venv')"
