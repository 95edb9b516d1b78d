"""``mlx-persona run RECIPE``: the command and its live view.

The view is one rich table redrawn twice a second: every stage with its status and time, and
for the stage at work a progress line (step / total, loss, val loss, ETA; ranks, steps/s and
peak memory per rank from :func:`~mlx_persona.train.launch.speed_text`) read from that stage's
``metrics.jsonl`` and ``status.json`` — the same files a user can tail by hand.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import click
from rich.console import Console, Group
from rich.live import Live
from rich.table import Table
from rich.text import Text

from mlx_persona.core import layout
from mlx_persona.core.errors import PersonaError
from mlx_persona.core.runs import run_twin
from mlx_persona.runner.pipeline import keep_awake, notify, run_recipe
from mlx_persona.runner.recipe import load_recipe
from mlx_persona.runner.stages import STAGE, STAGE_NAMES
from mlx_persona.train.launch import speed_text

ICONS = {"pending": "·", "off": "–", "running": "▶", "done": "✓", "skipped": "↷", "failed": "✗"}
COLORS = {"running": "cyan", "done": "green", "skipped": "dim", "failed": "red", "off": "dim"}


class RunView:
    def __init__(self, run_dir: Path, name: str):
        self.run_dir, self.name = run_dir, name
        self.status = {s: "pending" for s in STAGE_NAMES}
        self.started = {s: None for s in STAGE_NAMES}
        self.ended = {s: None for s in STAGE_NAMES}
        self.t0 = time.time()
        self.lines: list[str] = []

    def on_stage(self, stage: str, status: str) -> None:
        self.status[stage] = status
        if status == "running":
            self.started[stage] = time.time()
        elif status in ("done", "failed"):
            self.ended[stage] = time.time()

    def log(self, msg: str) -> None:
        self.lines = (self.lines + [str(msg)])[-4:]

    def _progress(self, stage: str) -> str:
        folder = STAGE[stage].folder
        if not folder:
            return ""
        d = self.run_dir / folder
        total = None
        try:
            total = json.loads((d / layout.STATUS).read_text()).get("iters")
        except (OSError, ValueError):
            pass
        last, val = {}, None
        try:
            for line in (d / layout.STAGE_METRICS).read_text().splitlines()[-50:]:
                ev = json.loads(line)
                if "val_loss" in ev:
                    val = ev["val_loss"]
                else:
                    last = ev
        except (OSError, ValueError):
            pass
        it = last.get("iter")
        if it is None:
            return ""
        parts = [f"step {it}" + (f"/{total}" if total else "")]
        loss = last.get("train_loss", last.get("loss"))
        if isinstance(loss, (int, float)):
            parts.append(f"loss {loss:.3f}")
        if isinstance(val, (int, float)):
            parts.append(f"val {val:.3f}")
        elapsed = last.get("elapsed")
        if total and it and isinstance(elapsed, (int, float)) and elapsed > 0:
            parts.append(f"ETA {_fmt(elapsed / it * (total - it))}")
        if speed := speed_text(last):
            parts.append(speed)
        return " · ".join(parts)

    def __rich__(self):
        t = Table(
            title=f"mlx-persona run · {self.name} · {_fmt(time.time() - self.t0)}",
            show_header=False,
            box=None,
            padding=(0, 1),
        )
        for s in STAGE_NAMES:
            st = self.status[s]
            took = ""
            if self.started[s]:
                took = _fmt((self.ended[s] or time.time()) - self.started[s])
            detail = self._progress(s) if st == "running" else ""
            t.add_row(
                Text(ICONS.get(st, "?"), style=COLORS.get(st, "")),
                Text(s, style=COLORS.get(st, "")),
                Text(st, style="dim"),
                took,
                detail,
            )
        return Group(t, Text("\n".join(self.lines), style="dim"))


def _fmt(seconds: float) -> str:
    seconds = int(max(0, seconds))
    h, rem = divmod(seconds, 3600)
    m, s = divmod(rem, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m}:{s:02d}"


@click.command("run")
@click.argument("recipe_file", metavar="RECIPE", type=click.Path(path_type=Path))
@click.option("--name", help="Run folder name under --runs (default: the recipe's name).")
@click.option(
    "--runs",
    "runs_root",
    default="runs",
    show_default=True,
    type=click.Path(path_type=Path),
    help="Where run folders live.",
)
@click.option(
    "--resume",
    is_flag=True,
    help="Continue an existing run: skip finished stages whose inputs are "
    "unchanged, resume the interrupted one from its checkpoint.",
)
@click.option("--from", "from_stage", type=click.Choice(STAGE_NAMES), help="Redo the run from this stage on.")
@click.option("--until", type=click.Choice(STAGE_NAMES), help="Stop after this stage.")
@click.option(
    "--set",
    "overrides",
    multiple=True,
    metavar="KEY=VALUE",
    help="Override a recipe setting, e.g. --set sft.rank=32 (repeatable).",
)
@click.option(
    "--sweep",
    "sweep_spec",
    metavar="KEY=V1,V2",
    help="Run once per value of one setting, e.g. --sweep sft.fine_tune_type=lora,dora,full, "
    "then write runs/<name>-compare.md/.html (a recipe's sweep: block does the same).",
)
@click.option("--notify", "notify_end", is_flag=True, help="macOS: show a notification when the run ends.")
@click.option("--plain", is_flag=True, help="Print one line per event instead of the live view (logs, CI).")
def run_command(
    recipe_file, name, runs_root, resume, from_stage, until, overrides, sweep_spec, notify_end, plain
) -> None:
    """Run a recipe end to end: clean → SFT → fuse → pairs → DPO → fuse → eval → report."""
    from mlx_persona.runner.sweep import compare, parse_sweep, variant_name

    recipe = load_recipe(recipe_file, overrides, name)
    if from_stage and until and STAGE_NAMES.index(until) < STAGE_NAMES.index(from_stage):
        raise PersonaError(f"--until {until} comes before --from {from_stage}")
    spec = sweep_spec or recipe.sweep
    if not spec:
        _run_one(recipe, recipe_file, Path(runs_root), resume, from_stage, until, notify_end, plain)
        return
    key, values = parse_sweep(spec, "--sweep" if sweep_spec else f"{recipe_file}: sweep")
    variants = [load_recipe(recipe_file, (*overrides, f"{key}={v}"), variant_name(recipe.name, v)) for v in values]
    for v, variant in zip(values, variants):  # every variant is checked before the first one starts
        click.echo(f"— {key} = {v} —", err=True)
        _run_one(variant, recipe_file, Path(runs_root), resume, from_stage, until, False, plain)
    md, html = compare(Path(runs_root), recipe.name, key, values)
    click.echo(f"comparison: {html} ({md})")
    if notify_end:
        notify("mlx-persona", f"sweep {recipe.name} finished")


def _run_one(recipe, recipe_file, runs_root: Path, resume, from_stage, until, notify_end, plain) -> None:
    run_dir = runs_root / recipe.name
    awake = keep_awake()
    console = Console(stderr=True)
    view = RunView(run_dir, recipe.name)
    ok = False
    try:
        if plain or not console.is_terminal:

            def log(m):
                console.print(m, highlight=False)

            def on_stage(stage, status):
                view.on_stage(stage, status)
                if status in ("running", "done", "failed"):
                    took = (
                        f" ({_fmt(view.ended[stage] - view.started[stage])})"
                        if status != "running" and view.started[stage]
                        else ""
                    )
                    console.print(f"{ICONS[status]} {stage}: {status}{took}", highlight=False)

            run_recipe(recipe, run_dir, resume, from_stage, until, log=log, on_stage=on_stage)
        else:
            with Live(view, console=console, refresh_per_second=2, transient=False):
                run_recipe(recipe, run_dir, resume, from_stage, until, log=view.log, on_stage=view.on_stage)
        ok = True
    except KeyboardInterrupt:
        raise PersonaError(
            f"interrupted; continue with: mlx-persona run {recipe_file} --name {recipe.name} --resume"
        ) from None
    finally:
        if awake is not None:
            awake.terminate()
        if notify_end:
            notify("mlx-persona", f"run {recipe.name} " + ("finished" if ok else "stopped"))
    twin = run_twin(run_dir)
    click.echo(f"run folder: {run_dir}")
    if twin:
        click.echo(f"twin: {twin[1]}   (mlx-persona chat {run_dir})")
    if (run_dir / layout.REPORT_MD).exists():
        click.echo(f"report: {run_dir / layout.REPORT_HTML}")
