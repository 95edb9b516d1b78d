#!/usr/bin/env bash
# Set up (if needed) and run the main job: the quickstart recipe on the embedded default model
# (clean → SFT → fuse → pairs → DPO → fuse → eval → report), then one reply from the twin.
# Extra arguments go to `mlx-persona run` (e.g. --resume after an interruption).
set -euo pipefail
cd "$(dirname "$0")/.."
EXTRAS= bash scripts/setup.sh  # the package alone: the test tools are for `make test`
# --resume: a second `make demo` finishes an interrupted run, or skips straight to the chat
.venv/bin/mlx-persona run recipes/quickstart.yaml --resume "$@"
echo
echo "the twin answers:"
# sampled as `mlx-persona chat` samples (temperature 0.7), from a fixed seed: greedy decoding of
# a 135M model tends to repeat its last sentence until the token limit
.venv/bin/mlx-persona chat runs/quickstart --temp 0.7 --seed 0 -m "should we ship the release on friday?"
