#!/usr/bin/env bash
# Create .venv (if missing) and install mlx-persona with its test tools.
# Idempotent: re-running only installs what changed.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-python3}"
VENV="${VENV:-.venv}"

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
"${PIP[@]}" install -e ".[dev]"
echo "mlx-persona installed in $VENV"
