"""The ``dpo:`` block: the shared training knobs (adapter, optimizer, schedule, cadence, early
stopping) plus the preference ones, with defaults that suit DPO on a fused SFT model.

:class:`DPOConfig` extends :class:`~mlx_persona.train.config.TrainConfig`, so loading, checks and
the LoRA/schedule helpers are shared with SFT; only the DPO fields and defaults are new here.
``mask_prompt`` does not apply (DPO always scores the response tokens only) and gradient
accumulation is not offered (one optimizer update per batch of pairs).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar, Optional

from mlx_persona.core.errors import PersonaError
from mlx_persona.train.config import TrainConfig

LOSS_TYPES = ("sigmoid", "ipo")


@dataclass
class DPOConfig(TrainConfig):
    block: ClassVar[str] = "dpo"

    # defaults that differ from SFT
    learning_rate: float = field(default=1e-5, metadata={"help": "Peak learning rate (DPO wants a gentle one: 5e-6 .. 5e-5 for LoRA)."})
    batch_size: int = field(default=2, metadata={"help": "Pairs per step (each pair is two sequences: chosen and rejected)."})
    max_seq_length: int = field(default=1024, metadata={"help": "Prompt + reply tokens; longer pairs lose their oldest prompt tokens (see dpo/data.py)."})
    iters: int = field(default=200, metadata={"help": "Optimizer steps (ignored when epochs is set)."})
    steps_per_report: int = field(default=5, metadata={"help": "Steps per train line in metrics.jsonl."})
    steps_per_eval: int = field(default=25, metadata={"help": "Steps between validations (also before the first step and after the last)."})
    val_batches: int = field(default=-1, metadata={"help": "Validation batches per evaluation; -1 for every validation pair."})
    save_every: int = field(default=25, metadata={"help": "Steps between resumable checkpoints."})
    # the preference knobs
    beta: float = field(default=0.1, metadata={"help": "How far the policy may move from the reference: small beta = larger moves (0.1 is usual)."})
    loss_type: str = field(default="sigmoid", metadata={"help": "sigmoid (DPO paper) or ipo (squared loss on the margin; length-normalised log-probs)."})
    label_smoothing: float = field(default=0.0, metadata={"help": "Sigmoid loss only: assumed share of flipped labels (conservative DPO); 0 = plain DPO."})
    share_prompt: bool = field(default=True, metadata={"help": "Run each pair's prompt once for both replies (fewer tokens per step; off: one padded batch)."})
    reference_batch_size: int = field(default=8, metadata={"help": "Pairs per forward pass when caching the reference log-probs (no gradients: can be larger)."})

    def validate(self, where: Optional[str] = None) -> None:
        where = where or self.block
        super().validate(where)

        def bad(name: str, why: str) -> PersonaError:
            return PersonaError(f"{where}.{name}: {why} (got {getattr(self, name)!r})")

        if self.loss_type not in LOSS_TYPES:
            raise bad("loss_type", "must be one of " + ", ".join(LOSS_TYPES))
        if not self.beta > 0:
            raise bad("beta", "must be positive")
        if not 0 <= self.label_smoothing < 0.5:
            raise bad("label_smoothing", "must be in [0, 0.5)")
        if self.reference_batch_size < 1:
            raise bad("reference_batch_size", "must be at least 1")
        if self.grad_accumulation_steps != 1:
            raise bad("grad_accumulation_steps", "is not supported by the DPO stage; lower batch_size instead")
        if self.fine_tune_type == "full":
            raise bad("fine_tune_type", "must be lora or dora: the reference is the model with its adapter off")
        if self.max_seq_length < 16:
            raise bad("max_seq_length", "must be at least 16")
