"""The ``serve:`` settings: where the server listens, who may call it, and how much it may take.

Safe by default: it listens on loopback only; any other address needs an API key. Every request
body and every reply has a ceiling, so one client cannot take the machine.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field
from typing import ClassVar

from mlx_persona.core.errors import PersonaError
from mlx_persona.core.settings import Settings

API_KEY_ENV = "MLX_PERSONA_API_KEY"  # the key without putting it on the command line (ps shows those)


@dataclass
class ServeSettings(Settings):
    block: ClassVar[str] = "serve"

    models: list[str] = field(
        default_factory=list,
        metadata={
            "help": "Models of a run folder to serve, comma-separated: twin, sft, dpo, base (default: all it has)."
        },
    )
    host: str = field(
        default="127.0.0.1", metadata={"help": "Address to listen on; anything but loopback needs --api-key."}
    )
    port: int = field(default=8400, metadata={"help": "TCP port (0: any free one)."})
    api_key: str | None = field(
        default=None,
        metadata={"help": f"Clients must send 'Authorization: Bearer KEY' (or set {API_KEY_ENV})."},
    )
    memory_gb: float | None = field(
        default=None,
        metadata={
            "help": "Keep loaded models within this many GB; the least recently used leaves first (default: half the device's memory)."
        },
    )
    max_tokens: int = field(default=256, metadata={"help": "Reply length when a request gives no max_tokens."})
    max_tokens_limit: int = field(default=2048, metadata={"help": "The most tokens one reply may ask for."})
    context_tokens: int = field(
        default=4096, metadata={"help": "Prompt + reply ceiling (the model's own limit applies when lower)."}
    )
    max_body_kb: int = field(default=512, metadata={"help": "Largest request body accepted, in KiB (413 beyond)."})
    batch_size: int = field(
        default=16, metadata={"help": "Sequences one model decodes together (concurrent requests share a batch)."}
    )

    def validate(self, where: str | None = None) -> None:
        at = where or self.block
        if not 0 <= self.port <= 65535:
            raise PersonaError(f"{at}: --port must be 0..65535, got {self.port}")
        for name in ("max_tokens", "max_tokens_limit", "context_tokens", "max_body_kb", "batch_size"):
            if getattr(self, name) <= 0:
                raise PersonaError(f"{at}: --{name.replace('_', '-')} must be positive")
        if self.max_tokens > self.max_tokens_limit:
            raise PersonaError(
                f"{at}: --max-tokens {self.max_tokens} is above --max-tokens-limit {self.max_tokens_limit}"
            )
        if self.memory_gb is not None and self.memory_gb <= 0:
            raise PersonaError(f"{at}: --memory-gb must be positive")
        if self.api_key is not None and not self.api_key.strip():
            raise PersonaError(f"{at}: --api-key is empty")
        if not is_loopback(self.host) and not self.api_key:
            raise PersonaError(
                f"listening on {self.host} lets other machines talk to the twin: give --api-key KEY "
                f"(or set {API_KEY_ENV}), or listen on 127.0.0.1"
            )


def is_loopback(host: str) -> bool:
    """True for ``localhost`` and addresses in 127.0.0.0/8 or ``::1``; any other name or address is not."""
    if host.strip().lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False
