"""The stages of a run, in one table: what each reads, where it writes, what its fingerprints
cover, whether it resumes, and the function that runs it.

    clean ──▶ sft ──▶ sft_fuse ──▶ pairs ──▶ dpo ──▶ dpo_fuse ──▶ twin ──▶ eval ──▶ report ──▶ export

The recipe (``stages:`` and its checks), the runner (:mod:`mlx_persona.runner.pipeline`), the
live view and the ``run`` command's ``--from``/``--until`` all iterate :data:`STAGES`; a new
stage is one :class:`Stage` entry here (and its folder name in :mod:`mlx_persona.core.layout`).

A stage's *input fingerprint* is its recipe blocks (``settings``) plus the output fingerprints of
the stages it reads (``inputs``); its *output fingerprint* covers ``outputs`` in its folder (or
the whole folder). MLX-heavy stages start their own child processes from the functions below.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from mlx_persona.core import layout
from mlx_persona.core.errors import PersonaError


@dataclass
class Context:
    """What every stage function gets: the recipe, the run folder, the resolved base model."""

    recipe: Any  # a runner.recipe.Recipe (recipe.py reads the stage names from here, so no import back)
    run_dir: Path
    model_dir: Path
    log: Callable[[str], None]

    def path(self, stage: str) -> Path:
        folder = STAGE[stage].folder
        if folder is None:
            raise ValueError(f"stage {stage} has no folder of its own")
        return self.run_dir / folder


@dataclass(frozen=True)
class Stage:
    name: str
    run: Callable[[Context, bool], dict]  # (context, resume) -> a short summary for the manifest
    folder: str | None  # its folder in the run (layout.py); None: files at the top
    inputs: tuple = ()  # the stages whose outputs it reads
    settings: tuple = ()  # the recipe blocks its input fingerprint covers
    outputs: tuple | None = None  # what its output fingerprint covers (None: its whole folder)
    resumable: bool = False  # an interrupted run continues from a checkpoint
    trains: bool = False  # a training stage: the budget preflight checks it first
    files: Callable[[Any], list] | None = None  # recipe -> files whose contents its input fingerprint covers


# -- how each stage runs -------------------------------------------------------------------
def _clean(ctx: Context, resume: bool) -> dict:
    from mlx_persona.data.clean import clean
    from mlx_persona.data.ingest import Source

    r = ctx.recipe
    sources = [Source(s.path, s.format, s.persona, tuple(s.aliases)) for s in r.data]
    if not (r.clean.scrub or r.clean.pii):
        ctx.log("warning: clean.scrub is off: phone numbers, e-mails and card numbers stay in the training data")
    # count tokens with the tokenizer the run trains with (not the ~4 characters per token guess),
    # so no sample the cleaner keeps is cut short by the trainer's max_seq_length
    cfg = r.clean if r.clean.model else replace(r.clean, model=r.model)
    return clean(sources, [r.persona.name, *r.persona.aliases], ctx.path("clean"), cfg)


def _train(ctx: Context, stage: str, model_dir: Path, data_dir: Path, resume: bool) -> dict:
    """Write the stage's settings (unless resuming) and run its training child."""
    from mlx_persona.train.launch import launch, save_settings

    out, cfg = ctx.path(stage), getattr(ctx.recipe, stage)
    out.mkdir(parents=True, exist_ok=True)
    resume = resume and (out / layout.stage_config(stage)).exists()
    if not resume:
        save_settings(out, stage, model_dir, data_dir, cfg)
    return launch(model_dir, data_dir, out, resume, show_progress=False, stage=stage, dist=ctx.recipe.distributed)


def _sft(ctx: Context, resume: bool) -> dict:
    return _train(ctx, "sft", ctx.model_dir, ctx.path("clean"), resume)


def _dpo(ctx: Context, resume: bool) -> dict:
    return _train(ctx, "dpo", ctx.path("sft_fuse"), ctx.path("pairs"), resume)


def _fuse(ctx: Context, base: Path, adapter: Path, out: Path, gguf: bool = False, dequantize: bool = False) -> dict:
    from mlx_persona.models.fuse import run_fuse_child

    free = shutil.disk_usage(out.parent).free
    need = sum(p.stat().st_size for p in base.rglob("*") if p.is_file()) * 1.1
    if free < need:
        raise PersonaError(f"not enough disk for {out.name}: {free / 1e9:.1f} GB free, ~{need / 1e9:.1f} GB needed")
    run_fuse_child(base, adapter, out, dequantize=dequantize, gguf=gguf, overwrite=True)
    return {"model": str(out)}


def _sft_fuse(ctx: Context, resume: bool) -> dict:
    # The final twin carries the export (GGUF, fuse.dequantize's float weights); this one too when
    # the recipe stops before DPO. When DPO follows, it trains on this model: it keeps the base's
    # quantization, as the budget planned (a dequantized 7B would not fit a 16 GB Mac).
    f, last = ctx.recipe.fuse, not (ctx.recipe.enabled("dpo") or ctx.recipe.enabled("dpo_fuse"))
    return _fuse(ctx, ctx.model_dir, ctx.path("sft"), ctx.path("sft_fuse"), f.gguf and last, f.dequantize and last)


def _dpo_fuse(ctx: Context, resume: bool) -> dict:
    f = ctx.recipe.fuse
    return _fuse(ctx, ctx.path("sft_fuse"), ctx.path("dpo"), ctx.path("dpo_fuse"), f.gguf, f.dequantize)


def _pairs(ctx: Context, resume: bool) -> dict:
    from mlx_persona.pairs.build import run_pairs

    return run_pairs(
        ctx.model_dir, ctx.path("sft_fuse"), ctx.path("clean"), ctx.path("pairs"), ctx.recipe.pairs, log=ctx.log
    )


def _twin(ctx: Context, resume: bool) -> dict:
    from mlx_persona.runner.twin import pick_twin

    e = ctx.recipe.eval
    record = pick_twin(
        ctx.run_dir,
        ctx.path("twin"),
        max_tokens=e.max_tokens,
        batch_size=e.batch_size,
        log=ctx.log,
        samples=e.samples,
        temperature=e.temperature,
    )
    return {"twin": record["twin"], "folder": record["folder"]}


def _eval(ctx: Context, resume: bool) -> dict:
    from mlx_persona.core.runs import run_twin
    from mlx_persona.eval.evaluate import run_eval
    from mlx_persona.eval.models import find_models

    e = ctx.recipe.eval
    specs, skipped = find_models(run=ctx.run_dir)
    twin = run_twin(ctx.run_dir) if ctx.recipe.enabled("twin") else None
    result = run_eval(
        ctx.path("clean") / layout.TEST_SPLIT,
        ctx.path("eval"),
        specs,
        skipped,
        max_tokens=e.max_tokens,
        batch_size=e.batch_size,
        limit=e.limit,
        perplexity=e.perplexity,
        log=ctx.log,
        twin=twin[0] if twin else None,
        samples=e.samples,
        temperature=e.temperature,
    )
    return {"models": list(result.get("models", {})), "skipped": len(result.get("skipped", []))}


def _report(ctx: Context, resume: bool) -> dict:
    from mlx_persona.report.build import build_report

    md, html = build_report(ctx.run_dir, log=ctx.log)
    return {"report": str(html), "markdown": str(md)}


def _export(ctx: Context, resume: bool) -> dict:
    """The recipe's export block, on the run's twin (``core.runs.run_twin``); nothing when empty."""
    from mlx_persona.core.runs import run_twin
    from mlx_persona.export.targets import Source, export, persona_line

    e = ctx.recipe.export
    ctx.path("export").mkdir(parents=True, exist_ok=True)
    if not e.to:
        return {"targets": []}
    twin = run_twin(ctx.run_dir)
    if twin is None:
        raise PersonaError("export: this run has no twin to export (run sft_fuse first, or drop the export block)")
    source = Source(twin[1], ctx.run_dir.name, ctx.run_dir, persona_line(ctx.run_dir))
    written = {}
    for target in e.to:
        out = export(
            source,
            target,
            quant=e.quant,
            temperature=e.temperature,
            num_ctx=e.num_ctx,
            lmstudio_dir=e.lmstudio_dir,
            overwrite=True,
            log=ctx.log,
        )
        written[target] = str(out)
    return written


# -- the registry, in run order ------------------------------------------------------------
ADAPTER = (layout.ADAPTER_WEIGHTS, layout.ADAPTER_CONFIG)

STAGES: tuple[Stage, ...] = (
    Stage(
        "clean",
        _clean,
        layout.CLEAN_DIR,
        settings=("persona", "data", "clean", "model"),
        # an edited export or blocklist re-runs clean on --resume, not only a changed path
        files=lambda r: [s.path for s in r.data] + ([r.clean.block_words] if r.clean.block_words else []),
        outputs=(layout.TRAIN_SPLIT, layout.VALID_SPLIT, layout.TEST_SPLIT),
    ),
    Stage(
        "sft",
        _sft,
        layout.SFT_DIR,
        inputs=("clean",),
        settings=("model", "sft"),
        outputs=ADAPTER,
        resumable=True,
        trains=True,
    ),
    Stage("sft_fuse", _sft_fuse, layout.SFT_FUSED_DIR, inputs=("sft",), settings=("fuse",)),
    Stage(
        "pairs",
        _pairs,
        layout.PAIRS_DIR,
        inputs=("clean", "sft_fuse"),
        settings=("pairs",),
        outputs=(layout.TRAIN_SPLIT, layout.VALID_SPLIT),
        resumable=True,
    ),
    Stage(
        "dpo",
        _dpo,
        layout.DPO_DIR,
        inputs=("pairs", "sft_fuse"),
        settings=("dpo",),
        outputs=ADAPTER,
        resumable=True,
        trains=True,
    ),
    Stage("dpo_fuse", _dpo_fuse, layout.DPO_FUSED_DIR, inputs=("dpo", "sft_fuse"), settings=("fuse",)),
    Stage(
        "twin",
        _twin,
        layout.TWIN_DIR,
        inputs=("clean", "sft_fuse", "dpo_fuse"),
        settings=("eval",),
        outputs=(layout.TWIN_FILE,),
    ),
    Stage("eval", _eval, layout.EVAL_DIR, inputs=("clean", "sft", "sft_fuse", "dpo_fuse", "twin"), settings=("eval",)),
    Stage("report", _report, None, inputs=("eval",), outputs=(layout.REPORT_MD,)),
    Stage("export", _export, layout.EXPORT_DIR, inputs=("sft_fuse", "dpo_fuse", "twin", "eval"), settings=("export",)),
)
STAGE = {s.name: s for s in STAGES}
STAGE_NAMES = tuple(STAGE)
