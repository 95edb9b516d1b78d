"""What to train on this machine: a model by memory, settings by the fit solver, steps by time.

    this machine (budget/devices + doctor) ──▶ the largest model whose settings fit without
      giving up rank or layers (budget/fit) ──▶ iterations from the data size and --hours
      ──▶ a Plan: every block's settings with one comment each, and the expected run time

A Mac trains on Metal: Qwen2.5-Instruct at 4 bits (7B on 16 GB, smaller below) with the
settings of ``recipes/mac-mini-16gb-qwen2.5-7b.yaml``. Anything else trains on the CPU, where a
billion-parameter model takes days: the embedded default model with the quickstart's settings.

Time is a rough estimate, and says so: a training step costs ``6 · P · T`` FLOPs (P parameters,
T tokens in the step; forward 2, backward 4; ``8 · P · T`` with gradient checkpointing, which
repeats the forward), run at :data:`EFFICIENCY` of the measured matmul speed.
"""

from __future__ import annotations

import math
import sys
from dataclasses import dataclass, field

from mlx_persona.budget.devices import GIB, PROFILES, Device, current_device, get_device
from mlx_persona.budget.estimate import train_settings
from mlx_persona.budget.fit import SEQ_STEP, FitResult, solve
from mlx_persona.budget.shapes import load_shape

# The quickstart's SFT on the 2-core Linux box (bench/RESULTS.md, issue 8): 40 steps of 4
# samples of ~101 tokens in 120.6 s with matmul at 449 GFLOP/s = 3.0 s for 6 · 0.1345e9 · 404
# FLOPs, so 0.24 of the matmul speed. Calibrated on the CPU only: Metal figures are a guess.
EFFICIENCY = 0.24
# The same run: DPO spent 1.33x SFT's time per sequence (the reference pass, longer prompts) ...
DPO_COST = 1.33
# ... and pairs, twin, eval and the two fuses together took 0.6x the two training stages.
OTHER_STAGES = 0.6
SFT_EPOCHS = 2  # passes over the training samples: validation loss is best around here
MIN_ITERS = 10  # fewer steps than this teach nothing; early stopping ends a run that overfits
TOO_FEW_SAMPLES = 200  # below this, say that the twin will learn little of the voice
MAX_SEQ = 2048  # the longest sequence a recipe asks for; longer samples lose their oldest context

# The Mac models, best first: a model is taken when its settings fit without fewer ranks or layers.
QWEN = (
    "mlx-community/Qwen2.5-7B-Instruct-4bit",
    "mlx-community/Qwen2.5-3B-Instruct-4bit",
    "mlx-community/Qwen2.5-1.5B-Instruct-4bit",
)
LOSSY = {"rank", "layers"}  # give-up steps that cost the twin quality, not just time


@dataclass(frozen=True)
class Machine:
    """The doctor's view of this machine, as far as choosing a model goes."""

    platform: str  # sys.platform: darwin, linux
    metal: bool  # MLX trains on a Metal GPU
    ram_gb: float
    usable_gb: float  # Metal's working set on a Mac, RAM elsewhere
    gflops: float  # measured float32 matmul speed (doctor)
    profile: str | None = None  # the budget's device profile for this Mac (m-series-16gb)

    def device(self) -> Device:
        return PROFILES[self.profile] if self.profile else get_device(memory_gb=self.usable_gb)

    def describe(self) -> str:
        where = f"Metal, {self.usable_gb:.1f} GB working set" if self.metal else f"CPU, {self.ram_gb:.1f} GB RAM"
        return f"{self.platform}, {where}, matmul {self.gflops:.0f} GFLOP/s" + (
            f" (budget profile {self.profile})" if self.profile else ""
        )


def this_machine() -> Machine:
    """Ask budget/devices (Metal working set or RAM) and the doctor (RAM, matmul speed)."""
    from mlx_persona.doctor import matmul_gflops, total_ram_gb

    dev = current_device()
    ram = total_ram_gb() or dev.usable_gb
    metal = dev.name == "this-mac"
    profile = f"m-series-{round(ram / GIB)}gb" if metal else None
    return Machine(sys.platform, metal, ram, dev.usable_gb, matmul_gflops(), profile if profile in PROFILES else None)


@dataclass
class Plan:
    """Every choice, with the reason a comment will give."""

    model: str
    model_why: str
    budget_device: str | None
    blocks: dict[str, list] = field(default_factory=dict)  # block -> [(key, value, comment)]
    sft_seconds: float = 0.0
    dpo_seconds: float = 0.0
    notes: list[str] = field(default_factory=list)

    @property
    def total_seconds(self) -> float:
        return (self.sft_seconds + self.dpo_seconds) * (1 + OTHER_STAGES)


def _mac_settings(seq: int) -> tuple[list, list, list, list]:
    """recipes/mac-mini-16gb-qwen2.5-7b.yaml's choices (sft, dpo, pairs, clean)."""
    sft = [
        ("fine_tune_type", "dora", "DoRA: the adapter that picked up the voice best on 7B"),
        ("rank", 64, None),
        ("alpha", 128, "scale = alpha / rank = 2"),
        ("num_layers", -1, "every block"),
        ("learning_rate", 2.0e-4, None),
        ("lr_schedule", "cosine", None),
        ("batch_size", 1, None),
        ("grad_accumulation_steps", 4, "an effective batch of 4"),
        ("grad_checkpoint", True, "recompute activations: ~30% slower, much less memory"),
        ("max_seq_length", seq, "from your samples' lengths (p99), in steps of 256"),
        ("mask_prompt", True, "learn your replies, not the other side"),
    ]
    dpo = [
        ("fine_tune_type", "lora", None),
        ("rank", 32, None),
        ("num_layers", -1, None),
        ("learning_rate", 5.0e-6, "gentle: higher rates taught the twin to be short"),
        ("beta", 0.1, None),
        ("rpo_alpha", 2.0, "+ 2x the NLL of your real reply (RPO): without it DPO learns 'be short' or a caricature"),
        ("rpo_on", "real", "the NLL of your own reply, which each pair carries"),
        ("select_by", "last", "keep the last step unless your validation replies became less likely"),
        ("batch_size", 1, "one pair = three sequences (chosen, rejected, your reply)"),
        ("grad_checkpoint", True, None),
        ("max_seq_length", seq, None),
    ]
    pairs = [
        ("rejected_from", "twin", "on-policy negatives: the SFT twin's own replies"),
        ("chosen", "closest", "of the twin's replies, the nearest to yours against the farthest: content, not habits"),
        ("twin_samples", 4, None),
        ("style_weight", 0.5, "a reply that drops your habits ranks lower (the eval's style classifier)"),
        ("batch_size", 4, None),
    ]
    clean = [("system", "replace-long", "tool-call histories in system prompts become the persona line")]
    return sft, dpo, pairs, clean


def _small_settings(seq: int) -> tuple[list, list, list, list]:
    """recipes/quickstart.yaml's choices (sft, dpo, pairs, clean)."""
    sft = [
        ("fine_tune_type", "lora", None),
        ("rank", 8, None),
        ("num_layers", 16, "the last 16 blocks"),
        ("learning_rate", 1.0e-4, None),
        ("lr_schedule", "cosine", None),
        ("batch_size", 4, None),
        ("max_seq_length", seq, "from your samples' lengths (p99), in steps of 256"),
        ("mask_prompt", True, "learn your replies, not the other side"),
    ]
    dpo = [
        ("fine_tune_type", "lora", None),
        ("rank", 8, None),
        ("num_layers", 16, None),
        ("learning_rate", 1.0e-5, "gentle: at 5e-5 replies shrank to 3 words"),
        ("beta", 0.1, None),
        ("rpo_alpha", 2.0, "+ 2x the NLL of your real reply (RPO): without it DPO learns 'be short' or a caricature"),
        ("rpo_on", "real", "the NLL of your own reply, which each pair carries"),
        ("select_by", "last", "keep the last step unless your validation replies became less likely"),
        ("batch_size", 2, None),
        ("max_seq_length", seq, None),
    ]
    pairs = [
        ("rejected_from", "twin", "on-policy negatives: the SFT twin's own replies"),
        ("chosen", "closest", "of the twin's replies, the nearest to yours against the farthest: content, not habits"),
        ("twin_samples", 4, None),
        ("style_weight", 0.5, "a reply that drops your habits ranks lower (the eval's style classifier)"),
        ("batch_size", 16, "sequences decoded together: 4 prompts x 4 replies"),
    ]
    return sft, dpo, pairs, []


def seq_for(p99_tokens: int) -> int:
    """The sequence length for samples whose 99th percentile is ``p99_tokens`` (estimated at 4
    characters a token, so a quarter more for real tokenizers), up to a multiple of 256."""
    return min(MAX_SEQ, max(SEQ_STEP, math.ceil(p99_tokens * 1.25 / SEQ_STEP) * SEQ_STEP))


# the settings that move memory (budget/estimate.py's TrainSettings, mlx_lm's names)
_TRAIN_KEYS = (
    "fine_tune_type",
    "rank",
    "num_layers",
    "batch_size",
    "max_seq_length",
    "grad_checkpoint",
    "grad_accumulation_steps",
)


def _fit(model: str, items: list, stage: str, dev: Device) -> FitResult:
    """The fit solver on a block's memory settings (the DPO reference is cached, as the runner does)."""
    known = {k: v for k, v, _ in items if k in _TRAIN_KEYS}
    return solve(load_shape(model), train_settings(stage=stage, reference_in_memory=False, **known), dev)


def _apply(items: list, res: FitResult) -> list:
    """The block with the fit solver's overrides in place, each commented."""
    over = {k: v for k, v in res.overrides().items() if k in _TRAIN_KEYS}
    out = []
    for k, v, why in items:
        if k in over:
            out.append((k, over.pop(k), f"the fit solver's choice (was {v}): {res.estimate.total_gb:.1f} GB fits"))
        else:
            out.append((k, v, why))
    out.extend((k, v, "the fit solver's choice") for k, v in over.items())
    return out


def choose_model(machine: Machine, seq: int) -> tuple[str, str, list, list, list, list, FitResult]:
    """The best model whose settings fit this machine (Qwen2.5 on Metal, else the default)."""
    dev = machine.device()
    if machine.metal:
        for model in QWEN:
            sft, dpo, pairs, clean = _mac_settings(seq)
            res = _fit(model, sft, "sft", dev)
            if res.ok and not LOSSY & set(res.steps):
                why = (
                    f"the largest Qwen2.5 at 4 bits whose training fits {dev.usable_gb:.1f} GB of Metal working set "
                    f"({res.estimate.total_gb:.1f} GB estimated); needs a network once for the download"
                )
                return model, why, sft, dpo, pairs, clean, res
    sft, dpo, pairs, clean = _small_settings(seq)
    res = _fit("default", sft, "sft", dev)
    why = "the embedded SmolLM2-135M-Instruct: " + (
        "no Qwen2.5 fits this Mac's memory"
        if machine.metal
        else "training on the CPU; billions of parameters take days"
    )
    return "default", why, sft, dpo, pairs, clean, res


def step_seconds(model: str, sequences: int, tokens: float, machine: Machine, checkpoint: bool) -> float:
    """Seconds per optimizer step: ``(6 or 8) · P · T`` FLOPs at EFFICIENCY of the matmul speed."""
    params = load_shape(model).total_params()
    flops = (8 if checkpoint else 6) * params * sequences * tokens
    return flops / (max(machine.gflops, 1.0) * 1e9 * EFFICIENCY)


def _value(items: list, key: str, default=None):
    return next((v for k, v, _ in items if k == key), default)


def make_plan(machine: Machine, stats: dict, hours: float | None) -> Plan:
    """Model, settings and iterations for cleaned data described by ``stats`` (clean's stats)."""
    per = stats["tokens"]["per_sample"]
    seq = seq_for(per.get("p99", SEQ_STEP))
    model, why, sft, dpo, pairs, clean, res = choose_model(machine, seq)
    sft = _apply(sft, res)
    dpo = _apply(dpo, _fit(model, dpo, "dpo", machine.device()))
    seq = _value(sft, "max_seq_length", seq)
    plan = Plan(model, why, machine.profile)

    train = stats["splits"]["train"]
    n_train = train["samples"]
    mean_tokens = min(train["tokens"] / max(n_train, 1), seq)
    batch = _value(sft, "batch_size", 4) * _value(sft, "grad_accumulation_steps", 1)
    sft_step = step_seconds(model, batch, mean_tokens, machine, bool(_value(sft, "grad_checkpoint", False)))
    dpo_batch = _value(dpo, "batch_size", 2)
    dpo_step = DPO_COST * step_seconds(model, 2 * dpo_batch, mean_tokens, machine, bool(_value(dpo, "grad_checkpoint")))

    sft_iters = max(MIN_ITERS, math.ceil(SFT_EPOCHS * n_train / batch))
    sft_why = f"{SFT_EPOCHS} epochs of {n_train} training samples at {batch} a step"
    dpo_iters = max(MIN_ITERS, math.ceil(n_train / dpo_batch))
    dpo_why = f"one pass over up to {n_train} pairs at {dpo_batch} a step"
    if hours is not None:  # the training stages share the time: SFT 60%, DPO 40%
        train_s = hours * 3600 / (1 + OTHER_STAGES)
        cap_sft, cap_dpo = int(0.6 * train_s / sft_step), int(0.4 * train_s / dpo_step)
        if cap_sft < sft_iters:
            sft_iters, sft_why = max(MIN_ITERS, cap_sft), f"what fits in {hours:g} h ({sft_why} would not)"
            if cap_sft < n_train / batch:
                plan.notes.append(f"--hours {hours:g} covers less than one pass over your data")
        if cap_dpo < dpo_iters:
            dpo_iters, dpo_why = max(MIN_ITERS, cap_dpo), f"what fits in {hours:g} h ({dpo_why} would not)"
    plan.sft_seconds, plan.dpo_seconds = sft_iters * sft_step, dpo_iters * dpo_step
    plan.model_why = why

    def cadence(iters: int, accumulate: int = 1) -> list:
        every = max(accumulate, iters // 5 // accumulate * accumulate)  # checkpoints never split an update
        return [
            ("steps_per_report", max(1, min(10, iters // 8)), None),
            ("steps_per_eval", every, "five validations over the run"),
            ("save_every", every, "a resumable checkpoint as often"),
            ("early_stopping_patience", 2, "stop after two validations without a better loss"),
        ]

    valid = stats["splits"]["valid"]["samples"]
    sft += [("warmup_steps", max(1, sft_iters // 20), "5% of the steps"), ("iters", sft_iters, sft_why)]
    sft += cadence(sft_iters, _value(sft, "grad_accumulation_steps", 1))
    dpo += [("iters", dpo_iters, dpo_why), *cadence(dpo_iters)]
    if valid <= 100:
        sft.append(("val_batches", -1, f"the whole validation split ({valid} samples)"))
    pairs.append(("max_prompts", min(n_train, dpo_iters * dpo_batch), "the prompts DPO will see"))
    context = 8 if model != "default" else 6
    plan.blocks = {
        "clean": [
            *clean,
            ("context_turns", context, "turns of context before each of your replies"),
            ("max_tokens", seq, "per sample, as the training length; the oldest context is trimmed to fit"),
        ],
        "sft": sft,
        "fuse": [("dequantize", False, None)],
        "pairs": pairs,
        "dpo": dpo,
        "eval": [("limit", 48, "test conversations"), ("batch_size", 16, "replies decoded together")],
    }
    if n_train < TOO_FEW_SAMPLES:
        plan.notes.append(
            f"only {n_train} training samples: the twin will pick up little of your voice "
            f"(a few hundred or more is better; add more exports)"
        )
    return plan
