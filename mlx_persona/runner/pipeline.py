"""``mlx-persona run``: a recipe, end to end, unattended and resumable.

The story of a run:

1. load and check the recipe (typos, missing files, a model that will not fit: one-line errors
   before anything starts), take the run folder's lock, write the resolved ``recipe.yaml``;
2. for each stage in order (the registry, :mod:`mlx_persona.runner.stages`) compute
   its input fingerprint (its settings + the fingerprints of what it reads). A finished stage
   with the same fingerprint is skipped; an interrupted one is resumed from its checkpoint; one
   whose inputs changed is run again from scratch. MLX-heavy stages run in child processes
   (each stage module launches its own), so memory returns to the OS between stages;
3. ``manifest.json`` records status, fingerprints, timings and peak memory after every change;
   a crash at 3 a.m. leaves it consistent, and ``--resume`` carries on.

The live view (stage list, the current stage's progress bar with loss and ETA) is drawn from
the stages' ``metrics.jsonl`` files, never from their console output.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from mlx_persona.core import layout
from mlx_persona.core.errors import PersonaError
from mlx_persona.core.runs import Manifest, RunLock, atomic_write_text, fingerprint, tree_fingerprint
from mlx_persona.runner.recipe import Recipe
from mlx_persona.runner.stages import STAGE, STAGE_NAMES, STAGES, Context


# -- fingerprints --------------------------------------------------------------------------
def input_fingerprint(recipe: Recipe, stage: str, manifest: Manifest) -> str:
    """The stage's recipe blocks, the contents of the files it reads from outside the run (clean:
    the exports and the blocklist) and the output fingerprints of the (enabled) stages it reads."""
    s = STAGE[stage]
    upstream = {i: manifest.stage(i).get("output") for i in s.inputs if recipe.enabled(i)}
    files = [tree_fingerprint(f) for f in s.files(recipe)] if s.files else []
    return fingerprint(stage, {k: recipe.raw[k] for k in s.settings}, upstream, files)


def output_fingerprint(ctx: Context, stage: str) -> str | None:
    s = STAGE[stage]
    folder = ctx.run_dir / s.folder if s.folder else ctx.run_dir
    if s.outputs:
        return fingerprint([tree_fingerprint(folder / k) for k in s.outputs])
    return tree_fingerprint(folder)


# -- the runner ----------------------------------------------------------------------------
def plan(recipe: Recipe, manifest: Manifest, from_stage: str | None, until: str | None) -> list:
    """[(stage, action)] with action run|skip|off; whether a "run" stage resumes or is skipped as
    unchanged is decided in :func:`run_recipe` from its fingerprint."""
    first = STAGE_NAMES.index(from_stage) if from_stage else 0
    last = STAGE_NAMES.index(until) if until else len(STAGE_NAMES) - 1
    out = []
    for i, s in enumerate(STAGE_NAMES):
        if not recipe.enabled(s) or i > last:
            out.append((s, "off"))
        elif i < first:
            out.append((s, "skip" if manifest.stage(s).get("status") == "done" else "off"))
        else:
            out.append((s, "run"))
    return out


def preflight_all(recipe: Recipe, model_dir: Path, run_dir: Path | None = None) -> dict:
    """Budget estimates for the training stages, before any stage starts (raises if no fit): on
    the stage's data when it is already in ``run_dir``, else the worst case (checked again on
    the data by :func:`preflight_one` when the stage starts)."""
    return {
        s.name: preflight_one(recipe, model_dir, s.name, run_dir) for s in STAGES if s.trains and recipe.enabled(s.name)
    }


TRAIN_DATA = {"sft": layout.CLEAN_DIR, "dpo": layout.PAIRS_DIR}  # the folder each training stage reads


def preflight_one(recipe: Recipe, model_dir: Path, stage: str, run_dir: Path | None) -> dict:
    """One training stage's budget (manifest ``budget.<stage>``): ``total_gb`` on the data's
    longest batch when the data is there, ``worst_case_gb`` beside it."""
    from mlx_persona.budget.fit import preflight_stage

    b = recipe.budget
    data_dir = run_dir / TRAIN_DATA[stage] if run_dir is not None else None
    world = recipe.distributed.world_size
    est = preflight_stage(
        str(model_dir), getattr(recipe, stage), stage, b.device, b.memory_gb, b.force, data_dir, world
    )
    return est.to_dict()


def keep_awake() -> subprocess.Popen | None:
    """macOS: hold off idle sleep for as long as this process lives."""
    if sys.platform != "darwin" or shutil.which("caffeinate") is None:
        return None
    return subprocess.Popen(["caffeinate", "-i", "-w", str(os.getpid())])


def notify(title: str, text: str) -> None:
    if sys.platform == "darwin" and shutil.which("osascript"):
        subprocess.run(
            ["osascript", "-e", f"display notification {json.dumps(text)} with title {json.dumps(title)}"],
            check=False,
            capture_output=True,
        )


def run_recipe(
    recipe: Recipe,
    run_dir: Path,
    resume: bool = False,
    from_stage: str | None = None,
    until: str | None = None,
    log: Callable[[str], None] = print,
    on_stage: Callable[[str, str], None] = lambda _s, _st: None,
) -> Manifest:
    """Run the recipe's stages in ``run_dir``; returns the final manifest."""
    from mlx_persona.models.resolve import resolve_model

    run_dir = Path(run_dir)
    manifest_exists = (run_dir / layout.MANIFEST).exists()
    if manifest_exists and not resume and from_stage is None:
        raise PersonaError(
            f"{run_dir} already holds a run: pass --resume to continue it, "
            "--from STAGE to redo from a stage, or --name to start another"
        )
    model_dir = resolve_model(recipe.model)
    budgets = preflight_all(recipe, model_dir, run_dir)
    with RunLock(run_dir) as lock:
        if lock.stale_cleared:
            log("cleared a stale lock left by a run that is no longer alive")
        import yaml

        atomic_write_text(run_dir / layout.RECIPE, yaml.safe_dump(recipe.raw, sort_keys=False, allow_unicode=True))
        manifest = Manifest(run_dir)
        manifest.update(
            name=recipe.name,
            model=recipe.model,
            model_dir=str(model_dir),
            recipe=str(recipe.source),
            budget=budgets,
            pid=os.getpid(),
        )
        ctx = Context(recipe, run_dir, model_dir, log)
        for stage, action in plan(recipe, manifest, from_stage, until):
            if action == "off":
                on_stage(stage, "done" if manifest.stage(stage).get("status") == "done" else "off")
                continue
            entry = manifest.stage(stage)
            fp = input_fingerprint(recipe, stage, manifest)
            if action == "skip" or (
                resume and stage != from_stage and entry.get("status") == "done" and entry.get("input") == fp
            ):
                on_stage(stage, "skipped")
                log(f"{stage}: unchanged, skipped")
                continue
            again = entry.get("status") == "running" and entry.get("input") == fp and STAGE[stage].resumable
            folder = STAGE[stage].folder
            if not again and folder and (run_dir / folder).exists():
                shutil.rmtree(run_dir / folder)  # inputs changed (or never finished): start clean
            if STAGE[stage].trains:  # the data is there now: the budget on its longest batch decides
                budgets[stage] = preflight_one(recipe, model_dir, stage, run_dir)
                manifest.update(budget=budgets)
            on_stage(stage, "running")
            started = time.time()
            manifest.update(stage, status="running", input=fp, started=started)
            try:
                summary = STAGE[stage].run(ctx, again)
            except BaseException as e:
                manifest.update(
                    stage,
                    status="interrupted" if isinstance(e, KeyboardInterrupt) else "failed",
                    error=getattr(e, "message", str(e))[:500],
                    seconds=round(time.time() - started, 1),
                )
                on_stage(stage, "failed")
                raise
            summary = summary if isinstance(summary, dict) else {}
            peak = _peak_memory(run_dir / folder) if folder else None
            manifest.update(
                stage,
                status="done",
                output=output_fingerprint(ctx, stage),
                finished=time.time(),
                seconds=round(time.time() - started, 1),
                peak_memory_gb=peak,
                summary=_small(summary),
                error=None,
            )
            on_stage(stage, "done")
        manifest.update(finished=time.time(), pid=None)
    return manifest


def _peak_memory(folder: Path) -> float | None:
    metrics = folder / layout.STAGE_METRICS
    if not metrics.exists():
        return None
    peak = None
    for line in metrics.read_text().splitlines():
        try:
            v = json.loads(line).get("peak_memory_gb")
        except json.JSONDecodeError:
            continue
        if isinstance(v, (int, float)):
            peak = max(peak or 0.0, float(v))
    return peak


def _small(summary: dict) -> dict:
    """Keep the manifest readable: scalars and short lists only."""
    return {
        k: v
        for k, v in summary.items()
        if isinstance(v, (int, float, str, bool, type(None)))
        or (isinstance(v, (list, dict)) and len(json.dumps(v, default=str)) < 400)
    }
