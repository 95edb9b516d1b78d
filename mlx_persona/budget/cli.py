"""``mlx-persona budget``: the memory estimate as a table or JSON, and ``--fit``.

Settings come from, in order of precedence: the command line, then ``--recipe`` (its ``sft`` or
``dpo`` section, or its top level, with mlx_lm's lora config names), then mlx_lm's defaults.
"""

from __future__ import annotations

import json
import types
from pathlib import Path
from typing import Any

import click
from rich.console import Console
from rich.table import Table

from mlx_persona.budget.estimate import Estimate, estimate
from mlx_persona.budget.fit import fit
from mlx_persona.core.errors import PersonaError

console = Console()
DEFAULTS: dict[str, Any] = dict(
    stage="sft",
    fine_tune_type="lora",
    rank=8,
    num_layers=16,
    batch_size=4,
    max_seq_length=2048,
    grad_checkpoint=False,
    grad_accumulation_steps=1,
    optimizer="adam",
    reference_in_memory=False,
    reference_batch_size=8,  # the dpo block's default
)
LABELS = {
    "weights": "base weights",
    "adapter": "adapter parameters",
    "gradients": "gradients",
    "optimizer": "optimizer state",
    "activations": "activations (kept for backward)",
    "attention": "attention scores",
    "logits": "logits + loss",
    "backward": "backward in flight",
    "reference": "DPO reference (model, or its pass beyond the step)",
    "overhead": "framework overhead",
}
COLORS = {"fits": "green", "tight": "yellow", "does not fit": "red"}


def _recipe_settings(path: Path | None, stage: str) -> dict[str, Any]:
    """The memory-relevant keys of a recipe YAML (model included)."""
    if path is None:
        return {}
    import yaml

    try:
        doc = yaml.safe_load(path.read_text()) or {}
    except (OSError, yaml.YAMLError) as e:
        raise PersonaError(f"{path}: cannot read recipe ({type(e).__name__})") from None
    if not isinstance(doc, dict):
        raise PersonaError(f"{path}: a recipe must be a YAML mapping")
    section = {**doc, **(doc.get(stage) or {})}
    out = {k: section[k] for k in ("model", *DEFAULTS) if k in section}
    rank = (section.get("lora_parameters") or {}).get("rank")
    if rank is not None:
        out["rank"] = rank
    if "keys" in (section.get("lora_parameters") or {}):
        out["keys"] = section["lora_parameters"]["keys"]
    return out


def _print_table(est: Estimate) -> None:
    table = Table(title=f"memory budget: {est.model} on {est.device}")
    table.add_column("component")
    table.add_column("GB", justify="right")
    for name, gb in est.components().items():
        table.add_row(LABELS[name[:-3]], f"{gb:.2f}")
    if est.data:
        d = est.data
        table.add_row(f"[bold]total, on the data[/] (longest batch {d.keys} tokens)", f"[bold]{est.total_gb:.2f}[/]")
        table.add_row(f"worst case (every row {est.settings.max_seq_length} tokens)", f"{est.worst_case_gb:.2f}")
    else:
        table.add_row("[bold]total[/] (worst case: every row max_seq_length)", f"[bold]{est.total_gb:.2f}[/]")
    table.add_row(f"usable on {est.device}", f"{est.usable_gb:.2f}")
    console.print(table)
    console.print(f"usable memory source: {est.device_source}")
    s = est.settings
    console.print(
        f"{s.stage} {s.fine_tune_type} rank {s.rank}, {s.num_layers} layers, batch {s.batch_size} "
        f"x accum {s.grad_accumulation_steps}, seq {s.max_seq_length}, grad checkpoint "
        f"{'on' if s.grad_checkpoint else 'off'}, {s.optimizer}"
    )
    if est.data:
        console.print(f"data: {est.data.examples} records, longest {est.data.longest} tokens; {est.data.source}")
    if est.reference_pass_gb:
        console.print(
            f"reference pass: {est.reference_pass_gb:.2f} GB ({s.reference_batch_size} pairs at a time, no gradients, "
            "before the first step; the stage's peak is the larger of it and the step)"
        )
    for note in est.notes:
        console.print(f"note: {note}")
    color = COLORS[est.verdict]
    console.print(f"verdict: [{color}]{est.verdict}[/] ({est.total_gb:.2f} of {est.usable_gb:.2f} GB)")


@click.command("budget")
@click.option("--model", "-m", help="Model folder, 'default', or hub id (config snapshot, no download).")
@click.option(
    "--recipe", type=click.Path(exists=True, dir_okay=False, path_type=Path), help="Recipe YAML to read settings from."
)
@click.option("--device", help="m-series-8gb/16gb/24gb/32gb/64gb, or cpu; default: this machine.")
@click.option("--memory-gb", type=float, help="Usable memory in GB, for any other machine.")
@click.option("--stage", type=click.Choice(["sft", "dpo"]), help="sft (default) or dpo.")
@click.option("--fine-tune-type", type=click.Choice(["lora", "dora", "full"]))
@click.option("--rank", type=int, help="LoRA/DoRA rank (default 8).")
@click.option("--num-layers", type=int, help="Blocks adapted from the top; -1 = all (default 16).")
@click.option("--keys", help="Comma-separated linear keys to adapt, e.g. self_attn.q_proj,self_attn.v_proj.")
@click.option("--batch-size", type=int, help="Sequences per step (default 4).")
@click.option("--max-seq-length", type=int, help="Tokens per sequence (default 2048).")
@click.option("--grad-checkpoint/--no-grad-checkpoint", default=None, help="Recompute activations in backward.")
@click.option("--grad-accumulation-steps", type=int, help="Micro-batches per update (default 1).")
@click.option("--optimizer", type=click.Choice(["adam", "adamw", "sgd", "adafactor"]))
@click.option(
    "--reference-in-memory/--no-reference-in-memory", default=None, help="DPO: hold the reference model in memory."
)
@click.option(
    "--reference-batch-size", type=int, help="DPO: pairs per batch of the reference pass (default 8; 0: none)."
)
@click.option(
    "--data",
    "data_dir",
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    help="Folder with train.jsonl (cleaned chats; DPO: pairs): estimate on its longest batch too.",
)
@click.option("--share-prompt/--no-share-prompt", default=True, help="DPO: each pair's prompt runs once (default).")
@click.option("--fit", "do_fit", is_flag=True, help="Propose the best settings that fit, as recipe overrides.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
def budget_command(
    model: str | None,
    recipe: Path | None,
    device: str | None,
    memory_gb: float | None,
    data_dir: Path | None,
    share_prompt: bool,
    do_fit: bool,
    as_json: bool,
    **cli_settings: Any,
) -> None:
    """Estimate a training run's peak memory before loading any weights; --fit to make it fit."""
    stage = cli_settings.get("stage") or DEFAULTS["stage"]
    settings = {**DEFAULTS, **_recipe_settings(recipe, stage)}
    model = model or settings.pop("model", None)
    settings.pop("model", None)
    if cli_settings.get("keys"):
        cli_settings["keys"] = [k.strip() for k in cli_settings["keys"].split(",") if k.strip()]
    settings.update({k: v for k, v in cli_settings.items() if v is not None})
    if not model:
        raise PersonaError("give --model (a folder, 'default', or a hub id) or a --recipe with a model")
    data = None
    if data_dir is not None:
        from mlx_persona.budget.data import data_shape
        from mlx_persona.models.resolve import resolve_model

        cfg = types.SimpleNamespace(
            batch_size=settings["batch_size"],
            max_seq_length=settings["max_seq_length"],
            share_prompt=share_prompt,
            reference_batch_size=settings["reference_batch_size"],
        )
        data = data_shape(resolve_model(model), data_dir, settings["stage"], cfg)
    if not do_fit:
        est = estimate(model, device=device, memory_gb=memory_gb, data=data, **settings)
        if as_json:
            click.echo(json.dumps(est.to_dict(), indent=2))
        else:
            _print_table(est)
        return
    res = fit(model, device=device, memory_gb=memory_gb, data=data, **settings)
    if as_json:
        click.echo(
            json.dumps(
                {
                    "ok": res.ok,
                    "steps": res.steps,
                    "overrides": res.overrides(),
                    "flags": res.flags(),
                    "original": res.original.to_dict(),
                    "estimate": res.estimate.to_dict(),
                },
                indent=2,
            )
        )
    else:
        _print_table(res.estimate)
        console.print(res.advice())
        if res.ok and res.overrides():
            console.print("recipe overrides:\n" + res.yaml(), markup=False)
            console.print(f"gave up (in order): {', '.join(res.steps)}")
    if not res.ok:
        raise SystemExit(1)
