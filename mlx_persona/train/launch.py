"""Start a training stage's child process and show its progress (the ``sft`` and ``dpo``
commands and the runner all start their children here).

The parent never imports MLX. Both commands are built by :func:`training_command`; the
parent resolves the stage's settings (:func:`layered_settings`), then the model, asks the budget
whether the run fits and writes the settings for the child (:func:`prepare_run`), and starts
``python -m mlx_persona.<stage>`` with the fast BLAS (:func:`launch`). The progress bar (loss,
val loss, ETA) comes from tailing the child's ``metrics.jsonl`` (:func:`follow`), and a failed
child's reason from its ``status.json`` (:mod:`mlx_persona.core.child`), never from its console
output.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import click
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from mlx_persona.core import blas, layout
from mlx_persona.core.child import child_error
from mlx_persona.core.errors import PersonaError
from mlx_persona.core.runs import atomic_write_json

console = Console(stderr=True)


def training_command(stage: str, model_help: str, data: tuple[str, str], out_help: str, settings: Callable) -> Callable:
    """The click command of a training stage, named ``stage``, with its options in this order:
    --model, the data folder (``data``: the option and its help), --out (the stage folder),
    --config, --resume, --device, --force, then the stage's settings (``settings``: its config
    class's ``click_options``)."""
    options = [
        click.option("--model", help=model_help),
        click.option(data[0], help=data[1]),
        click.option("--out", required=True, type=click.Path(path_type=Path), help=out_help),
        click.option(
            "--config",
            "config_file",
            type=click.Path(),
            help=f"YAML/JSON with the {stage} settings (a recipe's {stage}: block works).",
        ),
        click.option("--resume", is_flag=True, help="Continue the run in --out from its last checkpoint."),
        click.option("--device", help="Budget preflight device profile (default: this machine)."),
        click.option("--force", is_flag=True, help="Start even when the budget says it will not fit."),
        settings,
    ]

    def decorate(command: Callable) -> click.Command:
        for option in reversed(options):  # click lists options in the order they are written
            command = option(command)
        return click.command(stage)(command)

    return decorate


def already_finished(out: Path, resume: bool) -> bool:
    """On --resume of a run that has ended (done, or stopped early), say so: nothing to continue."""
    status = read_json(out / layout.STATUS) or {}
    if resume and status.get("state") in ("done", "stopped_early"):
        console.print(f"{out}: already finished ({status['state']}, best val loss {status['best_val_loss']:.4f})")
        return True
    return False


def save_settings(out: Path, stage: str, model_dir: Path, data_dir: Path, cfg) -> None:
    """``<stage>_config.json``: the resolved model, data and settings, what the child and a later
    --resume (:func:`layered_settings`) read."""
    atomic_write_json(
        out / layout.stage_config(stage), {"model": str(model_dir), "data": str(data_dir), stage: cfg.to_dict()}
    )


def prepare_run(out: Path, stage: str, model: str, data_dir: Path, cfg, device: str | None, force: bool, resume: bool):
    """What a training command does before it starts the child: resolve ``model``, refuse to
    resume on another model or data than the run began with, ask the budget
    (:func:`run_preflight`), and write the settings of a new run (:func:`save_settings`).
    Returns the model folder."""
    from mlx_persona.models.resolve import resolve_model

    model_dir = resolve_model(model)
    saved = read_json(out / layout.stage_config(stage)) if resume else None
    if saved and (Path(saved["model"]).resolve(), Path(saved["data"]).resolve()) != (
        model_dir.resolve(),
        Path(data_dir).resolve(),
    ):
        raise PersonaError(
            f"{out} was started on model {saved['model']} and data {saved['data']}; "
            "resume with the same ones or choose another --out"
        )
    run_preflight(model_dir, cfg, device, force, stage=stage, data_dir=data_dir)
    out.mkdir(parents=True, exist_ok=True)
    if not resume:
        save_settings(out, stage, model_dir, data_dir, cfg)
    return model_dir


def layered_settings(out: Path, cls, key: str, label: str, config: str | None, overrides: dict, resume: bool) -> tuple:
    """A training stage's settings, CLI > --config file > the stage's saved settings (on --resume)
    > defaults; returns (settings, saved ``<key>_config.json`` or None). Refuses to start over a
    run that exists, to resume one that does not, and to resume with changed settings."""
    saved = read_json(out / layout.stage_config(key))
    status = read_json(out / layout.STATUS)  # a child that failed before its first checkpoint left nothing to resume
    started = (status is not None and status.get("state") != "failed") or (out / layout.CHECKPOINT).exists()
    if started and not resume:
        raise PersonaError(f"{out} already holds {label} run: pass --resume to continue it, or choose another --out")
    if resume and saved is None:
        raise PersonaError(f"nothing to resume in {out} (no {layout.stage_config(key)})")
    base = dict(saved[key]) if saved else {}
    if config:
        base.update(cls.load(Path(config)).to_dict())
    base.update({k: v for k, v in overrides.items() if v is not None})
    cfg = cls.from_mapping(base)
    if saved is not None:
        changed = [k for k, v in cfg.to_dict().items() if saved[key].get(k) != v]
        if changed:
            k = changed[0]
            raise PersonaError(
                f"{out} was started with {k}={saved[key].get(k)!r}, now {getattr(cfg, k)!r}; "
                "resume with the same settings or choose another --out"
            )
    return cfg, saved


def run_preflight(
    model_dir: Path, cfg, device: str | None, force: bool, stage: str = "sft", data_dir: Path | None = None
) -> None:
    """The budget's verdict for this stage on the data's longest batch (and the worst case),
    printed; a run that will not fit stops here."""
    from mlx_persona.budget.fit import preflight_stage

    est = preflight_stage(str(model_dir), cfg, stage, device=device, force=force, data_dir=data_dir)
    on = f" on the data (longest batch {est.data.keys} tokens)" if est.data else ""
    worst = f"; worst case {est.worst_case_gb:.2f} GB at {cfg.max_seq_length} tokens" if est.data else ""
    console.print(
        f"budget: ~{est.total_gb:.2f} GB{on} of {est.usable_gb:.2f} GB on {est.device} ({est.verdict}){worst}"
    )


def launch(
    model_dir: Path, data: Path, out: Path, resume: bool, show_progress: bool = True, stage: str = "sft"
) -> dict:
    """Run the child to the end, drawing progress from metrics.jsonl; return its status.json.

    ``stage`` names the child module (``python -m mlx_persona.<stage>``), its settings file
    ``<stage>_config.json`` and log ``<stage>.log`` in ``out``; the DPO stage reuses this."""
    log_file = out / layout.stage_log(stage)
    cmd = [
        sys.executable,
        "-m",
        f"mlx_persona.{stage}",
        "--model",
        str(model_dir),
        "--data",
        str(data),
        "--out",
        str(out),
        "--config",
        str(out / layout.stage_config(stage)),
    ] + (["--resume"] if resume else [])
    with open(log_file, "a") as log:
        child = subprocess.Popen(cmd, env=blas.fast_blas_env(), stdout=log, stderr=subprocess.STDOUT)
        try:
            follow(child, out, out / layout.STAGE_METRICS, show_progress, label=stage)
        except KeyboardInterrupt:
            child.wait()
            raise PersonaError(f"interrupted; continue with: mlx-persona {stage} --out {out} --resume") from None
    if child.returncode != 0:
        why = child_error(out / layout.STATUS, child.pid)  # the child's own one-line error
        if why is None:  # it died without one (a crash, a kill): quote the end of its log
            tail = " | ".join(log_file.read_text(errors="replace").splitlines()[-3:])
            why = f"the {stage} child exited with {child.returncode} (see {log_file}): {tail}"
        raise PersonaError(why)
    return json.loads((out / layout.STATUS).read_text())


def follow(child: subprocess.Popen, out: Path, metrics: Path, show: bool, label: str = "sft") -> None:
    cols = [
        TextColumn(label),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("loss {task.fields[loss]}"),
        TextColumn("val {task.fields[val]}"),
        TimeElapsedColumn(),
        TextColumn("eta"),
        TimeRemainingColumn(),
    ]
    with Progress(*cols, console=console, disable=not show) as bar:
        task = bar.add_task(label, total=None, loss="-", val="-")
        pending, offset = "", 0
        while True:
            done = child.poll() is not None
            status = read_json(out / layout.STATUS)
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
                    fields = (
                        {"loss": f"{event['train_loss']:.3f}"}
                        if "train_loss" in event
                        else {"val": f"{event['val_loss']:.3f}"}
                    )
                    bar.update(task, completed=event["iter"], **fields)
            if done:
                return
            time.sleep(0.5)


def read_json(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None
