"""Prompt/completion JSONL: ``{"prompt": ..., "completion": ...}`` (optional ``system``)."""

from __future__ import annotations

from mlx_persona.data.ingest.base import ReadResult, exchange, read_json_records, role_conversation, string_fields


def looks_like(record: dict) -> bool:
    return "prompt" in record and "completion" in record


def convert(obj: dict, source: str, line: int, result: ReadResult):
    fields = string_fields(obj, ("prompt", "completion"), source, line, result)
    if fields is None:
        return None
    return role_conversation(source, line, exchange(*fields, line), obj.get("system"))


def read(raw: bytes, source: str, options=None) -> ReadResult:
    return read_json_records(raw, source, convert)
