"""Telegram Desktop ``result.json`` exports (one chat, or a full export with ``chats.list``).

A message's ``text`` is a string or a list of parts (strings and ``{"type": ..., "text": ...}``
entities). Service messages (joins, pins, calls) are rejected as system lines; media without a
caption becomes a ``<Media omitted>`` placeholder for the ``meta`` rule to report.
"""

from __future__ import annotations

import datetime as _dt
import json
import re

from mlx_persona.data.ingest.base import Conversation, ReadResult, Reject, Turn, decode_lines

_ID_LINE = re.compile(r'^\s*"id":\s*(-?\d+),?\s*$')
MEDIA_KEYS = ("photo", "file", "media_type", "sticker_emoji", "poll", "location_information")


def looks_like(doc) -> bool:
    if not isinstance(doc, dict):
        return False
    if isinstance(doc.get("chats"), dict):
        return True
    msgs = doc.get("messages")
    return isinstance(msgs, list) and any("date" in m for m in msgs[:20] if isinstance(m, dict))


def text_of(value) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, list):
        return "".join(p if isinstance(p, str) else str(p.get("text", "")) for p in value if isinstance(p, (str, dict)))
    return ""


def _time(m: dict):
    if str(m.get("date_unixtime", "")).isdigit():
        return float(m["date_unixtime"])
    try:
        d = _dt.datetime.fromisoformat(str(m.get("date")))
        return (d - _dt.datetime(1970, 1, 1, tzinfo=d.tzinfo)).total_seconds()
    except ValueError:
        return None


def read(raw: bytes, source: str, options=None) -> ReadResult:
    lines, bad = decode_lines(raw, source)
    result = ReadResult(rejects=bad)
    text = "\n".join("" if ln is None else ln for ln in lines)
    try:
        doc = json.loads(text)
    except ValueError as e:
        result.rejects.append(Reject(source, getattr(e, "lineno", 1), "malformed-json", f"{e}; file skipped"))
        return result
    # Message ids sit on their own line in Telegram's pretty-printed export: find each one's line.
    id_lines: dict[str, list[int]] = {}
    for i, ln in enumerate(lines, 1):
        m = _ID_LINE.match(ln or "")
        if m:
            id_lines.setdefault(m.group(1), []).append(i)
    bad_lines = sorted(r.line for r in bad)
    chats = doc["chats"].get("list", []) if isinstance(doc.get("chats"), dict) else [doc]
    for chat in chats:
        turns = []
        msgs = [m for m in chat.get("messages") or [] if isinstance(m, dict)]
        starts = []
        for m in msgs:
            queue = id_lines.get(str(m.get("id")))
            starts.append(queue.pop(0) if queue else 0)
        for k, m in enumerate(msgs):
            line = starts[k] or 1
            end = starts[k + 1] if k + 1 < len(msgs) and starts[k + 1] else line + 1
            result.messages += 1
            if any(line <= b < end for b in bad_lines):
                continue  # its undecodable line is already in the rejects
            body = text_of(m.get("text"))
            if m.get("type") != "message":
                result.rejects.append(
                    Reject(source, line, "system-line", f"Telegram {m.get('type')}: {m.get('action', '')}", body)
                )
                continue
            if not body.strip() and any(k2 in m for k2 in MEDIA_KEYS):
                body = "<Media omitted>"
            speaker = str(m.get("from") or m.get("from_id") or "unknown")
            turns.append(Turn(speaker, body, line, _time(m)))
        if turns:
            result.conversations.append(Conversation(source, turns[0].line, turns))
    return result
