"""Fit solver: the highest-quality training settings that fit a device, and the preflight that
stops a stage which will not fit (:func:`preflight`, :func:`preflight_stage`).

Things are given up in a fixed order, cheapest loss first. Each step keeps the mildest value
that fits; when even its floor does not fit, it keeps the floor and the next step begins.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from mlx_persona.budget.data import DataShape, data_shape, reference_pairs
from mlx_persona.budget.devices import Device, get_device
from mlx_persona.budget.estimate import Estimate, TrainSettings, estimate_shape, train_settings
from mlx_persona.budget.shapes import ModelShape, load_shape
from mlx_persona.core import layout
from mlx_persona.core.errors import PersonaError

MIN_SEQ = 256  # below this a chat turn with its context is cut: the persona stops making sense
SEQ_STEP = 256  # sequence lengths are tried in multiples of this
MIN_RANK = 4  # LoRA below rank 4 stops picking up a voice

# What to give up, in order (the README lists the same):
GIVE_UP_ORDER = (
    "reference: DPO reference model out of memory (precomputed log-probs), then fewer pairs per reference batch (same loss)",
    "batch: smaller batch, more gradient accumulation (same effective batch)",
    "checkpoint: gradient checkpointing on (same result, ~30% slower)",
    "method: full or DoRA to LoRA (fewer trainable parameters)",
    "sequence: shorter max_seq_length, down to 256 (long examples are truncated)",
    "rank: lower LoRA rank, down to 4",
    "layers: fewer adapted layers, down to 1",
)


@dataclass
class FitResult:
    """The solver's answer: settings that fit (when ``ok``), and what changed."""

    ok: bool
    original: Estimate
    estimate: Estimate  # the estimate for the proposed settings
    steps: list[str]  # the give-up steps that were used, in order

    @property
    def settings(self) -> TrainSettings:
        return self.estimate.settings

    def overrides(self) -> dict[str, object]:
        """Recipe keys whose value changed (mlx_lm lora config names)."""
        a, b = dataclasses.asdict(self.original.settings), dataclasses.asdict(self.settings)
        return {k: b[k] for k in b if a[k] != b[k]}

    def flags(self) -> str:
        """The same overrides as ``mlx-persona budget`` / stage command-line flags."""
        out = []
        for k, v in self.overrides().items():
            flag = "--" + k.replace("_", "-")
            if isinstance(v, bool):
                out.append(flag if v else "--no-" + flag[2:])
            else:
                out.append(f"{flag} {v}")
        return " ".join(out)

    def yaml(self) -> str:
        """The overrides as recipe YAML lines (rank under ``lora_parameters`` as in mlx_lm)."""
        lines = []
        for k, v in self.overrides().items():
            v = str(v).lower() if isinstance(v, bool) else v
            lines.append(f"lora_parameters:\n  rank: {v}" if k == "rank" else f"{k}: {v}")
        return "\n".join(lines)

    def advice(self) -> str:
        """One line for an error message."""
        if not self.ok:
            return (
                f"No setting fits: the base weights alone take {self.estimate.weights_gb:.2f} GB; "
                "use a smaller or 4-bit model, or a device with more memory."
            )
        if not self.overrides():
            return "It fits as is."
        return f"Fits ({self.estimate.total_gb:.2f} GB) with: {self.flags()}"


def _candidates(
    s: TrainSettings, shape: ModelShape
) -> Iterator[tuple[str, Callable[[TrainSettings], list[TrainSettings]]]]:
    """Each give-up step as (name, settings -> candidates from mildest to its floor)."""
    effective = s.batch_size * s.grad_accumulation_steps

    def batch(t: TrainSettings) -> list[TrainSettings]:
        sizes = [b for b in range(t.batch_size - 1, 0, -1) if effective % b == 0]
        return [dataclasses.replace(t, batch_size=b, grad_accumulation_steps=-(-effective // b)) for b in sizes]

    def seq(t: TrainSettings) -> list[TrainSettings]:
        top = (t.max_seq_length - 1) // SEQ_STEP * SEQ_STEP
        return [dataclasses.replace(t, max_seq_length=n) for n in range(top, MIN_SEQ - 1, -SEQ_STEP)]

    def rank(t: TrainSettings) -> list[TrainSettings]:
        out, r = [], t.rank
        while r // 2 >= MIN_RANK:
            r //= 2
            out.append(dataclasses.replace(t, rank=r))
        return out

    def reference(t: TrainSettings) -> list[TrainSettings]:
        out = [dataclasses.replace(t, reference_in_memory=False)] if t.reference_in_memory else []
        if t.stage == "dpo":  # the reference pass's batch: halved down to one pair
            b = t.reference_batch_size
            while b > 1:
                b //= 2
                out.append(dataclasses.replace(t, reference_in_memory=False, reference_batch_size=b))
        return out

    yield "reference", reference
    yield "batch", batch
    yield "checkpoint", lambda t: [] if t.grad_checkpoint else [dataclasses.replace(t, grad_checkpoint=True)]
    yield "method", lambda t: [] if t.fine_tune_type == "lora" else [dataclasses.replace(t, fine_tune_type="lora")]
    yield "sequence", seq
    yield "rank", lambda t: [] if t.fine_tune_type == "full" else rank(t)
    yield "layers", lambda t: [dataclasses.replace(t, num_layers=n) for n in range(t.num_layers - 1, 0, -1)]


def solve(shape: ModelShape, settings: TrainSettings, dev: Device, data: DataShape | None = None) -> FitResult:
    """Walk :data:`GIVE_UP_ORDER`; stop at the first settings whose verdict is "fits" (on the
    ``data``'s longest batch when given, else the worst case)."""
    original = estimate_shape(shape, settings, dev, data)
    best, steps = original, []
    if best.verdict == "fits":
        return FitResult(True, original, best, steps)
    for name, options in _candidates(original.settings, shape):
        tried = [estimate_shape(shape, t, dev, data) for t in options(best.settings)]
        if not tried:
            continue
        steps.append(name)
        fitting = [e for e in tried if e.verdict == "fits"]
        best = fitting[0] if fitting else tried[-1]  # mildest that fits, else this step's floor
        if fitting:
            return FitResult(True, original, best, steps)
    return FitResult(False, original, best, steps)


def fit(
    model: str | Path,
    *,
    device: str | None = None,
    memory_gb: float | None = None,
    data: DataShape | None = None,
    **settings,
) -> FitResult:
    """The highest-quality settings that fit, giving things up in
    :data:`mlx_persona.budget.fit.GIVE_UP_ORDER` (against ``data``'s longest batch when given)."""
    return solve(load_shape(model), train_settings(**settings), get_device(device, memory_gb), data)


def preflight(
    model: str | Path,
    *,
    device: str | None = None,
    memory_gb: float | None = None,
    force: bool = False,
    data: DataShape | None = None,
    **settings,
) -> Estimate:
    """Estimate before a stage loads weights; raise :class:`PersonaError` with the fit solver's
    overrides when the run does not fit, unless ``force``. ``settings`` are
    :func:`~mlx_persona.budget.estimate.train_settings`'s keyword arguments; ``data`` the
    longest real batch (the figure that decides), else the worst case."""
    shape, s, dev = load_shape(model), train_settings(**settings), get_device(device, memory_gb)
    est = estimate_shape(shape, s, dev, data)
    if est.verdict == "does not fit" and not force:
        on = f" on the data's longest batch ({data.keys} tokens)" if data else ""
        raise PersonaError(
            f"estimated {est.total_gb:.2f} GB{on} > {est.usable_gb:.2f} GB usable on "
            f"{dev.name}: does not fit. {solve(shape, s, dev, data).advice()} (or pass --force)"
        )
    return est


def preflight_stage(
    model: str | Path,
    cfg,
    stage: str,
    device: str | None = None,
    memory_gb: float | None = None,
    force: bool = False,
    data_dir: str | Path | None = None,
    world_size: int = 1,
) -> Estimate:
    """:func:`preflight` for a training stage's settings (an ``SFTConfig`` or ``DPOConfig``); the
    DPO reference is cached log-probs, never a second model in memory, and its pass over
    ``cfg.reference_batch_size`` pairs at a time counts as a peak of its own.

    With ``data_dir`` (its train.jsonl, tokenized with ``model``'s tokenizer) the figure that
    decides is the data's longest batch. When ``data_dir`` is given but not written yet (a run
    whose clean or pairs stage comes first), the worst case is reported and a run is refused
    only when even the shortest batch mlx_lm builds (:data:`FLOOR_TOKENS`) does not fit: the
    stage checks again on its data before it starts. With ``world_size`` ranks each holds
    ``batch_size / world_size`` rows: the figures are memory per rank."""
    settings = dict(
        stage=stage,
        fine_tune_type=cfg.fine_tune_type,
        rank=cfg.rank,
        num_layers=cfg.num_layers,
        keys=cfg.keys,
        batch_size=max(1, cfg.batch_size // max(1, world_size)),
        max_seq_length=cfg.max_seq_length,
        grad_checkpoint=cfg.grad_checkpoint,
        grad_accumulation_steps=cfg.grad_accumulation_steps,
        optimizer=cfg.optimizer,
        reference_in_memory=False,
        reference_batch_size=reference_pairs(cfg) if stage == "dpo" else 0,  # whole batches on every rank
        rows_per_pair=3 if getattr(cfg, "rpo_on", "chosen") == "real" else 2,
        device=device,
        memory_gb=memory_gb,
    )
    there = data_dir is not None and (Path(data_dir) / layout.TRAIN_SPLIT).is_file()
    data = stage_data(model, data_dir, stage, cfg) if there else None
    if data_dir is None or there:  # (data None here: no tokenizer to measure it with, worst case)
        est = preflight(model, force=force, data=data, **settings)
    else:  # data not there yet: refuse now only what no data could make fit
        floor = DataShape(stage, 0, *[FLOOR_TOKENS] * 4, "the shortest batch", FLOOR_TOKENS, FLOOR_TOKENS)
        preflight(model, force=force, data=floor, **settings)
        est = preflight(model, force=True, **settings)
        est.notes.append(f"worst case until {Path(data_dir).name}/ is written; checked on the data before {stage}")
    if world_size > 1:
        est.notes.append(f"per rank of {world_size}: {settings['batch_size']} of {cfg.batch_size} rows each")
    return est


FLOOR_TOKENS = 32  # mlx_lm pads every batch to at least 1 + 32 tokens


def stage_data(model: str | Path, data_dir: str | Path, stage: str, cfg) -> DataShape | None:
    """The data's longest batch for a stage, or None when the data or the model's tokenizer is
    not there (the worst case is used then)."""
    if not (Path(data_dir) / layout.TRAIN_SPLIT).is_file():
        return None
    try:
        return data_shape(Path(model), Path(data_dir), stage, cfg)
    except PersonaError:
        return None
