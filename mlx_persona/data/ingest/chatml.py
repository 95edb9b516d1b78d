"""ChatML / OpenAI messages JSONL: ``{"messages": [{"role": ..., "content": ...}, ...]}``.

System messages become the conversation's system prompt (the cleaning rules decide what to keep
of it); tool results and content-less tool calls are not anyone's voice and are dropped.
"""

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

TOOL_ROLES = {"tool", "function", "ipython"}


def looks_like(record: dict) -> bool:
    """A ``messages`` list whose entries carry a ``role`` (other apps' exports have senders)."""
    msgs = record.get("messages")
    if not isinstance(msgs, list):
        return False
    items = [m for m in msgs[:20] if isinstance(m, dict)]
    return not items or sum("role" in m for m in items) * 2 > len(items)


def convert(obj: dict, source: str, line: int, result: ReadResult):
    msgs = message_list(obj, "messages", source, line, result)
    if msgs is None:
        return None
    system, turns = [], []
    for m in msgs:
        if not isinstance(m, dict):
            result.rejects.append(Reject(source, line, "bad-record", "a message is not an object"))
            continue
        raw_role = str(m.get("role", ""))
        text = content_text(m.get("content"))
        if raw_role.lower() in TOOL_ROLES or (not text.strip() and (m.get("tool_calls") or m.get("function_call"))):
            result.rejects.append(Reject(source, line, "tool-message", f"{raw_role or 'tool'} message", text))
            continue
        role = role_of(raw_role)
        if role is None:
            result.rejects.append(Reject(source, line, "bad-record", f"unknown role {raw_role!r}", text))
            continue
        if role == "system":
            system.append(text)
            continue
        turns.append(Turn(str(m.get("name") or role), text, line, None, role))
    return role_conversation(source, line, turns, system)


def read(raw: bytes, source: str, options=None) -> ReadResult:
    return read_json_records(raw, source, convert)
