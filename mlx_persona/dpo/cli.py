"""``mlx-persona dpo``: check the settings and pairs, run the budget preflight, start the DPO child.

This process never imports MLX. It resolves the settings (command line > --config file > the
stage's saved settings on --resume > defaults), checks that both pairs files are there, asks the
budget whether chosen + rejected sequences of a batch fit (with ``reference_in_memory=False``:
the reference is cached log-probs, not a second model), writes ``dpo_config.json``, and starts
``python -m mlx_persona.dpo`` through the SFT stage's launcher, whose progress bar tails
``metrics.jsonl``. Line-level problems in the pairs are the child's to report (rejects.jsonl).
"""

from __future__ import annotations

import json
from pathlib import Path

from mlx_persona.core import layout
from mlx_persona.core.errors import PersonaError
from mlx_persona.dpo.config import DPOConfig
from mlx_persona.train.launch import (
    already_finished,
    console,
    distributed_from,
    launch,
    layered_settings,
    prepare_run,
    training_command,
)


def resolve(
    out: Path, model: str | None, pairs: str | None, config: str | None, overrides: dict, resume: bool
) -> tuple[str, Path, DPOConfig]:
    cfg, saved = layered_settings(out, DPOConfig, "dpo", "a DPO", config, overrides, resume)
    model = model or (saved and saved["model"])
    pairs = pairs or (saved and saved["data"])
    if not model:
        raise PersonaError("--model is required: the fused SFT model (`mlx-persona fuse`)")
    if not pairs:
        raise PersonaError("--pairs is required: the folder `mlx-persona pairs` wrote")
    for split in ("train", "valid"):
        if not (Path(pairs) / layout.split_file(split)).is_file():
            raise PersonaError(f"{Path(pairs) / layout.split_file(split)}: missing (run `mlx-persona pairs` first)")
    return model, Path(pairs), cfg


@training_command(
    "dpo",
    model_help="The fused SFT model folder (`mlx-persona fuse`); 'default' works for a quick try.",
    data=("--pairs", "Folder with train.jsonl and valid.jsonl pairs (`mlx-persona pairs`)."),
    out_help="Stage folder: metrics, adapters, checkpoints, reference cache.",
    # mask_prompt: DPO scores replies only; grad accumulation: not supported by the DPO stage
    settings=DPOConfig.click_options(skip=("optimizer_config", "mask_prompt", "grad_accumulation_steps")),
)
def dpo_command(model, pairs, out, config_file, resume, device, force, **overrides):
    """Teach the twin to prefer the person's replies over the base's (DPO, cached reference)."""
    dist = distributed_from(overrides)  # --hosts/--hostfile/--backend: one rank per host under mlx.launch
    model, pairs_dir, cfg = resolve(out, model, pairs, config_file, overrides, resume)
    if already_finished(out, resume):
        return
    model_dir = prepare_run(out, "dpo", model, pairs_dir, cfg, device, force, resume, dist.world_size)
    console.print(
        f"dpo: {cfg.loss_type} loss, beta {cfg.beta}, {cfg.fine_tune_type} r{cfg.rank} on {model_dir.name}, "
        f"log {out / layout.stage_log('dpo')}"
    )
    summary = launch(model_dir, pairs_dir, out, resume, stage="dpo", dist=dist)
    val = [json.loads(line) for line in (out / layout.STAGE_METRICS).read_text().splitlines() if "val_accuracy" in line]
    last = val[-1] if val else {}
    console.print(
        f"[green]✓[/] dpo {summary['state']} at step {summary['iteration']}: best val loss "
        f"{summary['best_val_loss']:.4f} (step {summary['best_iter']}), val accuracy "
        f"{last.get('val_accuracy', float('nan')):.2f}, margin {last.get('val_margin', float('nan')):.3f}; adapter in {out}"
    )
