"""The recipe's ``export:`` block: which targets ``mlx-persona run`` writes once the twin exists.

    export:
      to: [ollama, mlx]          # any of gguf, ollama, lmstudio, mlx; empty: no export
      quant: q8_0                # GGUF storage for gguf/ollama: f16, q8_0, q4_0
      temperature: 0.7           # Ollama's PARAMETER temperature
      num_ctx: 2048              # Ollama's PARAMETER num_ctx (capped at the model's context)
      lmstudio_dir: ~/.lmstudio/models

Outputs go to ``runs/<name>/export/<target>/`` (LM Studio: its models folder).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from mlx_persona.core.errors import PersonaError
from mlx_persona.core.settings import Settings
from mlx_persona.models.gguf_export import QUANTS

TARGETS = ("gguf", "ollama", "lmstudio", "mlx")


@dataclass
class ExportConfig(Settings):
    block = "export"

    to: list = field(
        default_factory=list,
        metadata={"help": "Targets written at the end of a run: gguf, ollama, lmstudio, mlx (none by default)."},
    )
    quant: str = field(
        default="f16",
        metadata={"help": "GGUF storage for gguf and ollama: f16, q8_0 or q4_0.", "choices": QUANTS},
    )
    temperature: float = field(default=0.7, metadata={"help": "Ollama's sampling temperature (PARAMETER temperature)."})
    num_ctx: int = field(
        default=2048, metadata={"help": "Ollama's context in tokens (PARAMETER num_ctx; at most the model's)."}
    )
    lmstudio_dir: str | None = field(
        default=None,
        metadata={"help": "LM Studio's models folder; default $LMSTUDIO_MODELS_DIR, else ~/.lmstudio/models."},
    )

    def validate(self, where: str | None = None) -> None:
        label = where or self.block
        bad = [t for t in self.to if t not in TARGETS]
        if bad:
            raise PersonaError(f"{label}.to: unknown target {bad[0]} (choose from {', '.join(TARGETS)})")
        if self.quant not in QUANTS:
            raise PersonaError(f"{label}.quant: {self.quant} (choose from {', '.join(QUANTS)})")
        if self.temperature < 0 or self.num_ctx < 1:
            raise PersonaError(f"{label}: temperature must be >= 0 and num_ctx >= 1")
