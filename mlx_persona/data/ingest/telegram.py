"""Telegram Desktop ``result.json`` exports: one chat, or a full-account export (``chats.list``).

A full-account export holds every chat; ``chat`` (``--chat NAME``, or ``all``, the default)
picks one by name or id. A message's ``text`` is a string or a list of parts (strings and
``{"type": ..., "text": ...}`` entities: bold, links, mentions ...), flattened to plain text; two
entities that touch with no space between them (a bold label, then a link) get one. Its time is
``date_unixtime`` (UTC seconds) or, failing that, ``date``. Service messages (joins, pins, calls,
topic changes) are rejected as system lines; media without a caption becomes a
``<Media omitted>`` placeholder for the ``meta`` rule to report.
"""

from __future__ import annotations

import datetime as _dt
import re

from mlx_persona.core.errors import PersonaError
from mlx_persona.data.ingest.base import (
    Conversation,
    ReadResult,
    Reject,
    Turn,
    decode_lines,
    lines_of_values,
    load_json_document,
)

_ID_LINE = re.compile(r'^\s*"id":\s*(-?\d+),?\s*$')
MEDIA_KEYS = ("photo", "file", "media_type", "sticker_emoji", "poll", "location_information")


def confidence(probe) -> tuple[float, str]:
    """How sure we are that the file (a :class:`~mlx_persona.data.ingest.base.Probe`) is a
    Telegram export, and why."""
    return doc_confidence(probe.doc)


def doc_confidence(doc) -> tuple[float, str]:
    """Telegram confidence of a parsed JSON document."""
    if not isinstance(doc, dict):
        return 0.0, "not a JSON object"
    chats = doc.get("chats")
    if isinstance(chats, dict) and isinstance(chats.get("list"), list):
        return 0.95, "a full-account export: chats.list"
    msgs = (
        [m for m in (doc.get("messages") or [])[:50] if isinstance(m, dict)]
        if isinstance(doc.get("messages"), list)
        else []
    )
    if not msgs:
        return 0.0, "no messages list"
    typed = sum(m.get("type") in ("message", "service") for m in msgs)
    dated = sum("date_unixtime" in m or "date" in m for m in msgs)
    score = 0.5 * typed / len(msgs) + 0.4 * dated / len(msgs) + 0.1 * (doc.get("type") is not None or "name" in doc)
    return score, f"{typed} of {len(msgs)} messages have a Telegram type, {dated} a date"


def looks_like(doc) -> bool:
    return doc_confidence(doc)[0] >= 0.5


_GLUED = ("link", "text_link", "url", "mention", "mention_name", "email", "phone", "hashtag", "bot_command")


def text_of(value) -> str:
    """A message's text: a string, or its parts (strings and entities) joined."""
    if isinstance(value, str):
        return value
    if not isinstance(value, list):
        return ""
    out: list[str] = []
    prev_entity = None
    for p in value:
        if isinstance(p, str):
            out.append(p)
            prev_entity = None
        elif isinstance(p, dict):
            piece = str(p.get("text", ""))
            kind = p.get("type")
            if (
                prev_entity is not None
                and out
                and piece
                and (kind in _GLUED or prev_entity in _GLUED)
                and not out[-1][-1:].isspace()
                and not piece[:1].isspace()
            ):
                out.append(" ")  # a link right after a bold label: they never run together in the app
            out.append(piece)
            prev_entity = kind
    return "".join(out)


def _pick_chats(doc: dict, wanted: str | None, source: str) -> list[dict]:
    """The chats to read: the file's only one, or ``wanted`` (a name or id; ``all``: every chat)."""
    if not isinstance(doc.get("chats"), dict):
        return [doc]
    chats = [c for c in doc["chats"].get("list") or [] if isinstance(c, dict)]
    if not wanted or wanted == "all" or len(chats) == 0:
        return chats
    key = wanted.strip().casefold()
    picked = [c for c in chats if str(c.get("name") or "").strip().casefold() == key or str(c.get("id")) == wanted]
    if not picked:
        names = ", ".join(sorted({str(c.get("name") or c.get("id")) for c in chats})[:12])
        raise PersonaError(f"{source}: no chat named {wanted!r}; chats there: {names} (or --chat all)")
    return picked


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
    doc = load_json_document(lines, source, result)
    if doc is None:
        return result
    # Message ids sit on their own line in Telegram's pretty-printed export: find each one's line.
    id_lines = lines_of_values(lines, _ID_LINE)
    bad_lines = sorted(r.line for r in bad)
    if not isinstance(doc, dict):
        result.rejects.append(Reject(source, 1, "bad-record", "a Telegram export is a JSON object; file skipped"))
        return result
    chats = _pick_chats(doc, getattr(options, "chat", None), source)
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
            body = text_of(m.get("text") if "text" in m else m.get("text_entities"))
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
