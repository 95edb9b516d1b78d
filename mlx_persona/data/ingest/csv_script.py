"""CSV dialogue scripts: one line of dialogue per row.

Needs a speaker column and a text column (``speaker`` / ``text`` by default, case-insensitive,
configurable). Optional bound columns (``episode``, ``scene`` by default) start a new
conversation whenever their values change. ``.tsv`` files, or a tab-only header, use tabs.
"""

from __future__ import annotations

import csv

from mlx_persona.core.errors import PersonaError
from mlx_persona.data.ingest.base import Conversation, ReadResult, Reject, Turn, decode_lines


def confidence(probe) -> tuple[float, str]:
    """A ``.csv``/``.tsv`` name with a delimited header, or a header naming speaker and text."""
    first = next((ln for ln in probe.lines if ln.strip()), "")
    delimited = "," in first or "\t" in first
    if probe.path.suffix.lower() in (".csv", ".tsv") and delimited:
        return 0.9, "a .csv/.tsv file with a delimited header"
    cells = {c.strip().strip('"').lower() for c in first.replace("\t", ",").split(",")}
    if {"speaker", "text"} <= cells:
        return 0.7, "its header names speaker and text columns"
    return 0.0, "not a delimited table with speaker and text"


def _columns(header: list[str], source: str, options) -> tuple[int, int, list[int]]:
    lower = [h.strip().lower() for h in header]
    speaker = getattr(options, "speaker_column", "speaker").lower()
    text = getattr(options, "text_column", "text").lower()
    missing = [c for c in (speaker, text) if c not in lower]
    if missing:
        raise PersonaError(
            f"{source}: no column {' or '.join(map(repr, missing))} in the header "
            f"({', '.join(header)}); name them with --speaker-column / --text-column"
        )
    bounds = [
        lower.index(b.lower()) for b in getattr(options, "bound_columns", ("episode", "scene")) if b.lower() in lower
    ]
    return lower.index(speaker), lower.index(text), bounds


def read(raw: bytes, source: str, options=None) -> ReadResult:
    lines, bad = decode_lines(raw, source)
    result = ReadResult(rejects=bad)
    bad_lines = {r.line for r in bad}
    while lines and lines[-1] == "":
        lines.pop()
    first = next((ln for ln in lines if ln), "") or ""
    tab = source.endswith(".tsv") or ("\t" in first and "," not in first)
    rows = csv.reader(((ln or "") + "\n" for ln in lines), delimiter="\t" if tab else ",")
    try:
        header = next(rows)
    except StopIteration:
        return result
    si, ti, bi = _columns(header, source, options)
    need = max([si, ti] + bi) + 1
    turns, scene, prev_end = [], None, rows.line_num
    for row in rows:
        start, prev_end = prev_end + 1, rows.line_num
        if not any(cell.strip() for cell in row):
            continue
        result.messages += 1
        if any(b in bad_lines for b in range(start, prev_end + 1)):
            continue  # its undecodable line is already in the rejects
        if len(row) < need or not row[si].strip() or not row[ti].strip():
            result.rejects.append(
                Reject(
                    source,
                    start,
                    "csv-missing-column",
                    f"row has {len(row)} of {len(header)} columns or an empty speaker/text",
                    ",".join(row),
                )
            )
            continue
        if len(row) > len(header) and any(cell.strip() for cell in row[len(header) :]):
            result.rejects.append(
                Reject(
                    source,
                    start,
                    "csv-extra-column",
                    f"row has {len(row)} columns, the header {len(header)} (an unquoted comma?)",
                    ",".join(row),
                )
            )
            continue
        key = tuple(row[b] for b in bi)
        if turns and key != scene:
            result.conversations.append(Conversation(source, turns[0].line, turns))
            turns = []
        scene = key
        turns.append(Turn(row[si].strip(), row[ti], start))
    if turns:
        result.conversations.append(Conversation(source, turns[0].line, turns))
    return result
