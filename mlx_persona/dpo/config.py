"""The ``dpo:`` block: the shared training knobs (adapter, optimizer, schedule, cadence, early
stopping) plus the preference ones, with defaults that suit DPO on a fused SFT model.

:class:`DPOConfig` extends :class:`~mlx_persona.train.config.TrainConfig`, so loading, checks and
the LoRA/schedule helpers are shared with SFT; only the DPO fields and defaults are new here.
``mask_prompt`` does not apply (DPO always scores the response tokens only) and gradient
accumulation is not offered (one optimizer update per batch of pairs).

Two groups of knobs are DPO's own: the loss (``loss_type`` and the terms that keep the twin from
becoming a caricature: ``rpo_alpha``, ``length_alpha``, ``gamma``; formulas in
:mod:`mlx_persona.dpo.loss`), and which validation's adapter is kept (``select_by``: the lowest
DPO loss; the lowest preference term, or the highest mean reward margin, with the person's
replies kept as likely as at step 0, within ``select_max_nll_rise``; the last step unless the
validation pairs show the person's replies less likely, beyond that bound and the 95% interval;
or the best twin measure of
:func:`mlx_persona.train.select.twin_score` on greedy replies to ``select_prompts`` validation
prompts).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import ClassVar

from mlx_persona.core.errors import PersonaError
from mlx_persona.train.config import TrainConfig

LOSS_TYPES = ("sigmoid", "ipo", "simpo")
SELECT_BY = ("loss", "preference", "margin", "last", "twin")
RPO_ON = ("chosen", "real")


@dataclass
class DPOConfig(TrainConfig):
    block: ClassVar[str] = "dpo"

    # defaults that differ from SFT
    learning_rate: float = field(
        default=1e-5, metadata={"help": "Peak learning rate (DPO wants a gentle one: 5e-6 .. 5e-5 for LoRA)."}
    )
    batch_size: int = field(
        default=2, metadata={"help": "Pairs per step (each pair is two sequences: chosen and rejected)."}
    )
    max_seq_length: int = field(
        default=1024,
        metadata={"help": "Prompt + reply tokens; longer pairs lose their oldest prompt tokens (see dpo/data.py)."},
    )
    iters: int = field(default=200, metadata={"help": "Optimizer steps (ignored when epochs is set)."})
    steps_per_report: int = field(default=5, metadata={"help": "Steps per train line in metrics.jsonl."})
    steps_per_eval: int = field(
        default=25, metadata={"help": "Steps between validations (also before the first step and after the last)."}
    )
    val_batches: int = field(
        default=-1, metadata={"help": "Validation batches per evaluation; -1 for every validation pair."}
    )
    save_every: int = field(default=25, metadata={"help": "Steps between resumable checkpoints."})
    # the preference knobs
    beta: float = field(
        default=0.1,
        metadata={"help": "How far the policy may move from the reference: small beta = larger moves (0.1 is usual)."},
    )
    loss_type: str = field(
        default="sigmoid",
        metadata={
            "help": "sigmoid (DPO paper), ipo (squared loss on the margin; length-normalised log-probs) or simpo (reference-free, length-normalised; no reference pass)."
        },
    )
    label_smoothing: float = field(
        default=0.0,
        metadata={"help": "sigmoid and simpo: assumed share of flipped labels (conservative DPO); 0 = plain DPO."},
    )
    rpo_alpha: float = field(
        default=0.0,
        metadata={
            "help": "RPO: weight of the chosen reply's per-token NLL added to the loss, so the person's replies keep their likelihood (1.0 in the paper); 0 = off."
        },
    )
    rpo_on: str = field(
        default="chosen",
        metadata={
            "help": "Which reply rpo_alpha's NLL is taken on: chosen (RPO as published) or real, the person's own reply a pair carries beside a generated chosen one (pairs.chosen closest; a pair without one uses its chosen reply). real scores a third sequence per pair.",
            "choices": RPO_ON,
        },
    )
    length_alpha: float = field(
        default=0.0,
        metadata={
            "help": "R-DPO, sigmoid only: the sigmoid argument loses length_alpha x (chosen tokens - rejected tokens), so short no longer wins by itself (try 0.01); 0 = off."
        },
    )
    gamma: float = field(
        default=0.5,
        metadata={
            "help": "SimPO only: target margin between the length-normalised rewards (0.5 is usual; SimPO also wants beta near 2, not 0.1)."
        },
    )
    select_by: str = field(
        default="loss",
        metadata={
            "help": "Which validation's adapter is kept: loss (lowest validation loss, RPO's NLL term included), preference (lowest preference term alone, while the NLL of the person's validation replies stays within select_max_nll_rise of step 0's), margin (highest mean reward margin of the validation pairs, within the same bound), last (the last validated step, unless the validation pairs show the person's replies less likely than at step 0: the 95% interval of their NLL's mean rise wholly above select_max_nll_rise) or twin (best twin score of greedy replies against the person's real ones)."
        },
    )
    select_max_nll_rise: float = field(
        default=0.05,
        metadata={
            "help": "select_by preference, margin or last: the most the per-token NLL of the person's validation replies may rise over step 0's, in nats (0.05: perplexity up to 1.05x); an adapter beyond it is never kept (last: one whose whole 95% interval of the rise is beyond it)."
        },
    )
    select_prompts: int = field(
        default=8,
        metadata={"help": "select_by twin: validation prompts the twin answers at each validation (a fixed slice)."},
    )
    select_max_tokens: int | None = field(
        default=None,
        metadata={
            "help": "select_by twin: most tokens per generated reply. Unset: the pairs stage's reply room (max_tokens in its pairs_config.json), else 64."
        },
    )
    share_prompt: bool = field(
        default=True,
        metadata={
            "help": "Run each pair's prompt once for both replies (fewer tokens per step; off: one padded batch)."
        },
    )
    reference_batch_size: int = field(
        default=8,
        metadata={"help": "Pairs per forward pass when caching the reference log-probs (no gradients: can be larger)."},
    )

    def validate(self, where: str | None = None) -> None:
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
        if self.label_smoothing and self.loss_type == "ipo":
            raise bad("label_smoothing", "applies to the sigmoid and simpo losses, not ipo; set it to 0")
        for name in ("rpo_alpha", "length_alpha", "gamma"):
            if not getattr(self, name) >= 0 or not math.isfinite(getattr(self, name)):
                raise bad(name, "must be a number >= 0")
        if self.length_alpha and self.loss_type != "sigmoid":
            raise bad("length_alpha", f"is a term of the sigmoid loss (R-DPO), not of {self.loss_type}; set it to 0")
        if self.rpo_on not in RPO_ON:
            raise bad("rpo_on", "must be one of " + ", ".join(RPO_ON))
        if self.rpo_on == "real" and not self.rpo_alpha:
            raise bad("rpo_on", "real is where rpo_alpha's NLL is taken: set rpo_alpha above 0 too")
        if self.select_by not in SELECT_BY:
            raise bad("select_by", "must be one of " + ", ".join(SELECT_BY))
        if not self.select_max_nll_rise >= 0 or not math.isfinite(self.select_max_nll_rise):
            raise bad("select_max_nll_rise", "must be a number >= 0")
        if self.select_prompts < 1:
            raise bad("select_prompts", "must be at least 1")
        if self.select_max_tokens is not None and self.select_max_tokens < 1:
            raise bad("select_max_tokens", "must be at least 1 (or unset)")
        if self.reference_batch_size < 1:
            raise bad("reference_batch_size", "must be at least 1")
        if self.grad_accumulation_steps != 1:
            raise bad("grad_accumulation_steps", "is not supported by the DPO stage; lower batch_size instead")
        if self.fine_tune_type == "full":
            raise bad("fine_tune_type", "must be lora or dora: the reference is the model with its adapter off")
        if self.max_seq_length < 16:
            raise bad("max_seq_length", "must be at least 16")
