"""Discord channels and DMs as DiscordChatExporter writes them (``--format Json``).

    {"guild": {...}, "channel": {"name": ...}, "messages": [
        {"id": "...", "type": "Default", "timestamp": "2020-09-29T18:09:27.123+00:00",
         "content": "hi", "author": {"name": "alice", "nickname": "Alice", ...},
         "attachments": [], "embeds": [], "stickers": [], ...}]}

A speaker is the author's ``nickname`` (the name shown in the channel), else the user ``name``.
Ordinary messages and replies are kept; joins, pins, calls, renames and other events are system
lines. A message with only attachments, stickers or embeds becomes ``<Media omitted>`` for the
``meta`` rule.
"""

from __future__ import annotations

import datetime as _dt
import re

from mlx_persona.data.ingest.base import (
    Conversation,
    ReadResult,
    Reject,
    Turn,
    lines_of_values,
    messages_document,
)

KEPT_TYPES = {"Default", "Reply", "ThreadStarterMessage", None}
MEDIA_KEYS = ("attachments", "stickers", "embeds")
_ID_LINE = re.compile(r'^\s*"id":\s*"(\d+)",?\s*$')


def confidence(probe) -> tuple[float, str]:
    doc = probe.doc
    if not isinstance(doc, dict) or not isinstance(doc.get("messages"), list):
        return 0.0, "no messages list"
    msgs = [m for m in doc["messages"][:50] if isinstance(m, dict)]
    frame = isinstance(doc.get("channel"), dict) + isinstance(doc.get("guild"), dict)
    if not msgs:
        return 0.3 * frame, "a channel with no messages"
    shaped = sum(isinstance(m.get("author"), dict) and "timestamp" in m for m in msgs)
    score = 0.7 * shaped / len(msgs) + 0.15 * frame
    return score, f"{shaped} of {len(msgs)} messages have an author object and a timestamp; guild/channel: {frame}"


def _time(value) -> float | None:
    try:
        d = _dt.datetime.fromisoformat(str(value))
    except ValueError:
        return None
    if d.tzinfo is None:
        d = d.replace(tzinfo=_dt.timezone.utc)
    return d.timestamp()


def read(raw: bytes, source: str, options=None) -> ReadResult:
    lines, result, doc = messages_document(raw, source)
    if doc is None:
        return result
    id_lines = lines_of_values(lines, _ID_LINE)
    turns = []
    for m in doc["messages"]:
        if not isinstance(m, dict):
            continue
        queue = id_lines.get(str(m.get("id")))
        line = queue.pop(0) if queue else 1
        result.messages += 1
        body = m.get("content") if isinstance(m.get("content"), str) else ""
        if m.get("type") not in KEPT_TYPES:
            result.rejects.append(Reject(source, line, "system-line", f"Discord {m.get('type')}", body))
            continue
        if not body.strip() and any(m.get(k) for k in MEDIA_KEYS):
            body = "<Media omitted>"
        author = m.get("author") if isinstance(m.get("author"), dict) else {}
        speaker = str(author.get("nickname") or author.get("name") or "unknown")
        turns.append(Turn(speaker, body, line, _time(m.get("timestamp"))))
    if turns:
        result.conversations.append(Conversation(source, turns[0].line, turns))
    return result
