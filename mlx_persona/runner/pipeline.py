"""``mlx-persona run``: a recipe, end to end, unattended and resumable.

The story of a run:

1. load and check the recipe (typos, missing files, a model that will not fit: one-line errors
   before anything starts), take the run folder's lock, write the resolved ``recipe.yaml``;
2. for each stage in order — clean, sft, sft_fuse, pairs, dpo, dpo_fuse, eval, report — compute
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
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional

from mlx_persona.core import layout
from mlx_persona.core.errors import PersonaError
from mlx_persona.runner.recipe import STAGES, Recipe
from mlx_persona.core.runs import Manifest, RunLock, atomic_write_text, fingerprint, tree_fingerprint

# what each stage reads (other stages) and where it writes
STAGE_INPUTS = {
    "clean": (), "sft": ("clean",), "sft_fuse": ("sft",), "pairs": ("clean", "sft_fuse"),
    "dpo": ("pairs", "sft_fuse"), "dpo_fuse": ("dpo", "sft_fuse"), "eval": ("clean", "sft", "sft_fuse", "dpo_fuse"),
    "report": ("eval",),
}
STAGE_DIRS = {
    "clean": layout.CLEAN_DIR, "sft": layout.SFT_DIR, "sft_fuse": layout.SFT_FUSED_DIR, "pairs": layout.PAIRS_DIR,
    "dpo": layout.DPO_DIR, "dpo_fuse": layout.DPO_FUSED_DIR, "eval": layout.EVAL_DIR, "report": None,
}
RESUMABLE = ("sft", "pairs", "dpo")  # these continue from a checkpoint instead of starting over


@dataclass
class Context:
    recipe: Recipe
    run_dir: Path
    model_dir: Path
    log: Callable[[str], None]

    def path(self, stage: str) -> Path:
        return self.run_dir / STAGE_DIRS[stage]


# -- the stages ----------------------------------------------------------------------------
def _clean(ctx: Context, resume: bool) -> dict:
    from mlx_persona.data.clean import clean
    from mlx_persona.data.ingest import Source

    r = ctx.recipe
    sources = [Source(s.path, s.format, s.persona) for s in r.data]
    return clean(sources, [r.persona.name, *r.persona.aliases], ctx.path("clean"), r.clean)


def _sft(ctx: Context, resume: bool) -> dict:
    from mlx_persona.core.runs import atomic_write_json
    from mlx_persona.sft.cli import CONFIG_FILE
    from mlx_persona.train.launch import launch

    out, cfg = ctx.path("sft"), ctx.recipe.sft
    out.mkdir(parents=True, exist_ok=True)
    resume = resume and (out / CONFIG_FILE).exists()
    if not resume:
        atomic_write_json(out / CONFIG_FILE, {"model": str(ctx.model_dir), "data": str(ctx.path("clean")),
                                              "sft": cfg.to_dict()})
    return launch(ctx.model_dir, ctx.path("clean"), out, resume, show_progress=False)


def _fuse(ctx: Context, base: Path, adapter: Path, out: Path, gguf: bool = False) -> dict:
    from mlx_persona.models.fuse import run_fuse_child

    free = shutil.disk_usage(out.parent).free
    need = sum(p.stat().st_size for p in base.rglob("*") if p.is_file()) * 1.1
    if free < need:
        raise PersonaError(f"not enough disk for {out.name}: {free / 1e9:.1f} GB free, ~{need / 1e9:.1f} GB needed")
    run_fuse_child(base, adapter, out, dequantize=ctx.recipe.fuse.dequantize, gguf=gguf, overwrite=True)
    return {"model": str(out)}


def _sft_fuse(ctx: Context, resume: bool) -> dict:
    # the final twin carries the GGUF export; this one too when the recipe stops before DPO
    gguf = ctx.recipe.fuse.gguf and not ctx.recipe.enabled("dpo_fuse")
    return _fuse(ctx, ctx.model_dir, ctx.path("sft"), ctx.path("sft_fuse"), gguf)


def _pairs(ctx: Context, resume: bool) -> dict:
    from mlx_persona.pairs.build import run_pairs

    return run_pairs(ctx.model_dir, ctx.path("sft_fuse"), ctx.path("clean"), ctx.path("pairs"), ctx.recipe.pairs,
                     log=ctx.log)


def _dpo(ctx: Context, resume: bool) -> dict:
    from mlx_persona.dpo.cli import CONFIG_FILE
    from mlx_persona.core.runs import atomic_write_json
    from mlx_persona.train.launch import launch

    out, cfg, twin = ctx.path("dpo"), ctx.recipe.dpo, ctx.path("sft_fuse")
    out.mkdir(parents=True, exist_ok=True)
    resume = resume and (out / CONFIG_FILE).exists()
    if not resume:
        atomic_write_json(out / CONFIG_FILE, {"model": str(twin), "data": str(ctx.path("pairs")), "dpo": cfg.to_dict()})
    return launch(twin, ctx.path("pairs"), out, resume, show_progress=False, stage="dpo")


def _dpo_fuse(ctx: Context, resume: bool) -> dict:
    return _fuse(ctx, ctx.path("sft_fuse"), ctx.path("dpo"), ctx.path("dpo_fuse"), ctx.recipe.fuse.gguf)


def _eval(ctx: Context, resume: bool) -> dict:
    from mlx_persona.eval.models import find_models
    from mlx_persona.eval.evaluate import run_eval

    e = ctx.recipe.eval
    specs, skipped = find_models(run=ctx.run_dir)
    result = run_eval(ctx.path("clean") / layout.TEST_SPLIT, ctx.path("eval"), specs, skipped, max_tokens=e.max_tokens,
                      batch_size=e.batch_size, limit=e.limit, perplexity=e.perplexity, log=ctx.log)
    return {"models": list(result.get("models", {})), "skipped": len(result.get("skipped", []))}


def _report(ctx: Context, resume: bool) -> dict:
    from mlx_persona.report.build import build_report

    md, html = build_report(ctx.run_dir, log=ctx.log)
    return {"report": str(html), "markdown": str(md)}


STAGE_FUNCS = {"clean": _clean, "sft": _sft, "sft_fuse": _sft_fuse, "pairs": _pairs, "dpo": _dpo,
               "dpo_fuse": _dpo_fuse, "eval": _eval, "report": _report}


# -- fingerprints --------------------------------------------------------------------------
def _settings_of(recipe: Recipe, stage: str):
    block = {"clean": ("persona", "data", "clean"), "sft": ("model", "sft"), "sft_fuse": ("fuse",),
             "pairs": ("pairs",), "dpo": ("dpo",), "dpo_fuse": ("fuse",), "eval": ("eval",), "report": ()}[stage]
    return {k: recipe.raw[k] for k in block}


def input_fingerprint(recipe: Recipe, stage: str, manifest: Manifest) -> str:
    upstream = {s: manifest.stage(s).get("output") for s in STAGE_INPUTS[stage] if recipe.enabled(s)}
    return fingerprint(stage, _settings_of(recipe, stage), upstream)


def output_fingerprint(ctx: Context, stage: str) -> Optional[str]:
    d = STAGE_DIRS[stage]
    if d is None:
        return tree_fingerprint(ctx.run_dir / layout.REPORT_MD)
    folder = ctx.run_dir / d
    keep = {"sft": (layout.ADAPTER_WEIGHTS, layout.ADAPTER_CONFIG), "dpo": (layout.ADAPTER_WEIGHTS, layout.ADAPTER_CONFIG),
            "clean": (layout.TRAIN_SPLIT, layout.VALID_SPLIT, layout.TEST_SPLIT),
            "pairs": ("train.jsonl", "valid.jsonl")}.get(stage)
    if keep:
        return fingerprint([tree_fingerprint(folder / k) for k in keep])
    return tree_fingerprint(folder)


# -- the runner ----------------------------------------------------------------------------
def plan(recipe: Recipe, manifest: Manifest, from_stage: Optional[str], until: Optional[str]) -> list:
    """[(stage, action)] with action run|skip|off; whether a "run" stage resumes or is skipped as
    unchanged is decided in :func:`run_recipe` from its fingerprint."""
    first = STAGES.index(from_stage) if from_stage else 0
    last = STAGES.index(until) if until else len(STAGES) - 1
    out = []
    for i, s in enumerate(STAGES):
        if not recipe.enabled(s) or i > last:
            out.append((s, "off"))
        elif i < first:
            out.append((s, "skip" if manifest.stage(s).get("status") == "done" else "off"))
        else:
            out.append((s, "run"))
    return out


def preflight_all(recipe: Recipe, model_dir: Path) -> dict:
    """Budget estimates for the training stages, before any stage starts (raises if no fit)."""
    from mlx_persona.budget.fit import preflight_stage

    b = recipe.budget
    return {stage: preflight_stage(str(model_dir), getattr(recipe, stage), stage, b.device, b.memory_gb, b.force).to_dict()
            for stage in ("sft", "dpo") if recipe.enabled(stage)}


def keep_awake() -> Optional[subprocess.Popen]:
    """macOS: hold off idle sleep for as long as this process lives."""
    if sys.platform != "darwin" or shutil.which("caffeinate") is None:
        return None
    return subprocess.Popen(["caffeinate", "-i", "-w", str(os.getpid())])


def notify(title: str, text: str) -> None:
    if sys.platform == "darwin" and shutil.which("osascript"):
        subprocess.run(["osascript", "-e", f'display notification {json.dumps(text)} with title {json.dumps(title)}'],
                       check=False, capture_output=True)


def run_recipe(recipe: Recipe, run_dir: Path, resume: bool = False, from_stage: Optional[str] = None,
               until: Optional[str] = None, log: Callable[[str], None] = print,
               on_stage: Callable[[str, str], None] = lambda _s, _st: None) -> Manifest:
    """Run the recipe's stages in ``run_dir``; returns the final manifest."""
    from mlx_persona.models.resolve import resolve_model

    run_dir = Path(run_dir)
    manifest_exists = (run_dir / layout.MANIFEST).exists()
    if manifest_exists and not resume and from_stage is None:
        raise PersonaError(f"{run_dir} already holds a run: pass --resume to continue it, "
                           "--from STAGE to redo from a stage, or --name to start another")
    model_dir = resolve_model(recipe.model)
    budgets = preflight_all(recipe, model_dir)
    with RunLock(run_dir) as lock:
        if lock.stale_cleared:
            log("cleared a stale lock left by a run that is no longer alive")
        import yaml

        atomic_write_text(run_dir / layout.RECIPE, yaml.safe_dump(recipe.raw, sort_keys=False, allow_unicode=True))
        manifest = Manifest(run_dir)
        manifest.update(name=recipe.name, model=recipe.model, model_dir=str(model_dir),
                        recipe=str(recipe.source), budget=budgets, pid=os.getpid())
        ctx = Context(recipe, run_dir, model_dir, log)
        for stage, action in plan(recipe, manifest, from_stage, until):
            if action == "off":
                on_stage(stage, "done" if manifest.stage(stage).get("status") == "done" else "off")
                continue
            entry = manifest.stage(stage)
            fp = input_fingerprint(recipe, stage, manifest)
            if action == "skip" or (resume and stage != from_stage and entry.get("status") == "done"
                                    and entry.get("input") == fp):
                on_stage(stage, "skipped")
                log(f"{stage}: unchanged, skipped")
                continue
            again = entry.get("status") == "running" and entry.get("input") == fp and stage in RESUMABLE
            folder = STAGE_DIRS[stage]
            if not again and folder and (run_dir / folder).exists():
                shutil.rmtree(run_dir / folder)  # inputs changed (or never finished): start clean
            on_stage(stage, "running")
            started = time.time()
            manifest.update(stage, status="running", input=fp, started=started)
            try:
                summary = STAGE_FUNCS[stage](ctx, again)
            except BaseException as e:
                manifest.update(stage, status="interrupted" if isinstance(e, KeyboardInterrupt) else "failed",
                                error=getattr(e, "message", str(e))[:500], seconds=round(time.time() - started, 1))
                on_stage(stage, "failed")
                raise
            summary = summary if isinstance(summary, dict) else {}
            peak = _peak_memory(run_dir / folder) if folder else None
            manifest.update(stage, status="done", output=output_fingerprint(ctx, stage), finished=time.time(),
                            seconds=round(time.time() - started, 1), peak_memory_gb=peak,
                            summary=_small(summary), error=None)
            on_stage(stage, "done")
        manifest.update(finished=time.time(), pid=None)
    return manifest


def _peak_memory(folder: Path) -> Optional[float]:
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
    return {k: v for k, v in summary.items() if isinstance(v, (int, float, str, bool, type(None)))
            or (isinstance(v, (list, dict)) and len(json.dumps(v, default=str)) < 400)}
