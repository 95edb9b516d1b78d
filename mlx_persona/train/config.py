"""What the SFT and DPO settings share: every knob of an adapter training run, typed, with a
one-line reason each (:class:`TrainConfig`). ``sft/config.py`` and ``dpo/config.py`` subclass it.

Precedence, as in ``mlx_lm lora``: command line, then the YAML/JSON file, then the defaults below.
Every field's ``metadata["help"]`` is its command-line help; the recipe runner embeds the stage's
subclass as its ``sft:`` / ``dpo:`` block. Values are checked here, before any weights load or any
file is written, and a bad one is a one-line :class:`PersonaError`.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from mlx_persona.core.errors import PersonaError
from mlx_persona.core.settings import Settings, Where, load_yaml_with_lines

FINE_TUNE_TYPES = ("lora", "dora", "full")
OPTIMIZERS = ("adam", "adamw", "sgd", "adafactor", "muon")
LR_SCHEDULES = ("constant", "cosine")


@dataclass
class TrainConfig(Settings):
    block: ClassVar[str] = "sft"  # the recipe block (and settings-file key) a subclass reads

    fine_tune_type: str = field(
        default="lora",
        metadata={"help": "lora, dora (magnitude + direction) or full (all weights of the tuned layers)."},
    )
    rank: int = field(default=8, metadata={"help": "LoRA/DoRA rank: 8 is plenty for a persona's style."})
    scale: float = field(default=20.0, metadata={"help": "LoRA scale (mlx_lm's meaning: the update is scale * B @ A)."})
    alpha: float | None = field(default=None, metadata={"help": "PEFT-style alpha; when set, scale = alpha / rank."})
    dropout: float = field(default=0.0, metadata={"help": "Dropout on the LoRA input (0.0 to 0.1 is usual)."})
    keys: list | None = field(
        default=None,
        metadata={"help": "Modules to adapt, e.g. self_attn.q_proj,self_attn.v_proj (default: every linear)."},
    )
    num_layers: int = field(
        default=16, metadata={"help": "How many of the last transformer blocks to tune; -1 for all."}
    )
    optimizer: str = field(default="adam", metadata={"help": "adam, adamw, sgd, adafactor or muon (mlx.optimizers)."})
    optimizer_config: dict = field(
        default_factory=dict, metadata={"help": "Extra optimizer arguments, e.g. {weight_decay: 0.01} (YAML only)."}
    )
    learning_rate: float = field(default=1e-5, metadata={"help": "Peak learning rate (1e-5 .. 1e-4 for LoRA)."})
    lr_schedule: str = field(
        default="constant", metadata={"help": "constant, or cosine decay to min_learning_rate by the last iteration."}
    )
    warmup_steps: int = field(
        default=0, metadata={"help": "Linear warmup from warmup_init to learning_rate over this many updates."}
    )
    warmup_init: float = field(default=0.0, metadata={"help": "Learning rate at the first warmup step."})
    min_learning_rate: float = field(default=0.0, metadata={"help": "Where the cosine decay ends."})
    batch_size: int = field(default=4, metadata={"help": "Conversations per step."})
    grad_accumulation_steps: int = field(
        default=1, metadata={"help": "Steps whose gradients add up before one optimizer update."}
    )
    grad_checkpoint: bool = field(
        default=False, metadata={"help": "Recompute activations in the backward pass: less memory, ~30% slower."}
    )
    max_seq_length: int = field(
        default=2048, metadata={"help": "Longer conversations are truncated to this many tokens."}
    )
    mask_prompt: bool = field(
        default=False, metadata={"help": "Train only on the last (assistant) message of each conversation."}
    )
    iters: int = field(default=1000, metadata={"help": "Training steps (ignored when epochs is set)."})
    epochs: float | None = field(
        default=None, metadata={"help": "Passes over the training set; sets iters = ceil(epochs * batches per epoch)."}
    )
    steps_per_report: int = field(default=10, metadata={"help": "Steps per train-loss line in metrics.jsonl."})
    steps_per_eval: int = field(
        default=200,
        metadata={
            "help": "Steps between validations (mlx_lm's cadence: before step 1, every N-th step, and at the end)."
        },
    )
    val_batches: int = field(
        default=25, metadata={"help": "Validation batches per evaluation; -1 for the whole validation set."}
    )
    save_every: int = field(
        default=100, metadata={"help": "Steps between resumable checkpoints (a multiple of grad_accumulation_steps)."}
    )
    early_stopping_patience: int = field(
        default=0, metadata={"help": "Stop after this many validations without improvement; 0 turns it off."}
    )
    early_stopping_min_delta: float = field(
        default=0.0, metadata={"help": "A validation loss must beat the best by more than this to count."}
    )
    seed: int = field(default=0, metadata={"help": "Seeds the LoRA init, the data order and dropout."})
    dequantize_on_cpu: bool = field(
        default=True,
        metadata={
            "help": "On MLX's CPU backend, train a quantized base on a float32 copy (4-bit matmuls are slow there)."
        },
    )

    # ----------------------------------------------------------------- derived values
    @property
    def lora_scale(self) -> float:
        return self.alpha / self.rank if self.alpha is not None else self.scale

    def lora_parameters(self) -> dict:
        """mlx_lm's ``lora_parameters`` block (what ``adapter_config.json`` carries)."""
        params = {"rank": self.rank, "scale": self.lora_scale, "dropout": self.dropout}
        if self.keys:
            params["keys"] = list(self.keys)
        return params

    def resolve_iters(self, train_examples: int) -> int:
        """Total steps: ``iters``, or ``epochs`` worth of full batches."""
        if self.epochs is None:
            return self.iters
        return max(1, math.ceil(self.epochs * (train_examples // self.batch_size)))

    def lr_schedule_config(self, iters: int) -> dict | None:
        """The schedule in mlx_lm's ``lr_schedule`` form (``build_schedule`` input); None = constant."""
        if self.lr_schedule == "cosine":
            decay = max(1, iters - self.warmup_steps)
            sched = {"name": "cosine_decay", "arguments": [self.learning_rate, decay, self.min_learning_rate]}
        elif self.warmup_steps:
            sched = {"name": "linear_schedule", "arguments": [self.learning_rate, self.learning_rate, 1]}
        else:
            return None
        if self.warmup_steps:
            sched.update(warmup=self.warmup_steps, warmup_init=self.warmup_init)
        return sched

    # ----------------------------------------------------------------- loading + checks
    @classmethod
    def load(cls, path: Path | None, overrides: Mapping[str, Any] | None = None) -> TrainConfig:
        """Read a YAML/JSON file (a bare block, or one with the block's key: a recipe, or the
        stage's ``<block>_config.json``), then apply ``overrides``; a YAML file's errors name
        its line."""
        data: dict = {}
        at = Where((cls.block,))
        if path is not None:
            path = Path(path)
            if not path.is_file():
                raise PersonaError(f"config file not found: {path}")
            if path.suffix == ".json":
                try:
                    raw, lines = json.loads(path.read_text()), None
                except (OSError, UnicodeDecodeError, ValueError) as e:
                    raise PersonaError(f"{path}: not valid JSON ({type(e).__name__})") from None
            else:
                raw, lines = load_yaml_with_lines(path)
                raw = {} if raw is None else raw  # an empty file: the defaults
            nested = isinstance(raw, dict) and isinstance(raw.get(cls.block), dict)
            if not isinstance(raw, dict) or (cls.block in raw and not nested):
                raise PersonaError(f"{path}: expected a mapping of settings")
            data = dict(raw[cls.block] if nested else raw)
            if lines and not nested:  # a bare block: its keys' lines, as if under the block's key
                lines = {(cls.block, *k): n for k, n in lines.items()}
            at = Where((cls.block,), path, lines)
        data.update({k: v for k, v in (overrides or {}).items() if v is not None})
        return cls.from_mapping(data, at)

    def validate(self, where: str | None = None) -> None:
        where = where or self.block

        def bad(name: str, why: str) -> PersonaError:
            return PersonaError(f"{where}.{name}: {why} (got {getattr(self, name)!r})")

        choices = {"fine_tune_type": FINE_TUNE_TYPES, "optimizer": OPTIMIZERS, "lr_schedule": LR_SCHEDULES}
        for name, allowed in choices.items():
            if getattr(self, name) not in allowed:
                raise bad(name, "must be one of " + ", ".join(allowed))
        for name in (
            "rank",
            "batch_size",
            "grad_accumulation_steps",
            "iters",
            "steps_per_report",
            "steps_per_eval",
            "save_every",
            "max_seq_length",
        ):
            if getattr(self, name) < 1:
                raise bad(name, "must be at least 1")
        for name in (
            "warmup_steps",
            "early_stopping_patience",
            "warmup_init",
            "min_learning_rate",
            "early_stopping_min_delta",
        ):
            if getattr(self, name) < 0:
                raise bad(name, "must not be negative")
        if not self.learning_rate > 0 or not math.isfinite(self.learning_rate):
            raise bad("learning_rate", "must be a positive number")
        if not 0.0 <= self.dropout < 1.0:
            raise bad("dropout", "must be in [0, 1)")
        if self.num_layers == 0 or self.num_layers < -1:
            raise bad("num_layers", "must be a positive count, or -1 for all layers")
        if self.val_batches == 0 or self.val_batches < -1:
            raise bad("val_batches", "must be a positive count, or -1 for the whole validation set")
        if self.epochs is not None and not self.epochs > 0:
            raise bad("epochs", "must be positive")
        if self.save_every % self.grad_accumulation_steps:
            raise bad(
                "save_every",
                f"must be a multiple of grad_accumulation_steps ({self.grad_accumulation_steps}) "
                "so a checkpoint never splits an accumulated update",
            )
        if self.alpha is not None and not self.alpha > 0:
            raise bad("alpha", "must be positive")
