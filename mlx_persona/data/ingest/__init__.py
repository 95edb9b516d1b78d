"""Readers: one module per raw chat format, each turning a file into conversations.

    chatml      {"messages": [{"role", "content"}]} JSONL (OpenAI / mlx_lm chat)
    sharegpt    {"conversations": [{"from", "value"}]} JSONL or JSON array
    alpaca      {"instruction", "input", "output", "system"?, "history"?} JSONL or JSON array
    completion  {"prompt", "completion"} JSONL
    csv         dialogue script: speaker + text columns, optional episode/scene columns
    whatsapp    WhatsApp .txt export (Android or iOS)
    telegram    Telegram Desktop result.json

:func:`read_source` picks the reader (``detect`` unless the format is given) and returns a
:class:`~mlx_persona.data.ingest.base.ReadResult`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from mlx_persona.core.errors import PersonaError
from mlx_persona.data.ingest import alpaca, chatml, completion, csv_script, sharegpt, telegram, whatsapp
from mlx_persona.data.ingest.base import Conversation, ReadResult, Reject, Turn  # noqa: F401  (re-exported)

FORMATS = {
    "chatml": chatml,
    "sharegpt": sharegpt,
    "alpaca": alpaca,
    "completion": completion,
    "csv": csv_script,
    "whatsapp": whatsapp,
    "telegram": telegram,
}
RECORD_FORMATS = ("chatml", "sharegpt", "alpaca", "completion")  # checked in this order


@dataclass
class Source:
    """One input file, as a recipe's ``data.sources`` entry names it."""

    path: str
    format: str | None = None  # None: detect from the file
    persona: str | None = None  # None: the persona given to clean()


def _record_format(record) -> str | None:
    if isinstance(record, dict):
        for name in RECORD_FORMATS:
            if FORMATS[name].looks_like(record):
                return name
    return None


def detect(path: Path, raw: bytes) -> str:
    """Name the format of ``raw`` (the bytes of ``path``); PersonaError if it is none we read."""
    if path.suffix.lower() in (".csv", ".tsv"):
        return "csv"
    text = raw.decode("utf-8", "replace").lstrip("\ufeff")
    lines = text[:65536].split("\n")
    if whatsapp.sniff(lines):
        return "whatsapp"
    first = next((ln.strip() for ln in lines if ln.strip()), "")
    found = None
    if first.startswith("{") and first.endswith("}"):
        try:
            found = _record_format(json.loads(first))
        except ValueError:
            found = None
    if found is None and first[:1] in "[{":
        try:
            doc = json.loads(text)
        except ValueError:
            doc = None
            if '"messages"' in text[:65536] and '"date"' in text[:65536]:
                found = "telegram"
        if telegram.looks_like(doc):
            found = "telegram"
        elif isinstance(doc, list):
            found = _record_format(next((d for d in doc if isinstance(d, dict)), None))
        elif isinstance(doc, dict):
            found = _record_format(doc)
    if found is None:
        raise PersonaError(f"{path}: cannot tell its format; give --format, one of: {', '.join(FORMATS)}")
    return found


def read_source(source: Source, options=None) -> tuple[str, ReadResult]:
    """Read one input file; returns ``(format name, result)``."""
    path = Path(source.path)
    if not path.is_file():
        raise PersonaError(f"input not found: {source.path}")
    if source.format is not None and source.format not in FORMATS:
        raise PersonaError(f"unknown format {source.format!r}; supported: {', '.join(FORMATS)}")
    raw = path.read_bytes()
    fmt = source.format or detect(path, raw)
    return fmt, FORMATS[fmt].read(raw, str(source.path), options)
