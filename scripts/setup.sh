#!/usr/bin/env bash
# Create .venv (if missing) and install mlx-persona with its test tools.
# Idempotent: re-running only installs what changed.
# EXTRAS=dev (the default) adds the test tools; EXTRAS= (empty) installs the package alone, as
# `make demo` does (the test tools are another ~15 s of install it does not need).
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-python3}"
VENV="${VENV:-.venv}"
EXTRAS="${EXTRAS-dev}"

if [ ! -x "$VENV/bin/python" ]; then
    "$PYTHON" -m venv "$VENV"
fi
PIP=("$VENV/bin/python" -m pip --disable-pip-version-check -q)
"${PIP[@]}" install --upgrade pip

if [ "$(uname -s)" = "Linux" ]; then
    # sentence-transformers needs torch; a plain `pip install torch` on Linux pulls a multi-GB
    # CUDA build. The pinned CPU build installs first so nothing else asks for another.
    if ! "$VENV/bin/python" -c "import torch" 2>/dev/null; then
        "${PIP[@]}" install "torch==2.13.0"
    fi
fi
"${PIP[@]}" install -e ".${EXTRAS:+[$EXTRAS]}"
echo "mlx-persona installed in $VENV"
