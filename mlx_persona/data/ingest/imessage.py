"""iMessage and SMS from macOS Messages' database, ``~/Library/Messages/chat.db`` (SQLite).

The database is opened read-only (copy it out of ``~/Library`` first, or give the terminal Full
Disk Access). Each chat (``chat`` table; a person or a group) is one conversation, its messages
in time order. ``chat`` (``--chat``) picks chats by handle (``+15551234567``,
``name@icloud.com``), group name or chat identifier; ``all`` (the default) reads every chat.

Speakers: the Mac's owner is ``me`` (``is_from_me``), everyone else their handle (contact
names live in the address book, not here): ``--persona me`` trains on your own messages.

Text: the ``text`` column, or, where it is empty (newer macOS versions), the string archived in
``attributedBody``. That blob is an NSAttributedString in Apple's typedstream format::

    ... "NSString" 0x01 0x94 0x84 0x01 "+" LEN BYTES ...

where LEN is one byte, or 0x81 and a 2-byte little-endian length, or 0x82 and a 4-byte one, and
BYTES are the UTF-8 text. Tapback reactions (``associated_message_type`` != 0) are meta; group
events (``item_type`` != 0: renames, joins, leaves) are system lines; an attachment without text
(U+FFFC, the object replacement character, alone) becomes ``<Media omitted>``.

A reject's ``line`` is the message's ROWID. Times: ``date`` counts from 2001-01-01, in
nanoseconds since macOS 10.13 and in seconds before.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

from mlx_persona.core.errors import PersonaError
from mlx_persona.data.ingest.base import Conversation, ReadResult, Reject, Turn

MAGIC = b"SQLite format 3\x00"
TABLES = {"message", "handle", "chat", "chat_message_join"}
APPLE_EPOCH = 978_307_200  # 2001-01-01 in Unix seconds
ME = "me"
OBJECT = "\ufffc"  # where an attachment sits in the text


def decode_attributed_body(blob: bytes | None) -> str:
    """The plain text archived in an ``attributedBody`` typedstream ("" if there is none)."""
    if not blob:
        return ""
    at = blob.find(b"NSString")
    if at < 0:
        return ""
    plus = blob.find(b"\x01+", at, at + 32)  # the type code of the C string that follows
    if plus < 0:
        return ""
    k = plus + 2
    if k >= len(blob):
        return ""
    n = blob[k]
    k += 1
    if n == 0x81:
        n, k = int.from_bytes(blob[k : k + 2], "little"), k + 2
    elif n == 0x82:
        n, k = int.from_bytes(blob[k : k + 4], "little"), k + 4
    return blob[k : k + n].decode("utf-8", "replace")


def _connect(path: Path) -> sqlite3.Connection:
    try:
        db = sqlite3.connect(Path(path).resolve().as_uri() + "?mode=ro", uri=True)
        db.execute("SELECT count(*) FROM sqlite_master").fetchone()
    except sqlite3.DatabaseError as e:
        raise PersonaError(f"{path}: cannot open it as an SQLite database ({e})") from None
    return db


def _tables(db: sqlite3.Connection) -> set[str]:
    return {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}


def confidence(probe) -> tuple[float, str]:
    if not probe.raw.startswith(MAGIC):
        return 0.0, "not an SQLite database"
    try:
        db = _connect(probe.path)
        found = _tables(db)
        db.close()
    except PersonaError:
        return 0.2, "an SQLite header, but it does not open"
    if TABLES <= found:
        return 0.99, "an SQLite database with Messages' message, handle and chat tables"
    return 0.2, f"an SQLite database without Messages' tables ({', '.join(sorted(TABLES - found))} missing)"


def read(raw: bytes, source: str, options=None) -> ReadResult:
    raise PersonaError(f"{source}: not an SQLite database; iMessage reads macOS Messages' chat.db")


def _seconds(date) -> float | None:
    if not isinstance(date, (int, float)) or date == 0:
        return None
    return (date / 1e9 if abs(date) > 1e11 else float(date)) + APPLE_EPOCH


def _chats(db: sqlite3.Connection, wanted: str | None, source: str) -> list[int] | None:
    """ROWIDs of the chats ``wanted`` names (None: every chat)."""
    if not wanted or wanted == "all":
        return None
    key = wanted.strip().casefold()
    names: dict[int, set[str]] = {}
    for rowid, ident, display in db.execute("SELECT ROWID, chat_identifier, display_name FROM chat"):
        names.setdefault(rowid, set()).update(str(v).casefold() for v in (ident, display) if v)
    if "chat_handle_join" in _tables(db):
        q = "SELECT j.chat_id, h.id FROM chat_handle_join j JOIN handle h ON h.ROWID = j.handle_id"
        for chat_id, handle in db.execute(q):
            names.setdefault(chat_id, set()).add(str(handle).casefold())
    picked = sorted(c for c, ns in names.items() if key in ns)
    if not picked:
        known = sorted({n for ns in names.values() for n in ns})[:12]
        raise PersonaError(f"{source}: no chat with handle or name {wanted!r}; some there: {', '.join(known)}")
    return picked


def read_db(path: Path, source: str, options=None) -> ReadResult:
    """Read the Messages database at ``path`` (read-only) into one conversation per chat."""
    db = _connect(path)
    try:
        missing = TABLES - _tables(db)
        if missing:
            raise PersonaError(f"{source}: not a Messages chat.db (no table {', '.join(sorted(missing))})")
        cols = {r[1] for r in db.execute("PRAGMA table_info(message)")}
        opt = {c: (f"m.{c}" if c in cols else "0") for c in ("associated_message_type", "item_type")}
        body = "m.attributedBody" if "attributedBody" in cols else "NULL"
        attach = "m.cache_has_attachments" if "cache_has_attachments" in cols else "0"
        chats = _chats(db, getattr(options, "chat", None), source)
        where = f"WHERE j.chat_id IN ({','.join(map(str, chats))})" if chats is not None else ""
        rows = db.execute(
            f"SELECT m.ROWID, j.chat_id, m.text, {body}, m.date, m.is_from_me, h.id, "
            f"{opt['associated_message_type']}, {opt['item_type']}, {attach} "
            "FROM message m LEFT JOIN chat_message_join j ON j.message_id = m.ROWID "
            f"LEFT JOIN handle h ON h.ROWID = m.handle_id {where} ORDER BY j.chat_id, m.date, m.ROWID"
        ).fetchall()
    except sqlite3.DatabaseError as e:
        raise PersonaError(f"{source}: cannot read the Messages tables ({e})") from None
    finally:
        db.close()

    result = ReadResult()
    turns: list[Turn] = []
    chat = object()

    def flush():
        if turns:
            result.conversations.append(Conversation(source, turns[0].line, list(turns)))
            turns.clear()

    for rowid, chat_id, text, blob, date, from_me, handle, tapback, item_type, has_attachment in rows:
        if chat_id != chat:
            flush()
            chat = chat_id
        result.messages += 1
        words = text if text else decode_attributed_body(blob)
        if item_type:
            result.rejects.append(Reject(source, rowid, "system-line", f"Messages group event {item_type}", words))
            continue
        if tapback:
            result.rejects.append(Reject(source, rowid, "meta", "tapback reaction", words))
            continue
        words = words.replace(OBJECT, "").strip() if OBJECT in words else words
        if not words.strip() and (has_attachment or (text or "").strip() == OBJECT):
            words = "<Media omitted>"
        speaker = ME if from_me else str(handle or "unknown")
        turns.append(Turn(speaker, words, rowid, _seconds(date)))
    flush()
    return result
