"""The pair generator's settings (the recipe's ``pairs:`` block, the ``pairs`` command's options).

Each knob is one step of the story in :mod:`mlx_persona.pairs.build`: who writes the chosen and
the rejected reply, how the models sample, and how strict the filters are.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

from mlx_persona.core.errors import PersonaError
from mlx_persona.core.settings import Settings

SPLITS = ("train", "valid")
FILTERS = ("empty", "truncated", "identical", "length_ratio", "too_similar", "twin_close", "small_gap")
REJECTED_FROM = ("base", "twin", "both")
CHOSEN = ("real", "twin", "closest")


@dataclass
class PairsConfig(Settings):
    block: ClassVar[str] = "pairs"

    chosen: str = field(
        default="real",
        metadata={
            "help": "real: the person's reply (twin only where none); twin: always the fused twin's; closest: of the twin's twin_samples replies, the one nearest the person's real reply (rejected: the farthest; needs rejected_from twin).",
            "choices": CHOSEN,
        },
    )
    max_tokens: int | None = field(
        default=None,
        metadata={
            "help": "Longest generated reply; a reply cut here is trimmed to a full sentence or dropped. Unset: room for the person's long replies (1.5x their 99th-percentile reply in tokens, at least 64)."
        },
    )
    temperature: float = field(default=0.7, metadata={"help": "Sampling temperature for both models (0 = greedy)."})
    top_p: float = field(default=0.9, metadata={"help": "Nucleus sampling mass (1 = off)."})
    batch_size: int = field(
        default=8, metadata={"help": "Sequences generated together (8 gave ~4x the tokens/s of one at a time)."}
    )
    similarity_threshold: float = field(
        default=0.9,
        metadata={"help": "Drop a pair whose chosen and rejected have a MiniLM cosine above this (1 = off)."},
    )
    rejected_from: str = field(
        default="base",
        metadata={
            "help": "Who writes the rejected reply: base (the base model's assistant voice), twin (the fused SFT model's own replies far from the person's: on-policy negatives) or both (a base and a twin pair per prompt).",
            "choices": ("base", "twin", "both"),
        },
    )
    twin_max_similarity: float = field(
        default=0.5,
        metadata={
            "help": "rejected_from twin/both: the twin's reply is a rejected example only when its MiniLM cosine with the person's real reply is below this (1 = keep all)."
        },
    )
    twin_samples: int = field(
        default=1,
        metadata={
            "help": "Replies the twin samples per prompt; chosen closest ranks them by MiniLM cosine with the person's real reply (at least 2 there)."
        },
    )
    closest_margin: float = field(
        default=0.1,
        metadata={
            "help": "chosen closest: keep a pair only when the chosen reply's cosine with the real reply beats the rejected one's by at least this."
        },
    )
    rejected_per_prompt: int = field(
        default=1,
        metadata={
            "help": "chosen closest: pairs per prompt: the nearest reply against each of this many of the twin's other replies, farthest first (each must pass closest_margin and twin_max_similarity on its own; at most twin_samples - 1)."
        },
    )
    style_weight: float = field(
        default=0.0,
        metadata={
            "help": "chosen closest: rank the twin's replies by cosine with the real reply + this x P(person) from the style classifier the eval uses (fitted on the train split), so a reply that drops the person's habits is the rejected one (0 = cosine only)."
        },
    )
    max_length_ratio: float = field(
        default=0.0,
        metadata={
            "help": "Drop a pair whose rejected/chosen length in words is above this or below its inverse, so length alone cannot tell them apart (e.g. 2; 0 = off)."
        },
    )
    trim_truncated: bool = field(
        default=True,
        metadata={"help": "Trim a reply cut at max_tokens back to its last full sentence (kept when one remains)."},
    )
    allow_truncated: bool = field(
        default=False,
        metadata={
            "help": "Keep pairs whose generated reply hit max_tokens (a base model's long answer, cut, is still a fine rejected example)."
        },
    )
    max_prompts: int | None = field(
        default=None, metadata={"help": "Use at most this many prompts per split (quick runs)."}
    )
    seed: int = field(default=0, metadata={"help": "Seeds sampling in each child."})

    def validate(self, where: str | None = None) -> None:
        where = where or self.block

        def need(ok, name, why):
            if not ok:
                raise PersonaError(f"{where}.{name}: {why} (got {getattr(self, name)!r})")

        need(self.chosen in CHOSEN, "chosen", "must be real, twin or closest")
        need(self.max_tokens is None or self.max_tokens >= 1, "max_tokens", "must be at least 1 (or unset)")
        need(self.batch_size >= 1, "batch_size", "must be at least 1")
        need(self.temperature >= 0, "temperature", "must not be negative")
        need(0 < self.top_p <= 1, "top_p", "must be in (0, 1]")
        need(0 <= self.similarity_threshold <= 1, "similarity_threshold", "must be in [0, 1]")
        need(self.rejected_from in REJECTED_FROM, "rejected_from", "must be base, twin or both")
        need(
            self.rejected_from == "base" or self.chosen != "twin",
            "rejected_from",
            "twin and both need chosen=real or closest (the twin's one reply cannot be chosen and rejected at once)",
        )
        need(
            self.chosen != "closest" or self.rejected_from == "twin",
            "rejected_from",
            "chosen=closest ranks the twin's own replies, so the rejected one is the twin's too: set rejected_from: twin",
        )
        need(self.twin_samples >= 1, "twin_samples", "must be at least 1")
        need(
            self.twin_samples == 1 or self.chosen == "closest",
            "twin_samples",
            "more than one twin reply per prompt is used by chosen=closest only",
        )
        need(
            self.chosen != "closest" or self.twin_samples >= 2,
            "twin_samples",
            "chosen=closest needs at least 2 twin replies per prompt to rank",
        )
        need(self.rejected_per_prompt >= 1, "rejected_per_prompt", "must be at least 1")
        need(
            self.rejected_per_prompt == 1 or self.chosen == "closest",
            "rejected_per_prompt",
            "more than one pair per prompt is made by chosen=closest only",
        )
        need(
            self.chosen != "closest" or self.rejected_per_prompt < self.twin_samples,
            "rejected_per_prompt",
            f"must be below twin_samples ({self.twin_samples}): the nearest reply is the chosen one",
        )
        need(0 <= self.closest_margin < 1, "closest_margin", "must be in [0, 1)")
        need(self.style_weight >= 0, "style_weight", "must not be negative")
        need(
            self.style_weight == 0 or self.chosen == "closest",
            "style_weight",
            "ranks the twin's replies, which only chosen=closest does",
        )
        need(0 <= self.twin_max_similarity <= 1, "twin_max_similarity", "must be in [0, 1]")
        need(
            self.max_length_ratio == 0 or self.max_length_ratio >= 1,
            "max_length_ratio",
            "must be 0 (off) or at least 1",
        )
        need(self.max_prompts is None or self.max_prompts >= 1, "max_prompts", "must be at least 1")
