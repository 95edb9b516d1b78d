#!/usr/bin/env bash
# Set up (if needed) and run the main job: fetch and convert the embedded default model, then
# ask it one question. (Grows into the quickstart recipe as the pipeline's stages land.)
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
MODEL="$(.venv/bin/mlx-persona models pull-default)"
echo "default model: $MODEL"
exec .venv/bin/python -m mlx_persona.blas .venv/bin/python -m mlx_lm generate \
    --model "$MODEL" --prompt "What is the capital of France?" --max-tokens 60
