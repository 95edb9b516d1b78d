"""ShareGPT JSONL / JSON: ``{"conversations": [{"from": "human", "value": ...}, ...]}``."""

from __future__ import annotations

from mlx_persona.data.ingest.base import (
    ReadResult,
    Reject,
    Turn,
    content_text,
    message_list,
    read_json_records,
    role_conversation,
    role_of,
)


def looks_like(record: dict) -> bool:
    return isinstance(record.get("conversations"), list)


def convert(obj: dict, source: str, line: int, result: ReadResult):
    msgs = message_list(obj, "conversations", source, line, result)
    if msgs is None:
        return None
    system = [obj["system"]] if isinstance(obj.get("system"), str) and obj["system"].strip() else []
    turns = []
    for m in msgs:
        who = str(m.get("from", "")) if isinstance(m, dict) else ""
        role = role_of(who)
        if role is None:
            result.rejects.append(Reject(source, line, "bad-record", f"unknown speaker {who!r}"))
            continue
        text = content_text(m.get("value"))
        if role == "system":
            system.append(text)
        else:
            turns.append(Turn(role, text, line, None, role))
    return role_conversation(source, line, turns, system)


def read(raw: bytes, source: str, options=None) -> ReadResult:
    return read_json_records(raw, source, convert)
