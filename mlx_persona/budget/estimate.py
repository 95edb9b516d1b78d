"""Memory budget: estimate a training run's peak memory before any weights load, and fit it.

    shape (config.json) + settings ──estimate──▶ Estimate (GB per component, verdict)
                                     ──fit──────▶ the best settings that fit, as recipe overrides

The estimate follows mlx_lm's trainer (``mlx_lm.tuner.train``): frozen base weights, float32
LoRA/DoRA matrices (or the full blocks) as trainable parameters, one gradient each, Adam's two
moments, the activations autodiff keeps for the backward pass, and the logits/loss stack. The
per-token activation coefficients were fitted to ``mx.get_peak_memory()`` measured on this
project's machine (bench/budget_accuracy.py, bench/RESULTS.md); every other term is plain arithmetic.
SFT and DPO call :func:`preflight` and refuse a run that will not fit.

A DPO stage has a second peak before its first step: the reference pass, a forward pass without
gradients over ``reference_batch_size`` pairs at a time (:func:`_reference_pass`). The stage's
peak is the larger of the two; the ``reference`` component holds what the pass needs beyond the
training step (zero when the step is the larger).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path

from mlx_persona.budget.data import DataShape, pad_width
from mlx_persona.budget.devices import Device, get_device
from mlx_persona.budget.shapes import ModelShape, load_shape
from mlx_persona.core.errors import PersonaError

GB = 1e9  # mx.get_peak_memory() / 1e9, the unit mlx_lm reports
TIGHT_FRACTION = 0.9  # within 10% of the limit is "tight": the estimate's own error target is ±10%


@dataclass(frozen=True)
class Backend:
    """The measured coefficients of one MLX backend (fitted to ``mx.get_peak_memory()``;
    bench/budget_accuracy.py prints the table that refits them, ``--device metal`` on a Mac)."""

    # Activation elements kept per token per backpropagated block: hidden-sized tensors (norm
    # outputs, q, attention output, residuals) ...
    act_per_hidden: float = 8.1
    # ... intermediate-sized tensors (gate, up, SiLU pieces, their product) ...
    act_per_intermediate: float = 5.3
    # ... k/v projections (before and after RoPE) ...
    act_per_kv: float = 1.6
    # ... and attention probabilities, one (heads x keys) row per token: quadratic in length.
    act_per_score: float = 1.0
    # DoRA also keeps part of each adapted layer's output per token (the product before the
    # magnitude rescale): 0.5 per output element, fitted on 4-bit tiny runs (tests/test_quantized.py),
    # which also moves the float32 SmolLM2 DoRA rows of bench/RESULTS.md closer (-9.0% -> about -2%).
    act_per_dora_output: float = 0.5
    # 16-bit models keep float32 pieces (the float32 LoRA branch, softmax): measured 0.675x float32.
    half_act_ratio: float = 0.675
    # Logits, their softmax, the loss gradient and its scatter: four (tokens x vocab) arrays at peak.
    logits_copies: float = 4
    # At the loss, one more block's worth is in flight (two when recomputing), measured.
    transient_blocks: float = 1
    checkpoint_transient_blocks: float = 2
    # Inside a block's backward: attention-score-sized gradients in flight (more when recomputing).
    attn_backward_copies: float = 1.3
    attn_backward_copies_checkpoint: float = 3.0
    overhead_gb: float = 0.005  # token batches, compiled-graph scratch, RNG state: tiny runs peak at ~7 MB
    # DPO's reference pass, no gradients: one block's tensors (linear-sized and attention scores)
    # in flight at a time (bench/reference_pass.py: within +1% to +4% where the pass is large)
    reference_blocks: float = 1.0
    source: str = ""


# One row per backend. cpu: fitted on this project's Linux machine (bench/RESULTS.md). metal: the
# same figures until a Mac's `bench/budget_accuracy.py --device metal` table refits them.
BACKENDS: dict[str, Backend] = {
    "cpu": Backend(source="fitted on Linux CPU, mlx 0.32 (bench/RESULTS.md)"),
    "metal": Backend(source="the cpu figures; not yet refitted on Metal (bench/budget_accuracy.py --device metal)"),
}
OPTIMIZER_MOMENTS = {"adam": 2, "adamw": 2, "sgd": 0, "adafactor": 0.05}  # state per trainable param
STAGES, FINE_TUNE_TYPES = ("sft", "dpo"), ("lora", "dora", "full")


@dataclass(frozen=True)
class TrainSettings:
    """The knobs that move memory; names follow mlx_lm's lora config keys."""

    stage: str = "sft"  # sft, or dpo (chosen + rejected per example)
    fine_tune_type: str = "lora"  # lora, dora or full
    rank: int = 8  # LoRA/DoRA rank
    num_layers: int = 16  # blocks adapted, counted from the top; -1 = all
    keys: tuple[str, ...] | None = None  # adapted linear keys; None = every linear in a block
    batch_size: int = 4  # sequences per step (DPO: pairs)
    max_seq_length: int = 2048  # tokens per sequence after truncation
    grad_checkpoint: bool = False  # recompute block activations in backward
    grad_accumulation_steps: int = 1  # micro-batches per optimizer update
    optimizer: str = "adam"  # adam, adamw, sgd or adafactor
    reference_in_memory: bool = False  # DPO: hold a second full model as the reference
    reference_batch_size: int = 8  # DPO: pairs per forward pass of the cached reference (0: no pass, SimPO)
    rows_per_pair: int = 2  # DPO: chosen and rejected, and the anchor reply under rpo_on: real

    def validate(self, shape: ModelShape) -> TrainSettings:
        """Check ranges and clamp ``num_layers`` to the model; one-line errors."""
        problems = [
            f"{k} must be at least {lo}, got {getattr(self, k)}"
            for k, lo in (
                ("rank", 1),
                ("batch_size", 1),
                ("max_seq_length", 2),
                ("grad_accumulation_steps", 1),
                ("reference_batch_size", 0),
            )
            if getattr(self, k) < lo
        ]
        if self.stage not in STAGES:
            problems.append(f"stage must be one of {', '.join(STAGES)}, got {self.stage!r}")
        if self.fine_tune_type not in FINE_TUNE_TYPES:
            problems.append(f"fine_tune_type must be one of {', '.join(FINE_TUNE_TYPES)}, got {self.fine_tune_type!r}")
        if self.optimizer not in OPTIMIZER_MOMENTS:
            problems.append(f"optimizer must be one of {', '.join(OPTIMIZER_MOMENTS)}, got {self.optimizer!r}")
        if self.num_layers == 0 or self.num_layers < -1:
            problems.append(f"num_layers must be -1 (all) or at least 1, got {self.num_layers}")
        if self.fine_tune_type == "full" and shape.bits:
            problems.append("full fine-tuning needs an unquantized model (use lora or dora)")
        known = {k for k, _, _ in shape.linears()}
        if self.keys and not set(self.keys) <= known:
            problems.append(f"unknown keys {sorted(set(self.keys) - known)}; known: {sorted(known)}")
        if problems:
            raise PersonaError("; ".join(problems))
        n = shape.layers if self.num_layers == -1 else min(self.num_layers, shape.layers)
        return dataclasses.replace(self, num_layers=n)


@dataclass
class Estimate:
    """Peak memory of one training step, by component, against a device's usable memory."""

    model: str
    device: str
    settings: TrainSettings
    weights_gb: float  # base model weights, quantization scales and biases included
    adapter_gb: float  # trainable LoRA/DoRA parameters (full: already inside weights_gb)
    gradients_gb: float  # one gradient per trainable parameter (two trees when accumulating)
    optimizer_gb: float  # optimizer state (Adam: two moments)
    activations_gb: float  # per-block tensors kept for backward (DoRA: dequantized weights too)
    attention_gb: float  # attention probabilities, quadratic in sequence length
    logits_gb: float  # logits and cross-entropy stack, tokens x vocab
    backward_gb: float  # one block's backward working set in flight, beyond the freed logits
    reference_gb: float  # DPO: the reference model held in memory, or the reference pass beyond the step
    overhead_gb: float  # framework scratch
    usable_gb: float
    device_source: str = ""
    notes: list[str] = field(default_factory=list)
    data: DataShape | None = None  # the longest real batch this figure is for; None: worst case
    worst_case_gb: float | None = None  # with data: the same settings, every row max_seq_length
    reference_pass_gb: float = 0.0  # DPO: the reference pass's own peak, weights included (0: none)

    COMPONENTS = (
        "weights",
        "adapter",
        "gradients",
        "optimizer",
        "activations",
        "attention",
        "logits",
        "backward",
        "reference",
        "overhead",
    )

    def components(self) -> dict[str, float]:
        return {f"{c}_gb": getattr(self, f"{c}_gb") for c in self.COMPONENTS}

    @property
    def total_gb(self) -> float:
        return sum(self.components().values())

    @property
    def verdict(self) -> str:
        if self.total_gb <= TIGHT_FRACTION * self.usable_gb:
            return "fits"
        return "tight" if self.total_gb <= self.usable_gb else "does not fit"

    def to_dict(self) -> dict:
        s = dataclasses.asdict(self.settings)
        s["keys"] = list(self.settings.keys) if self.settings.keys else None
        return {
            "model": self.model,
            "device": self.device,
            "device_source": self.device_source,
            "settings": s,
            "components": {k: round(v, 4) for k, v in self.components().items()},
            "total_gb": round(self.total_gb, 4),
            "usable_gb": round(self.usable_gb, 4),
            "verdict": self.verdict,
            "notes": self.notes,
            "basis": "data" if self.data else "worst case",
            "worst_case_gb": round(self.worst_case_gb if self.worst_case_gb is not None else self.total_gb, 4),
            "reference_pass_gb": round(self.reference_pass_gb, 4),
            "data": self.data.to_dict() if self.data else None,
        }


def _weight_bytes(shape: ModelShape) -> float:
    """Bytes of the base weights. Quantized: every linear and the embedding hold ``bits`` per
    weight plus a 16-bit scale and bias per group; norms and q/k/v biases stay unquantized."""
    matrices = shape.layers * sum(i * o for _, i, o in shape.linears())
    matrices += shape.vocab * shape.hidden * (1 if shape.tie_embeddings else 2)
    rest = shape.total_params() - matrices
    if shape.bits:
        per_weight = shape.bits / 8 + 2 * shape.dtype_bytes / shape.group_size
        return matrices * per_weight + rest * shape.dtype_bytes
    return shape.total_params() * shape.dtype_bytes


def _adapted(shape: ModelShape, s: TrainSettings) -> list[tuple[str, int, int]]:
    return [t for t in shape.linears() if s.keys is None or t[0] in s.keys]


def _trainable(shape: ModelShape, s: TrainSettings) -> tuple[float, float]:
    """(trainable parameter count, bytes per trainable parameter)."""
    if s.fine_tune_type == "full":
        return s.num_layers * shape.block_params(), shape.dtype_bytes
    per_block = sum(s.rank * (i + o) + (o if s.fine_tune_type == "dora" else 0) for _, i, o in _adapted(shape, s))
    return s.num_layers * per_block, 4  # mlx_lm creates LoRA/DoRA matrices in float32


def _block_activation_elems(shape: ModelShape, s: TrainSettings, k: Backend, keys: float) -> tuple[float, float]:
    """Elements one backpropagated block keeps per token: (linear-sized, attention scores over
    ``keys`` key positions)."""
    kv = shape.kv_heads * shape.head_dim
    linear = k.act_per_hidden * shape.hidden + k.act_per_intermediate * shape.intermediate + k.act_per_kv * kv
    if s.fine_tune_type != "full":
        linear += s.rank * len(_adapted(shape, s))  # x @ A of each low-rank branch
    if s.fine_tune_type == "dora":
        linear += k.act_per_dora_output * sum(o for _, _, o in _adapted(shape, s))
    return linear, k.act_per_score * shape.heads * keys


def _reference_pass(shape: ModelShape, s: TrainSettings, k: Backend, act_bytes: float, data: DataShape | None):
    """(bytes beyond the weights, padded width W) of DPO's reference pass: 2·``reference_batch_size``
    rows of W tokens (the model sees W - 1), scored without gradients, before the adapter exists.

    Nothing is kept for a backward pass, so about one base block's tensors are in flight at a
    time (``reference_blocks``: its linear-sized tensors and the attention scores over W - 1
    keys), plus the reply logits, rows x R x vocab: in the model's dtype, then a float32 copy
    for the log-softmax (one copy when the model is float32). W and R: the data's widest
    reference batch, else the worst case, W = max_seq_length and R = max_seq_length / 2 (a
    longer reply is skipped), both rounded up to 8 as the batches are."""
    if data is not None and data.reference_keys:
        width, reply = data.reference_keys, data.reference_logits
    else:
        width, reply = pad_width(s.max_seq_length), pad_width(s.max_seq_length // 2)
    rows, positions = 2 * s.reference_batch_size, width - 1
    base = dataclasses.replace(s, fine_tune_type="full")  # the base block alone: no adapter yet
    linear, scores = _block_activation_elems(shape, base, k, positions)
    block = rows * positions * act_bytes * (linear + scores)
    logit_bytes = 4 + (shape.dtype_bytes if shape.dtype_bytes != 4 else 0)
    return k.reference_blocks * block + rows * reply * shape.vocab * logit_bytes, width


def estimate_shape(shape: ModelShape, settings: TrainSettings, dev: Device, data: DataShape | None = None) -> Estimate:
    """The estimate for an already-resolved shape and device (the fit solver's inner loop).

    Without ``data`` every row is padded to ``max_seq_length`` (the worst case). With it (the
    longest batch the trainer builds from the real data, :mod:`mlx_persona.budget.data`) each
    of the ``seqs`` rows runs ``data.positions`` tokens, attends over ``data.keys`` keys and sends
    ``data.logits`` positions to the output head."""
    s = settings.validate(shape)
    k = BACKENDS.get(dev.backend, BACKENDS["cpu"])
    notes: list[str] = []
    act_bytes = shape.dtype_bytes if shape.dtype_bytes == 4 else 4 * k.half_act_ratio
    seqs = s.batch_size * (s.rows_per_pair if s.stage == "dpo" else 1)  # DPO runs chosen and rejected (+ anchor)
    if data is not None:
        data = data.at(s.max_seq_length)
        positions, keys, head = data.positions, data.keys, data.logits
    else:
        positions = keys = head = s.max_seq_length
    tokens = seqs * positions
    weights = _weight_bytes(shape)
    n_train, p_bytes = _trainable(shape, s)
    adapter = 0.0 if s.fine_tune_type == "full" else n_train * p_bytes
    grads = n_train * p_bytes * (2 if s.grad_accumulation_steps > 1 else 1)
    optim = n_train * p_bytes * OPTIMIZER_MOMENTS[s.optimizer]

    linear, scores = _block_activation_elems(shape, s, k, keys)
    block_lin, block_att = tokens * act_bytes * linear, tokens * act_bytes * scores
    logits = k.logits_copies * seqs * head * shape.vocab * act_bytes
    # Two moments hold the peak: at the loss (every kept block + the logits stack + blocks in
    # flight) and inside one block's backward (the logits freed, the attention gradients live).
    if s.grad_checkpoint:  # keep each block's input only; recompute one block at a time
        kept = 0
        acts = tokens * act_bytes * s.num_layers * shape.hidden
        at_loss, in_block = k.checkpoint_transient_blocks, k.attn_backward_copies_checkpoint
    else:
        kept = s.num_layers
        acts = 0.0
        at_loss, in_block = k.transient_blocks, k.attn_backward_copies
    acts += kept * block_lin
    attention = kept * block_att
    backward = max(at_loss * (block_lin + block_att), block_lin + (1 + in_block) * block_att - logits)
    if s.fine_tune_type == "dora":  # DoRA re-forms each adapted weight every step
        w_elems = sum(i * o for _, i, o in _adapted(shape, s))
        held = ((1 if s.grad_checkpoint else s.num_layers) if shape.bits else 0) * w_elems
        acts += (held + w_elems) * shape.dtype_bytes  # + the adapted copy for the norm, in flight
        if shape.bits:
            notes.append(
                "DoRA on a quantized model keeps a dequantized copy of each adapted "
                "weight for backward" + ("" if s.grad_checkpoint else "; checkpointing limits it to one block")
            )

    reference = reference_pass = 0.0
    if s.stage == "dpo" and s.reference_in_memory:  # a second model, forward only
        reference = weights + tokens * act_bytes * (linear + scores) + seqs * head * shape.vocab * act_bytes
        notes.append("the reference model is held in memory; precomputed reference log-probs avoid it")
    elif s.stage == "dpo" and s.reference_batch_size:  # the stage's peak: max(training step, reference pass)
        step = weights + adapter + grads + optim + acts + attention + logits + backward + k.overhead_gb * GB
        extra, width = _reference_pass(shape, s, k, act_bytes, data)
        reference_pass = weights + extra + k.overhead_gb * GB
        reference = max(0.0, reference_pass - step)
        if reference:
            notes.append(
                f"the reference pass ({s.reference_batch_size} pairs of up to {width} tokens, no gradients) "
                f"peaks at {reference_pass / GB:.2f} GB, above the training step's {step / GB:.2f} GB; "
                "a smaller dpo.reference_batch_size lowers it"
            )
    return Estimate(
        model=shape.name,
        device=dev.name,
        settings=s,
        weights_gb=weights / GB,
        adapter_gb=adapter / GB,
        gradients_gb=grads / GB,
        optimizer_gb=optim / GB,
        activations_gb=acts / GB,
        attention_gb=attention / GB,
        logits_gb=logits / GB,
        backward_gb=backward / GB,
        reference_gb=reference / GB,
        overhead_gb=k.overhead_gb,
        usable_gb=dev.usable_gb,
        device_source=dev.source,
        notes=notes,
        data=data,
        worst_case_gb=None if data is None else estimate_shape(shape, settings, dev).total_gb,
        reference_pass_gb=reference_pass / GB,
    )


def train_settings(keys: list[str] | None = None, **settings) -> TrainSettings:
    """:class:`TrainSettings` from keyword arguments (what :func:`estimate`, ``fit`` and
    ``preflight`` take beside the model and device); ``keys`` may be any sequence."""
    return TrainSettings(keys=tuple(keys) if keys else None, **settings)


def estimate(
    model: str | Path,
    *,
    device: str | None = None,
    memory_gb: float | None = None,
    data: DataShape | None = None,
    **settings,
) -> Estimate:
    """Estimate peak training memory for ``model`` (folder, 'default' or hub id); never raises
    on the verdict. ``settings`` are :func:`train_settings`'s keyword arguments; ``data`` the
    longest real batch (:func:`mlx_persona.budget.data.data_shape`), else the worst case."""
    return estimate_shape(load_shape(model), train_settings(**settings), get_device(device, memory_gb), data)
