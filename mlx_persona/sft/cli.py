"""``mlx-persona sft``: check everything, run the budget preflight, start the SFT child, show it.

This process never imports MLX. It checks the settings, the data and the stage folder (a bad one
is a one-line error and nothing in the folder changes), asks the budget whether the run fits,
writes the resolved settings, and starts ``python -m mlx_persona.sft`` with the fast BLAS
(:mod:`mlx_persona.train.launch`: the progress bar tails the child's ``metrics.jsonl``).
"""

from __future__ import annotations

import json
from pathlib import Path

from mlx_persona.core import layout
from mlx_persona.core.errors import PersonaError
from mlx_persona.sft.config import SFTConfig
from mlx_persona.train.launch import (
    already_finished,
    console,
    distributed_from,
    launch,
    layered_settings,
    prepare_run,
    training_command,
)


def check_data(data: Path, batch_size: int) -> int:
    """Both splits present, every line a chat record, enough of them; returns the train count."""
    counts = {}
    for split in ("train", "valid"):
        path = data / layout.split_file(split)
        if not path.is_file():
            raise PersonaError(f"{path}: missing {split} split (run `mlx-persona clean` first)")
        n = 0
        with open(path, encoding="utf-8") as f:
            for lineno, line in enumerate(f, 1):
                if not line.strip():
                    continue
                try:
                    record = json.loads(line)
                except json.JSONDecodeError as e:
                    raise PersonaError(f"{path}:{lineno}: not JSON ({e.msg})") from None
                if not isinstance(record, dict) or not isinstance(record.get("messages"), list):
                    raise PersonaError(f"{path}:{lineno}: expected an object with a 'messages' list")
                n += 1
        if n < batch_size:
            raise PersonaError(f"{path}: {n} conversations, fewer than batch_size={batch_size}")
        counts[split] = n
    return counts["train"]


def resolve_settings(
    out: Path, model: str | None, data: str | None, config: str | None, overrides: dict, resume: bool
) -> tuple[str, Path, SFTConfig]:
    cfg, saved = layered_settings(out, SFTConfig, "sft", "an SFT", config, overrides, resume)
    model = model or (saved and saved["model"]) or "default"
    data = data or (saved and saved["data"])
    if not data:
        raise PersonaError("--data is required: a folder with train.jsonl and valid.jsonl")
    return model, Path(data), cfg


@training_command(
    "sft",
    model_help="Base model: a folder, a hub id, or 'default' (SmolLM2-135M-Instruct).",
    data=("--data", "Folder with train.jsonl and valid.jsonl (mlx_lm chat JSONL)."),
    out_help="Stage folder for metrics, adapters, checkpoints.",
    settings=SFTConfig.click_options(skip=("optimizer_config",)),
)
def sft_command(model, data, out, config_file, resume, device, force, **overrides):
    """Fine-tune the base on the cleaned chats (LoRA, DoRA or full) with mlx_lm's trainer."""
    dist = distributed_from(overrides)  # --hosts/--hostfile/--backend: one rank per host under mlx.launch
    model, data_dir, cfg = resolve_settings(out, model, data, config_file, overrides, resume)
    if already_finished(out, resume):
        return
    n_train = check_data(data_dir, cfg.batch_size)
    model_dir = prepare_run(out, "sft", model, data_dir, cfg, device, force, resume, dist.world_size)
    iters = cfg.resolve_iters(n_train)
    console.print(
        f"sft: {cfg.fine_tune_type} r{cfg.rank} on {model_dir.name}, {iters} steps, log {out / layout.stage_log('sft')}"
    )
    summary = launch(model_dir, data_dir, out, resume, dist=dist)
    console.print(
        f"[green]✓[/] sft {summary['state']} at step {summary['iteration']}: best val loss "
        f"{summary['best_val_loss']:.4f} (step {summary['best_iter']}); adapter in {out}"
    )
