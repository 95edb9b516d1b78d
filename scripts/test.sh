#!/usr/bin/env bash
# Set up (if needed) and run the whole test suite, end-to-end tests on the real default model
# included. Extra arguments go to pytest (e.g. -m "not e2e" for the fast unit tests only).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
# Lint and format check first (settings in pyproject.toml): seconds, and a failure says where.
.venv/bin/ruff check .
.venv/bin/ruff format --check .
# python -m mlx_persona.core.blas runs pytest with the fast OpenBLAS preloaded on Linux.
exec .venv/bin/python -m mlx_persona.core.blas .venv/bin/python -m pytest -q "$@"
