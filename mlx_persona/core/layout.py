"""Names inside a run folder, in one place: every stage, the runner and the report use these.

    runs/<name>/
      manifest.json     stage status, fingerprints, timings (the runner writes it)
      recipe.yaml       the resolved recipe
      clean/            train.jsonl, valid.jsonl, test.jsonl, rejects.jsonl, stats.json
      budget.json       the memory estimate made before training (optional)
      sft/              sft_config.json, sft.log, status.json, metrics.jsonl, adapter_config.json,
                        adapters.safetensors (best), last/, checkpoint.json + checkpoints/<step>/
      sft_fused/        base + SFT adapter, one MLX model folder (+ fused_from.json)
      pairs/            pairs_config.json, prompts.jsonl, base.jsonl, twin.jsonl (replies),
                        train.jsonl, valid.jsonl (the DPO pairs), rejects.jsonl, stats.json
      dpo/              as sft/ (dpo_config.json, dpo.log, ...) + reference.json, rejects.jsonl
      dpo_fused/        base + SFT + DPO adapters, one MLX model folder
      twin/             twin.json (which of sft_fused/ and dpo_fused/ is the twin, and why),
                        metrics.json, samples.jsonl (both models on the validation split)
      eval/             metrics.json, samples.jsonl, generations/
      export/           gguf/, ollama/, mlx/: what the recipe's export block wrote (mlx-persona export)
      report.md, report.html, report_files/

A stage child that fails on a user mistake records it in its folder's ``status.json``
(:mod:`mlx_persona.core.child`).
"""

from pathlib import Path

MANIFEST = "manifest.json"
RECIPE = "recipe.yaml"
BUDGET = "budget.json"

# the stages' folders (runner/stages.py gives each to one stage)
CLEAN_DIR = "clean"
SFT_DIR = "sft"
SFT_FUSED_DIR = "sft_fused"
PAIRS_DIR = "pairs"
DPO_DIR = "dpo"
DPO_FUSED_DIR = "dpo_fused"
TWIN_DIR = "twin"  # which of the SFT and DPO models is the twin (validation split)
EVAL_DIR = "eval"
EXPORT_DIR = "export"  # <target>/: the twin as GGUF, for Ollama, as an MLX folder (the export block)


def split_file(split: str) -> str:
    """``train.jsonl``, ``valid.jsonl``, ``test.jsonl``: cleaned chats, or DPO pairs in pairs/."""
    return f"{split}.jsonl"


TRAIN_SPLIT = split_file("train")
VALID_SPLIT = split_file("valid")
TEST_SPLIT = split_file("test")
REJECTS = "rejects.jsonl"  # lines a stage could not use, each with file:line and reason
STATS = "stats.json"  # what a data stage did, in numbers (clean, pairs)


def stage_config(stage: str) -> str:
    """``sft_config.json``, ...: a stage's resolved settings, written before its child starts."""
    return f"{stage}_config.json"


def stage_log(stage: str) -> str:
    """``sft.log``, ...: a training child's console output."""
    return f"{stage}.log"


STATUS = "status.json"  # a stage child's state: running/done/failed (+ error), step, total
STAGE_METRICS = "metrics.jsonl"  # one JSON object per event, in every training stage folder
ADAPTER_CONFIG = "adapter_config.json"
ADAPTER_WEIGHTS = "adapters.safetensors"
MLX_LM_SCRATCH = ".mlx_lm_scratch.safetensors"  # where mlx_lm's train() would save; never kept
LAST_ADAPTER_DIR = "last"  # the adapter after the last step (the best one is ADAPTER_WEIGHTS)
CHECKPOINT = "checkpoint.json"  # points at the newest complete folder under CHECKPOINTS_DIR
CHECKPOINTS_DIR = "checkpoints"  # <step>/: ADAPTER_WEIGHTS, CHECKPOINT_OPTIMIZER, CHECKPOINT_STATE
CHECKPOINT_OPTIMIZER = "optimizer.safetensors"
CHECKPOINT_STATE = "state.json"
REFERENCE_CACHE = "reference.json"  # dpo/: the reference model's log-probs of every pair

MODEL_CONFIG = "config.json"  # marks a complete MLX model folder
FUSED_FROM = "fused_from.json"  # in a fused model folder: its base and adapter

PAIRS_PROMPTS = "prompts.jsonl"


def replies_file(role: str) -> str:
    """``base.jsonl`` / ``twin.jsonl`` in pairs/: one model's replies, appended as they finish."""
    return f"{role}.jsonl"


def only_file(role: str) -> str:
    """``.twin_only.json`` in pairs/: the prompt ids one generator child answers."""
    return f".{role}_only.json"


TWIN_FILE = "twin.json"  # twin/: the chosen model, its scores and why
EVAL_METRICS = "metrics.json"
EVAL_SAMPLES = "samples.jsonl"
GENERATIONS_DIR = "generations"  # eval/: one JSON per model from its child
EVAL_TEST_USED = "test_used.jsonl"  # eval/generations/: the test conversations the children read

REPORT_MD = "report.md"
REPORT_HTML = "report.html"
REPORT_FILES = "report_files"  # the PNGs report.md links to (report.html embeds them)

INNER_DIRS = (LAST_ADAPTER_DIR, CHECKPOINTS_DIR, GENERATIONS_DIR)  # folders inside a stage folder


def is_model_dir(p: Path) -> bool:
    return (Path(p) / MODEL_CONFIG).is_file()


def is_adapter_dir(p: Path) -> bool:
    p = Path(p)
    return (p / ADAPTER_CONFIG).is_file() and (p / ADAPTER_WEIGHTS).is_file()
