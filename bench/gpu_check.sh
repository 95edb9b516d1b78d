#!/usr/bin/env bash
# The SFT and DPO stages on an NVIDIA GPU (MLX's CUDA backend, mlx[cuda]) next to the same run on
# the CPU backend, with the default model kept at 4 bits (the Mac path: quantized kernels).
# Prints steps/s, peak memory and the loss curve of each. Not run yet: no GPU machine was at hand
# when it was written; run it on one, then copy its last table into bench/RESULTS.md with the date.
#
#   bash bench/gpu_check.sh [ITERS]        # from a clone's root; ~10 min on a recent GPU + 2 cores
set -euo pipefail
ITERS=${1:-40}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
WORK=${GPU_CHECK_DIR:-$ROOT/.gpu-check}
mkdir -p "$WORK"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || { echo "no NVIDIA GPU"; exit 1; }

for backend in cuda cpu; do
  venv=$WORK/venv-$backend
  [ -x "$venv/bin/python" ] || python3 -m venv "$venv"
  "$venv/bin/pip" install -q "mlx[$backend]" -e "$ROOT"
  "$venv/bin/python" -c "import mlx.core as mx; print('$backend:', mx.default_device(), mx.__version__)"
  # 4-bit default model (the CPU build would dequantize by default: keep the 4-bit blocks on both)
  model=$(MLX_PERSONA_HOME=$WORK/home-$backend "$venv/bin/mlx-persona" models pull-default --dequantize no | tail -n 1)
  rm -rf "$WORK/runs-$backend"
  MLX_PERSONA_HOME=$WORK/home-$backend "$venv/bin/mlx-persona" run "$ROOT/recipes/quickstart.yaml" \
    --runs "$WORK/runs-$backend" --plain --until dpo --set model="$model" \
    --set sft.iters="$ITERS" --set dpo.iters=$((ITERS / 2)) \
    --set sft.dequantize_on_cpu=false --set dpo.dequantize_on_cpu=false
done

"$WORK/venv-cpu/bin/python" - "$WORK" <<'PY'
import json, sys
from pathlib import Path

work = Path(sys.argv[1])
print("| backend | stage | steps | steps/s (with validation) | peak GB | loss curve (train) |")
print("|---|---|---|---|---|---|")
for backend in ("cuda", "cpu"):
    run = next((work / f"runs-{backend}").iterdir())
    for stage in ("sft", "dpo"):
        events = [json.loads(l) for l in (run / stage / "metrics.jsonl").read_text().splitlines()]
        train = [e for e in events if "train_loss" in e]
        status = json.loads((run / stage / "status.json").read_text())
        steps, secs = status["iteration"], status["elapsed"]
        peak = max(e.get("peak_memory_gb", 0) for e in train)
        curve = " ".join(f"{e['train_loss']:.3f}" for e in train[:: max(1, len(train) // 8)])
        print(f"| {backend} | {stage} | {steps} | {steps / secs:.2f} | {peak:.2f} | {curve} |")
PY
