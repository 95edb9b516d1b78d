"""Names inside a run folder, in one place: every stage, the runner and the report use these.

    runs/<name>/
      manifest.json     stage status, fingerprints, timings (the runner writes it)
      recipe.yaml       the resolved recipe
      clean/            train.jsonl, valid.jsonl, test.jsonl, stats.json
      budget.json       the memory estimate made before training (optional)
      sft/              adapter_config.json, adapters.safetensors, metrics.jsonl
      sft_fused/        base + SFT adapter, one MLX model folder
      pairs/            DPO pairs (JSONL)
      dpo/              adapter_config.json, adapters.safetensors, metrics.jsonl
      dpo_fused/        the twin, one MLX model folder
      eval/             metrics.json, samples.jsonl, generations/
      report.md, report.html, report_files/
"""

from pathlib import Path

MANIFEST = "manifest.json"
RECIPE = "recipe.yaml"
BUDGET = "budget.json"

CLEAN_DIR = "clean"
SFT_DIR = "sft"
SFT_FUSED_DIR = "sft_fused"
PAIRS_DIR = "pairs"
DPO_DIR = "dpo"
DPO_FUSED_DIR = "dpo_fused"
EVAL_DIR = "eval"

TRAIN_SPLIT = "train.jsonl"
VALID_SPLIT = "valid.jsonl"
TEST_SPLIT = "test.jsonl"
CLEAN_STATS = "stats.json"

STAGE_METRICS = "metrics.jsonl"   # one JSON object per event, in every training stage folder
STATUS = "status.json"            # a stage child's state: running/done/failed (+ error), step, total
ADAPTER_CONFIG = "adapter_config.json"
ADAPTER_WEIGHTS = "adapters.safetensors"
LAST_ADAPTER_DIR = "last"       # the adapter after the last step (the best one is ADAPTER_WEIGHTS)
MODEL_CONFIG = "config.json"      # marks a complete MLX model folder

EVAL_METRICS = "metrics.json"
EVAL_SAMPLES = "samples.jsonl"

REPORT_MD = "report.md"
REPORT_HTML = "report.html"
REPORT_FILES = "report_files"     # the PNGs report.md links to (report.html embeds them)


def is_model_dir(p: Path) -> bool:
    return (Path(p) / MODEL_CONFIG).is_file()


def is_adapter_dir(p: Path) -> bool:
    p = Path(p)
    return (p / ADAPTER_CONFIG).is_file() and (p / ADAPTER_WEIGHTS).is_file()
