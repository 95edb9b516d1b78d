"""Facebook Messenger and Instagram chats from Meta's "Download your information" (JSON).

    {"participants": [{"name": "Alice"}, ...], "title": ..., "messages": [
        {"sender_name": "Bob", "timestamp_ms": 1415147681489, "content": "Whats up!"}, ...]}

One ``message_N.json`` is one chat (a long chat is split over several files; give them all).
Messages are stored newest first; they come out oldest first. Meta writes text as UTF-8 bytes
escaped one by one as ``\\u00XX`` (so "café" reads ``cafÃ©``): every string is repaired back to
what was typed. Calls and joins/leaves are system lines; a message with only photos, stickers,
audio or files becomes ``<Media omitted>`` for the ``meta`` rule; an unsent message is meta.
"""

from __future__ import annotations

import re

from mlx_persona.data.ingest.base import (
    Conversation,
    ReadResult,
    Reject,
    Turn,
    lines_of_values,
    messages_document,
)

MEDIA_KEYS = ("photos", "videos", "audio_files", "files", "gifs", "sticker")
SYSTEM_TYPES = {"Call", "Subscribe", "Unsubscribe"}
_TS_LINE = re.compile(r'^\s*"timestamp_ms":\s*(\d+),?\s*$')


def fix_mojibake(text: str) -> str:
    """Undo Meta's escaping: a string of code points < 256 that are UTF-8 bytes becomes UTF-8 text."""
    if text.isascii():
        return text
    try:
        return text.encode("latin-1").decode("utf-8")
    except (UnicodeEncodeError, UnicodeDecodeError):
        return text  # already real text (a code point above 255, or not UTF-8 bytes)


def confidence(probe) -> tuple[float, str]:
    doc = probe.doc
    if not isinstance(doc, dict) or not isinstance(doc.get("messages"), list):
        return 0.0, "no messages list"
    msgs = [m for m in doc["messages"][:50] if isinstance(m, dict)]
    if not msgs:
        return (0.6, "participants and an empty messages list") if "participants" in doc else (0.0, "no messages")
    shaped = sum("sender_name" in m and "timestamp_ms" in m for m in msgs)
    score = 0.8 * shaped / len(msgs) + 0.15 * isinstance(doc.get("participants"), list)
    return score, f"{shaped} of {len(msgs)} messages have sender_name and timestamp_ms"


def read(raw: bytes, source: str, options=None) -> ReadResult:
    lines, result, doc = messages_document(raw, source)
    if doc is None:
        return result
    ts_lines = lines_of_values(lines, _TS_LINE)
    msgs = [m for m in doc["messages"] if isinstance(m, dict)]
    turns = []
    for m in msgs:
        queue = ts_lines.get(str(m.get("timestamp_ms")))
        line = queue.pop(0) if queue else 1
        result.messages += 1
        body = fix_mojibake(m["content"]) if isinstance(m.get("content"), str) else ""
        if m.get("type") in SYSTEM_TYPES:
            result.rejects.append(Reject(source, line, "system-line", f"Messenger {m['type']}", body))
            continue
        if m.get("is_unsent"):
            result.rejects.append(Reject(source, line, "meta", "unsent message", body))
            continue
        if not body.strip() and any(k in m for k in MEDIA_KEYS):
            body = "<Media omitted>"
        ts = m.get("timestamp_ms")
        t = ts / 1000.0 if isinstance(ts, (int, float)) else None
        turns.append(Turn(fix_mojibake(str(m.get("sender_name") or "unknown")), body, line, t))
    turns.reverse()  # the export is newest first
    turns.sort(key=lambda t: (t.time is None, t.time or 0.0))
    if turns:
        result.conversations.append(Conversation(source, turns[0].line, turns))
    return result
