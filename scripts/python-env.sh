#!/usr/bin/env bash
# A Python with numpy at .venv/bin/python (git-ignored), for the tests that run metric commands the way users
# write them. A venv where python3 can make one; otherwise (Debian without python3-venv) numpy installed
# with pip into .venv/site and a .venv/bin/python that puts it on the path. Idempotent: does nothing when
# .venv/bin/python already imports numpy.
set -euo pipefail
cd "$(dirname "$0")/.."
if .venv/bin/python -c "import numpy" 2>/dev/null; then
    exit 0
fi
rm -rf .venv
if python3 -m venv .venv 2>/dev/null && [ -x .venv/bin/pip ]; then
    .venv/bin/python -m pip install --quiet --disable-pip-version-check "numpy>=1.24,<3"
else
    rm -rf .venv
    python3 -m pip install --quiet --disable-pip-version-check --target .venv/site "numpy>=1.24,<3"
    mkdir -p .venv/bin
    printf '#!/bin/sh\nPYTHONPATH="%s/.venv/site${PYTHONPATH:+:$PYTHONPATH}" exec python3 "$@"\n' "$PWD" \
        > .venv/bin/python
    chmod +x .venv/bin/python
fi
.venv/bin/python -c "import numpy; print('numpy', numpy.__version__, 'in .venv')"
