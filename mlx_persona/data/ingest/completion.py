"""Prompt/completion JSONL: ``{"prompt": ..., "completion": ...}`` (optional ``system``)."""

from __future__ import annotations

from mlx_persona.data.ingest.base import Conversation, ReadResult, Reject, Turn, read_json_records


def looks_like(record: dict) -> bool:
    return "prompt" in record and "completion" in record


def convert(obj: dict, source: str, line: int, result: ReadResult):
    prompt, completion = obj.get("prompt"), obj.get("completion")
    if not isinstance(prompt, str) or not isinstance(completion, str):
        result.rejects.append(Reject(source, line, "bad-record", "'prompt' and 'completion' must be strings"))
        return None
    turns = [Turn("user", prompt, line, None, "user"), Turn("assistant", completion, line, None, "assistant")]
    system = obj.get("system") if isinstance(obj.get("system"), str) and obj["system"].strip() else None
    return Conversation(source, line, turns, system, named=False)


def read(raw: bytes, source: str, options=None) -> ReadResult:
    return read_json_records(raw, source, convert)
