"""Readers: one module per raw chat format, each turning a file into conversations.

    chatml      {"messages": [{"role", "content"}]} JSONL (OpenAI / mlx_lm chat)
    sharegpt    {"conversations": [{"from", "value"}]} JSONL or JSON array
    alpaca      {"instruction", "input", "output", "system"?, "history"?} JSONL or JSON array
    completion  {"prompt", "completion"} JSONL
    csv         dialogue script: speaker + text columns, optional episode/scene columns
    whatsapp    WhatsApp .txt export (Android or iOS, any locale)
    telegram    Telegram Desktop result.json (one chat, or the whole account)
    messenger   Facebook / Instagram "Download your information" message_N.json
    signal      signal-export chat.md (or the same lines without seconds)
    discord     DiscordChatExporter JSON
    imessage    macOS Messages chat.db (SQLite, read-only)

:func:`detect` asks every reader how sure it is that a file is its format (``confidence``: a
score in 0..1 and the evidence, from the file's content, never from one key or the name alone)
and picks the surest; when two readers are about as sure, or none is, it asks for ``--format``
and says why. :func:`read_source` picks the reader (``detect`` unless the format is given) and
returns a :class:`~mlx_persona.data.ingest.base.ReadResult`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from mlx_persona.core.errors import PersonaError
from mlx_persona.data.ingest import (
    alpaca,
    chatml,
    completion,
    csv_script,
    discord,
    imessage,
    messenger,
    sharegpt,
    signal,
    telegram,
    whatsapp,
)
from mlx_persona.data.ingest.base import Conversation, Probe, ReadResult, Reject, Turn  # noqa: F401  (re-exported)

FORMATS = {
    "chatml": chatml,
    "sharegpt": sharegpt,
    "alpaca": alpaca,
    "completion": completion,
    "csv": csv_script,
    "whatsapp": whatsapp,
    "telegram": telegram,
    "messenger": messenger,
    "signal": signal,
    "discord": discord,
    "imessage": imessage,
}
RECORD_FORMATS = ("chatml", "sharegpt", "alpaca", "completion")
SURE = 0.5  # below this a reader does not claim the file
MARGIN = 0.15  # a runner-up this close to the best makes the file ambiguous


@dataclass
class Source:
    """One input file, as a recipe's ``data.sources`` entry names it."""

    path: str
    format: str | None = None  # None: detect from the file
    persona: str | None = None  # None: the persona given to clean()
    aliases: tuple = ()  # other spellings of the persona in this file ("SAM" beside "Sam")


def _record_score(probe: Probe, name: str) -> tuple[float, str]:
    """Share of the file's first records that have this record format's shape."""
    if not probe.records:
        return 0.0, "no JSON records"
    hits = sum(FORMATS[name].looks_like(r) for r in probe.records)
    return 0.9 * hits / len(probe.records), f"{hits} of the first {len(probe.records)} records have its keys"


def scores(path: Path, raw: bytes) -> dict[str, tuple[float, str]]:
    """Every reader's confidence that ``raw`` (the bytes of ``path``) is its format, with why."""
    probe = Probe.of(path, raw)
    out: dict[str, tuple[float, str]] = {}
    for name, mod in FORMATS.items():
        if name in RECORD_FORMATS:
            out[name] = _record_score(probe, name)
        else:
            out[name] = mod.confidence(probe)
    return out


def detect(path: Path, raw: bytes) -> str:
    """Name the format of ``raw`` (the bytes of ``path``); PersonaError if none is sure or two are."""
    ranked = sorted(scores(path, raw).items(), key=lambda kv: -kv[1][0])
    (best, (top, why)), (second, (runner, why2)) = ranked[0], ranked[1]
    if top < SURE:
        hint = f" (closest: {best}, {top:.2f}: {why})" if top > 0 else ""
        raise PersonaError(f"{path}: cannot tell its format{hint}; give --format, one of: {', '.join(FORMATS)}")
    if runner >= SURE and top - runner < MARGIN:
        raise PersonaError(
            f"{path}: could be {best} ({top:.2f}: {why}) or {second} ({runner:.2f}: {why2}); "
            f"give --format {best} or --format {second}"
        )
    return best


def read_source(source: Source, options=None) -> tuple[str, ReadResult]:
    """Read one input file; returns ``(format name, result)``."""
    path = Path(source.path)
    if not path.is_file():
        raise PersonaError(f"input not found: {source.path}")
    if source.format is not None and source.format not in FORMATS:
        raise PersonaError(f"unknown format {source.format!r}; supported: {', '.join(FORMATS)}")
    with open(path, "rb") as f:
        head = f.read(len(imessage.MAGIC))
    if head == imessage.MAGIC and source.format in (None, "imessage"):  # a database: never read whole
        fmt = source.format or detect(path, head)
        return fmt, imessage.read_db(path, str(source.path), options)
    raw = path.read_bytes()
    fmt = source.format or detect(path, raw)
    return fmt, FORMATS[fmt].read(raw, str(source.path), options)
