"""The ``sft:`` block: the shared training knobs of :class:`~mlx_persona.train.config.TrainConfig`
with the SFT stage's defaults (command line > YAML/JSON > these)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from mlx_persona.train.config import TrainConfig


@dataclass
class SFTConfig(TrainConfig):
    block: ClassVar[str] = "sft"
