"""Alpaca JSONL / JSON: ``instruction`` + optional ``input`` -> ``output``.

Optional ``system`` and ``history`` (``[[question, answer], ...]`` before this exchange).
"""

from __future__ import annotations

from mlx_persona.data.ingest.base import ReadResult, exchange, read_json_records, role_conversation, string_fields


def looks_like(record: dict) -> bool:
    return "instruction" in record and "output" in record


def convert(obj: dict, source: str, line: int, result: ReadResult):
    fields = string_fields(obj, ("instruction", "output"), source, line, result)
    if fields is None:
        return None
    instruction, output = fields
    turns = []
    for pair in obj.get("history") or []:
        if isinstance(pair, (list, tuple)) and len(pair) == 2:
            turns += exchange(str(pair[0]), str(pair[1]), line)
    extra = obj.get("input")
    prompt = f"{instruction}\n\n{extra}" if isinstance(extra, str) and extra.strip() else instruction
    return role_conversation(source, line, turns + exchange(prompt, output, line), obj.get("system"))


def read(raw: bytes, source: str, options=None) -> ReadResult:
    return read_json_records(raw, source, convert)
