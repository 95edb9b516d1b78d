"""``mlx-persona sft``: check everything, run the budget preflight, start the SFT child, show it.

This process never imports MLX. It checks the settings, the data and the stage folder (a bad one
is a one-line error and nothing in the folder changes), asks the budget whether the run fits,
writes the resolved settings, and starts ``python -m mlx_persona.sft`` with the fast BLAS. The
progress bar (loss, val loss, ETA) comes from tailing the child's ``metrics.jsonl``.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Optional

import click
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from . import blas
from .errors import PersonaError
from .runs import atomic_write_json
from .settings import click_options
from .sft_config import SFTConfig

from .budget import preflight_stage

CONFIG_FILE = "sft_config.json"  # resolved settings + model + data, written before the child starts
LOG_FILE = "sft.log"
console = Console(stderr=True)


def check_data(data: Path, batch_size: int) -> int:
    """Both splits present, every line a chat record, enough of them; returns the train count."""
    counts = {}
    for split in ("train", "valid"):
        path = data / f"{split}.jsonl"
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


def layered_settings(out: Path, cls, key: str, label: str, config: Optional[str], overrides: dict,
                     resume: bool) -> tuple:
    """A training stage's settings, CLI > --config file > the stage's saved settings (on --resume)
    > defaults; returns (settings, saved ``<key>_config.json`` or None). Refuses to start over a
    run that exists, to resume one that does not, and to resume with changed settings."""
    saved = _read_json(out / f"{key}_config.json")
    started = (out / "status.json").exists() or (out / "checkpoint.json").exists()
    if started and not resume:
        raise PersonaError(f"{out} already holds {label} run: pass --resume to continue it, or choose another --out")
    if resume and saved is None:
        raise PersonaError(f"nothing to resume in {out} (no {key}_config.json)")
    base = dict(saved[key]) if saved else {}
    if config:
        base.update(cls.load(Path(config)).to_dict())
    base.update({k: v for k, v in overrides.items() if v is not None})
    cfg = cls.from_dict(base)
    if saved is not None:
        changed = [k for k, v in cfg.to_dict().items() if saved[key].get(k) != v]
        if changed:
            k = changed[0]
            raise PersonaError(f"{out} was started with {k}={saved[key].get(k)!r}, now {getattr(cfg, k)!r}; "
                               "resume with the same settings or choose another --out")
    return cfg, saved


def resolve_settings(out: Path, model: Optional[str], data: Optional[str], config: Optional[str],
                     overrides: dict, resume: bool) -> tuple[str, Path, SFTConfig]:
    cfg, saved = layered_settings(out, SFTConfig, "sft", "an SFT", config, overrides, resume)
    model = model or (saved and saved["model"]) or "default"
    data = data or (saved and saved["data"])
    if not data:
        raise PersonaError("--data is required: a folder with train.jsonl and valid.jsonl")
    return model, Path(data), cfg


def run_preflight(model_dir: Path, cfg: SFTConfig, device: Optional[str], force: bool, stage: str = "sft") -> None:
    """The budget's verdict for this stage, printed; a run that will not fit stops here."""
    est = preflight_stage(str(model_dir), cfg, stage, device=device, force=force)
    console.print(f"budget: ~{est.total_gb:.2f} GB of {est.usable_gb:.2f} GB on {est.device} ({est.verdict})")


def launch(model_dir: Path, data: Path, out: Path, resume: bool, show_progress: bool = True, stage: str = "sft") -> dict:
    """Run the child to the end, drawing progress from metrics.jsonl; return its status.json.

    ``stage`` names the child module (``python -m mlx_persona.<stage>``), its settings file
    ``<stage>_config.json`` and log ``<stage>.log`` in ``out``; the DPO stage reuses this."""
    log_file = out / f"{stage}.log"
    cmd = [sys.executable, "-m", f"mlx_persona.{stage}", "--model", str(model_dir), "--data", str(data),
           "--out", str(out), "--config", str(out / f"{stage}_config.json")] + (["--resume"] if resume else [])
    with open(log_file, "a") as log:
        child = subprocess.Popen(cmd, env=blas.fast_blas_env(), stdout=log, stderr=subprocess.STDOUT)
        try:
            follow(child, out, out / "metrics.jsonl", show_progress, label=stage)
        except KeyboardInterrupt:
            child.wait()
            raise PersonaError(f"interrupted; continue with: mlx-persona {stage} --out {out} --resume") from None
    if child.returncode != 0:
        lines = log_file.read_text(errors="replace").splitlines()
        errors = [l[len("error: "):] for l in lines if l.startswith("error: ")]
        if errors:
            raise PersonaError(errors[-1])
        tail = " | ".join(lines[-3:])
        raise PersonaError(f"the {stage} child exited with {child.returncode} (see {log_file}): {tail}")
    return json.loads((out / "status.json").read_text())


def follow(child: subprocess.Popen, out: Path, metrics: Path, show: bool, label: str = "sft") -> None:
    cols = [TextColumn(label), BarColumn(), MofNCompleteColumn(), TextColumn("loss {task.fields[loss]}"),
            TextColumn("val {task.fields[val]}"), TimeElapsedColumn(), TextColumn("eta"), TimeRemainingColumn()]
    with Progress(*cols, console=console, disable=not show) as bar:
        task = bar.add_task(label, total=None, loss="-", val="-")
        pending, offset = "", 0
        while True:
            done = child.poll() is not None
            status = _read_json(out / "status.json")
            if status and status.get("iters"):
                bar.update(task, total=status["iters"])
            if metrics.exists():
                with open(metrics) as f:
                    if metrics.stat().st_size < offset:
                        offset, pending = 0, ""  # rewritten on resume: read it again
                    f.seek(offset)
                    pending += f.read()
                    offset = f.tell()
                *lines, pending = pending.split("\n")
                for line in lines:
                    event = json.loads(line)
                    fields = {"loss": f"{event['train_loss']:.3f}"} if "train_loss" in event else {"val": f"{event['val_loss']:.3f}"}
                    bar.update(task, completed=event["iter"], **fields)
            if done:
                return
            time.sleep(0.5)


def _read_json(path: Path) -> Optional[dict]:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


_config_options = click_options(SFTConfig, skip=("optimizer_config",))


@click.command("sft")
@click.option("--model", help="Base model: a folder, a hub id, or 'default' (SmolLM2-135M-Instruct).")
@click.option("--data", help="Folder with train.jsonl and valid.jsonl (mlx_lm chat JSONL).")
@click.option("--out", required=True, type=click.Path(path_type=Path), help="Stage folder for metrics, adapters, checkpoints.")
@click.option("--config", "config_file", type=click.Path(), help="YAML/JSON with the sft settings (a recipe's sft: block works).")
@click.option("--resume", is_flag=True, help="Continue the run in --out from its last checkpoint.")
@click.option("--device", help="Budget preflight device profile (default: this machine).")
@click.option("--force", is_flag=True, help="Start even when the budget says it will not fit.")
@_config_options
def sft_command(model, data, out, config_file, resume, device, force, **overrides):
    """Fine-tune the base on the cleaned chats (LoRA, DoRA or full) with mlx_lm's trainer."""
    from .models import resolve_model

    model, data_dir, cfg = resolve_settings(out, model, data, config_file, overrides, resume)
    status = _read_json(out / "status.json") or {}
    if resume and status.get("state") in ("done", "stopped_early"):
        console.print(f"{out}: already finished ({status['state']}, best val loss {status['best_val_loss']:.4f})")
        return
    n_train = check_data(data_dir, cfg.batch_size)
    model_dir = resolve_model(model)
    saved = _read_json(out / CONFIG_FILE) if resume else None
    if saved and (Path(saved["model"]).resolve(), Path(saved["data"]).resolve()) != (model_dir.resolve(), data_dir.resolve()):
        raise PersonaError(f"{out} was started on model {saved['model']} and data {saved['data']}; "
                           "resume with the same ones or choose another --out")
    run_preflight(model_dir, cfg, device, force)
    iters = cfg.resolve_iters(n_train)
    if not resume:
        atomic_write_json(out / CONFIG_FILE, {"model": str(model_dir), "data": str(data_dir), "sft": cfg.to_dict()})
    console.print(f"sft: {cfg.fine_tune_type} r{cfg.rank} on {model_dir.name}, {iters} steps, log {out / LOG_FILE}")
    summary = launch(model_dir, data_dir, out, resume)
    console.print(f"[green]✓[/] sft {summary['state']} at step {summary['iteration']}: best val loss "
                  f"{summary['best_val_loss']:.4f} (step {summary['best_iter']}); adapter in {out}")
