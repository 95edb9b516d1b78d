"""The ``sft:`` block: the shared training knobs of :class:`~mlx_persona.train.config.TrainConfig`
with the SFT stage's defaults (command line > YAML/JSON > these)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from mlx_persona.train.config import FINE_TUNE_TYPES, LR_SCHEDULES, OPTIMIZERS, TrainConfig  # noqa: F401

__all__ = ["SFTConfig"]


@dataclass
class SFTConfig(TrainConfig):
    block: ClassVar[str] = "sft"
