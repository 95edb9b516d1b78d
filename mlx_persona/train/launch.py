"""Start a training stage's child process and show its progress (the ``sft`` and ``dpo``
commands and the runner all start their children here).

The parent never imports MLX. Both commands are built by :func:`training_command`; the
parent resolves the stage's settings (:func:`layered_settings`), then the model, asks the budget
whether the run fits and writes the settings for the child (:func:`prepare_run`), and starts
``python -m mlx_persona.<stage>`` with the fast BLAS (:func:`launch`). The progress bar (loss,
val loss, ETA, and :func:`speed_text`: ranks, steps/s, peak memory) comes from tailing the
child's ``metrics.jsonl`` (:func:`follow`), and a failed
child's reason from its ``status.json`` (:mod:`mlx_persona.core.child`), never from its console
output.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import click
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from mlx_persona.core import blas, layout
from mlx_persona.core.child import child_error
from mlx_persona.core.errors import PersonaError
from mlx_persona.core.runs import atomic_write_json
from mlx_persona.core.settings import Settings

console = Console(stderr=True)
BACKENDS = ("ring", "jaccl", "mpi")  # mlx.launch's backends for Macs (ring: TCP over Thunderbolt/Ethernet)


@dataclass
class DistributedBlock(Settings):
    """Train one stage across machines with ``mlx.launch`` (the recipe's ``distributed:`` block,
    or ``--hosts`` / ``--hostfile`` / ``--backend`` on ``sft`` and ``dpo``). Empty: one process."""

    block = "distributed"

    hosts: list = field(
        default_factory=list,
        metadata={"help": "Hosts, one rank each (IPs for ring), e.g. [10.0.0.1, 10.0.0.2]; 127.0.0.1 runs locally."},
    )
    hostfile: str | None = field(default=None, metadata={"help": "An mlx.launch hostfile (JSON) instead of hosts."})
    backend: str = field(default="ring", metadata={"help": "mlx.launch backend: ring, jaccl or mpi."})

    def validate(self, where: str | None = None) -> None:
        where = where or self.block
        if self.backend not in BACKENDS:
            raise PersonaError(f"{where}.backend: one of {', '.join(BACKENDS)}, got {self.backend!r}")
        if self.hosts and self.hostfile:
            raise PersonaError(f"{where}: give hosts or hostfile, not both")
        if self.hostfile and not Path(self.hostfile).is_file():
            raise PersonaError(f"{where}.hostfile: {self.hostfile} not found")

    @property
    def world_size(self) -> int:
        if self.hostfile:
            try:
                doc = json.loads(Path(self.hostfile).read_text())
            except (OSError, ValueError):
                raise PersonaError(f"{self.hostfile}: not a readable mlx.launch hostfile (JSON)") from None
            hosts = doc.get("hosts", doc) if isinstance(doc, dict) else doc
            return len(hosts) if isinstance(hosts, list) else 1
        return max(1, len(self.hosts))

    def command(self, cmd: list[str]) -> list[str]:
        """``cmd`` (the child's ``python -m ...``) as every rank runs it under ``mlx.launch``."""
        if self.world_size < 2:
            return cmd
        launcher = Path(sys.executable).parent / "mlx.launch"
        where = ["--hostfile", str(self.hostfile)] if self.hostfile else ["--hosts", ",".join(self.hosts)]
        return [str(launcher), "--backend", self.backend, *where, "--cwd", str(Path.cwd()), "--", *cmd]


def distributed_from(options: dict) -> DistributedBlock:
    """Pop ``hosts`` / ``hostfile`` / ``backend`` from a command's options into a block."""
    hosts = options.pop("hosts", None)
    raw = {"hosts": [h.strip() for h in hosts.split(",") if h.strip()] if hosts else []}
    raw.update({k: v for k in ("hostfile", "backend") if (v := options.pop(k, None)) is not None})
    return DistributedBlock.from_mapping(raw, "distributed")


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
        click.option("--hosts", help="Train across these hosts with mlx.launch, one rank each (comma-separated)."),
        click.option("--hostfile", help="An mlx.launch hostfile instead of --hosts."),
        click.option("--backend", type=click.Choice(BACKENDS), help="mlx.launch backend (default ring)."),
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


def prepare_run(
    out: Path,
    stage: str,
    model: str,
    data_dir: Path,
    cfg,
    device: str | None,
    force: bool,
    resume: bool,
    world_size: int = 1,
):
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
    if cfg.batch_size % world_size:
        raise PersonaError(f"{stage}.batch_size={cfg.batch_size} must be divisible by the {world_size} hosts")
    run_preflight(model_dir, cfg, device, force, stage=stage, data_dir=data_dir, world_size=world_size)
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
    model_dir: Path,
    cfg,
    device: str | None,
    force: bool,
    stage: str = "sft",
    data_dir: Path | None = None,
    world_size: int = 1,
) -> None:
    """The budget's verdict for this stage on the data's longest batch (and the worst case),
    printed; a run that will not fit stops here."""
    from mlx_persona.budget.fit import preflight_stage

    est = preflight_stage(
        str(model_dir), cfg, stage, device=device, force=force, data_dir=data_dir, world_size=world_size
    )
    on = f" on the data (longest batch {est.data.keys} tokens)" if est.data else ""
    worst = f"; worst case {est.worst_case_gb:.2f} GB at {cfg.max_seq_length} tokens" if est.data else ""
    on += f", per rank of {world_size}" if world_size > 1 else ""
    console.print(
        f"budget: ~{est.total_gb:.2f} GB{on} of {est.usable_gb:.2f} GB on {est.device} ({est.verdict}){worst}"
    )


def launch(
    model_dir: Path,
    data: Path,
    out: Path,
    resume: bool,
    show_progress: bool = True,
    stage: str = "sft",
    dist: DistributedBlock | None = None,
) -> dict:
    """Run the child to the end, drawing progress from metrics.jsonl; return its status.json.

    ``stage`` names the child module (``python -m mlx_persona.<stage>``), its settings file
    ``<stage>_config.json`` and log ``<stage>.log`` in ``out``; the DPO stage reuses this. With
    ``dist`` of two or more hosts the child runs as one rank per host under ``mlx.launch``
    (:mod:`mlx_persona.train.ranks`); when a rank fails the error names it."""
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
    world = dist.world_size if dist else 1
    if world > 1:
        from mlx_persona.train.hosts import check_hosts

        check_hosts(dist, data, stage)  # every host reachable, same code, same data: before any rank starts
        cmd = dist.command(cmd)
    start = log_file.stat().st_size if log_file.exists() else 0  # this launch's lines start here
    with open(log_file, "a") as log:
        child = subprocess.Popen(cmd, env=blas.fast_blas_env(), stdout=log, stderr=subprocess.STDOUT)
        try:
            follow(child, out, out / layout.STAGE_METRICS, show_progress, label=stage)
        except KeyboardInterrupt:
            child.wait()
            raise PersonaError(f"interrupted; continue with: mlx-persona {stage} --out {out} --resume") from None
    if world > 1:
        with open(log_file, "rb") as f:
            f.seek(start)
            why = rank_failure(out, world, stage, f.read().decode("utf-8", "replace"))
        if why:
            raise PersonaError(why)
    if child.returncode != 0:
        why = child_error(out / layout.STATUS, child.pid)  # the child's own one-line error
        if why is None:  # it died without one (a crash, a kill): quote the end of its log
            tail = " | ".join(log_file.read_text(errors="replace").splitlines()[-3:])
            why = f"the {stage} child exited with {child.returncode} (see {log_file}): {tail}"
        raise PersonaError(why)
    return json.loads((out / layout.STATUS).read_text())


LAUNCHER_EXIT = re.compile(r"Node with rank (\d+) exited with code (-?\d+)")  # mlx.launch's warning


def rank_failure(out: Path, world: int, stage: str, launch_log: str = "") -> str | None:
    """After ``mlx.launch`` returns: None when every rank finished, else one line naming the rank
    that failed first (one that died without a word before one that reported an error; ranks
    the launcher stopped because of it say ``terminated``).

    A rank the launcher stops while it waits on the dead one can be gone before it says so
    (its status still ``running``, like the dead one's); then ``launch_log`` (what ``mlx.launch``
    printed in this launch) decides: the rank it saw exit first is the one that died."""
    from mlx_persona.train.ranks import rank_status

    statuses = {r: read_json(rank_status(out, r)) or {} for r in range(world)}
    if all(s.get("state") in ("done", "stopped_early") for s in statuses.values()):
        return None
    hint = f"continue with --resume (mlx-persona {stage} --out {out} --resume)"
    silent = [r for r, s in statuses.items() if s.get("state") in (None, "running")]  # killed, or never started
    if silent:
        exits = [int(m.group(1)) for m in LAUNCHER_EXIT.finditer(launch_log) if int(m.group(2)) != 0]
        r = next((r for r in exits if r in silent), silent[0])
        return f"{stage}: rank {r} of {world} died without an error (killed, or its host went away); {hint}"
    for r, s in statuses.items():
        if s.get("state") == "failed":
            return f"{stage}: rank {r} of {world} failed: {s.get('error')}"
    return f"{stage}: the ranks stopped before the end ({', '.join(str(s.get('state')) for s in statuses.values())}); {hint}"


def follow(child: subprocess.Popen, out: Path, metrics: Path, show: bool, label: str = "sft") -> None:
    cols = [
        TextColumn(label),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("loss {task.fields[loss]}"),
        TextColumn("val {task.fields[val]}"),
        TextColumn("{task.fields[speed]}"),
        TimeElapsedColumn(),
        TextColumn("eta"),
        TimeRemainingColumn(),
    ]
    with Progress(*cols, console=console, disable=not show) as bar:
        task = bar.add_task(label, total=None, loss="-", val="-", speed="")
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
                        {"loss": f"{event['train_loss']:.3f}", "speed": speed_text(event)}
                        if "train_loss" in event
                        else {"val": f"{event['val_loss']:.3f}"}
                    )
                    bar.update(task, completed=event["iter"], **fields)
            if done:
                return
            time.sleep(0.5)


def speed_text(event: dict) -> str:
    """How fast and how big, from a train event of ``metrics.jsonl``: "2 ranks · 1.25 steps/s ·
    0.18 GB per rank". A step is one global batch (all ranks together: the group's pace, since
    every rank waits for the others' gradients); memory is rank 0's own peak, which every rank
    shares as each holds the whole model and B/N rows. One process: "1.25 steps/s · 0.18 GB peak"."""
    ranks = event.get("ranks") or 1
    parts = [f"{ranks} ranks"] if ranks > 1 else []
    sec = event.get("sec_per_step")
    if isinstance(sec, (int, float)) and sec > 0:
        parts.append(f"{1 / sec:.2f} steps/s")
    peak = event.get("peak_memory_gb")
    if isinstance(peak, (int, float)):
        parts.append(f"{peak:.2f} GB " + ("per rank" if ranks > 1 else "peak"))
    return " · ".join(parts)


def read_json(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None
