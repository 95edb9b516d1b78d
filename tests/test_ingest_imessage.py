"""iMessage reader on a chat.db built here with the tables and columns macOS Messages uses."""

import hashlib
import sqlite3

import pytest

from mlx_persona.core.errors import PersonaError
from mlx_persona.data.clean import CleanConfig, clean
from mlx_persona.data.ingest import Source, detect, imessage, read_source

# The tables the reader touches, as macOS 13-14 creates them (other tables and columns omitted).
SCHEMA = """
CREATE TABLE handle (ROWID INTEGER PRIMARY KEY AUTOINCREMENT UNIQUE, id TEXT NOT NULL, country TEXT,
    service TEXT NOT NULL, uncanonicalized_id TEXT, person_centric_id TEXT, UNIQUE (id, service));
CREATE TABLE chat (ROWID INTEGER PRIMARY KEY AUTOINCREMENT, guid TEXT UNIQUE NOT NULL, style INTEGER, state INTEGER,
    account_id TEXT, properties BLOB, chat_identifier TEXT, service_name TEXT, room_name TEXT,
    account_login TEXT, is_archived INTEGER DEFAULT 0, last_addressed_handle TEXT, display_name TEXT,
    group_id TEXT, is_filtered INTEGER DEFAULT 0, successful_query INTEGER, last_read_message_timestamp INTEGER DEFAULT 0);
CREATE TABLE chat_handle_join (chat_id INTEGER REFERENCES chat (ROWID) ON DELETE CASCADE,
    handle_id INTEGER REFERENCES handle (ROWID) ON DELETE CASCADE, UNIQUE(chat_id, handle_id));
CREATE TABLE chat_message_join (chat_id INTEGER REFERENCES chat (ROWID) ON DELETE CASCADE,
    message_id INTEGER REFERENCES message (ROWID) ON DELETE CASCADE, message_date INTEGER DEFAULT 0,
    PRIMARY KEY (chat_id, message_id));
CREATE TABLE message (ROWID INTEGER PRIMARY KEY AUTOINCREMENT, guid TEXT UNIQUE NOT NULL, text TEXT,
    replace INTEGER DEFAULT 0, service_center TEXT, handle_id INTEGER DEFAULT 0, subject TEXT, country TEXT,
    attributedBody BLOB, version INTEGER DEFAULT 0, type INTEGER DEFAULT 0, service TEXT, account TEXT,
    account_guid TEXT, error INTEGER DEFAULT 0, date INTEGER, date_read INTEGER, date_delivered INTEGER,
    is_delivered INTEGER DEFAULT 0, is_finished INTEGER DEFAULT 0, is_emote INTEGER DEFAULT 0,
    is_from_me INTEGER DEFAULT 0, is_empty INTEGER DEFAULT 0, is_delayed INTEGER DEFAULT 0,
    is_auto_reply INTEGER DEFAULT 0, is_prepared INTEGER DEFAULT 0, is_read INTEGER DEFAULT 0,
    is_system_message INTEGER DEFAULT 0, is_sent INTEGER DEFAULT 0, has_dd_results INTEGER DEFAULT 0,
    is_service_message INTEGER DEFAULT 0, is_forward INTEGER DEFAULT 0, was_downgraded INTEGER DEFAULT 0,
    is_archive INTEGER DEFAULT 0, cache_has_attachments INTEGER DEFAULT 0, cache_roomnames TEXT,
    was_data_detected INTEGER DEFAULT 0, was_deduplicated INTEGER DEFAULT 0, is_audio_message INTEGER DEFAULT 0,
    is_played INTEGER DEFAULT 0, date_played INTEGER, item_type INTEGER DEFAULT 0, other_handle INTEGER DEFAULT 0,
    group_title TEXT, group_action_type INTEGER DEFAULT 0, share_status INTEGER DEFAULT 0,
    share_direction INTEGER DEFAULT 0, is_expirable INTEGER DEFAULT 0, expire_state INTEGER DEFAULT 0,
    message_action_type INTEGER DEFAULT 0, message_source INTEGER DEFAULT 0, associated_message_guid TEXT,
    associated_message_type INTEGER DEFAULT 0, balloon_bundle_id TEXT, payload_data BLOB,
    expressive_send_style_id TEXT, associated_message_range_location INTEGER DEFAULT 0,
    associated_message_range_length INTEGER DEFAULT 0, time_expressive_send_played INTEGER,
    message_summary_info BLOB, ck_sync_state INTEGER DEFAULT 0, ck_record_id TEXT, ck_record_change_tag TEXT,
    destination_caller_id TEXT, is_corrupt INTEGER DEFAULT 0, reply_to_guid TEXT, sort_id INTEGER,
    is_spam INTEGER DEFAULT 0, has_unseen_mention INTEGER DEFAULT 0, thread_originator_guid TEXT,
    thread_originator_part TEXT, syndication_ranges TEXT, synced_syndication_ranges TEXT,
    was_delivered_quietly INTEGER DEFAULT 0, did_notify_recipient INTEGER DEFAULT 0, date_retracted INTEGER DEFAULT 0,
    date_edited INTEGER DEFAULT 0, was_detonated INTEGER DEFAULT 0, part_count INTEGER, is_stewie INTEGER DEFAULT 0,
    is_kt_verified INTEGER DEFAULT 0, is_sos INTEGER DEFAULT 0, is_critical INTEGER DEFAULT 0,
    bia_reference_id TEXT DEFAULT NULL, fallback_hash TEXT DEFAULT NULL);
CREATE TABLE attachment (ROWID INTEGER PRIMARY KEY AUTOINCREMENT, guid TEXT UNIQUE NOT NULL, created_date INTEGER DEFAULT 0,
    filename TEXT, uti TEXT, mime_type TEXT, transfer_state INTEGER DEFAULT 0, is_outgoing INTEGER DEFAULT 0,
    transfer_name TEXT, total_bytes INTEGER DEFAULT 0);
CREATE TABLE message_attachment_join (message_id INTEGER REFERENCES message (ROWID) ON DELETE CASCADE,
    attachment_id INTEGER REFERENCES attachment (ROWID) ON DELETE CASCADE, UNIQUE(message_id, attachment_id));
"""
NS = 1_000_000_000
T0 = 700_000_000 * NS  # 2023-03-08, nanoseconds after 2001-01-01


def typedstream(text: str) -> bytes:
    """``text`` archived as an NSAttributedString the way Messages stores attributedBody."""
    raw = text.encode("utf-8")
    n = len(raw)
    length = bytes([n]) if n < 0x80 else b"\x81" + n.to_bytes(2, "little")
    return (
        b"\x04\x0bstreamtyped\x81\xe8\x03\x84\x01@\x84\x84\x84\x12NSAttributedString\x00\x84\x84\x08NSObject\x00"
        b"\x85\x92\x84\x84\x84\x08NSString\x01\x94\x84\x01+"
        + length
        + raw
        + b"\x86\x84\x02iI\x01"
        + bytes([min(n, 255)])
        + b"\x92\x84\x84\x84\x0cNSDictionary\x00\x94\x84\x01i\x01\x92\x84\x96\x96\x1d"
        b"__kIMMessagePartAttributeName\x86\x92\x84\x84\x84\x08NSNumber\x00\x84\x84\x07NSValue\x00\x94\x84\x01*"
        b"\x84\x99\x99\x00\x86\x86\x86"
    )


LONG = "sure, and since you asked about the trip: we land at 9, drop bags, then walk the old town " * 2


def build(path, rows):
    db = sqlite3.connect(path)
    db.executescript(SCHEMA)
    db.executemany(
        "INSERT INTO handle (ROWID, id, service) VALUES (?, ?, 'iMessage')",
        [(1, "+15551230001"), (2, "ana@example.com"), (3, "+15551230003")],
    )
    db.executemany(
        "INSERT INTO chat (ROWID, guid, style, chat_identifier, service_name, display_name) VALUES (?,?,?,?,?,?)",
        [
            (1, "iMessage;-;+15551230001", 45, "+15551230001", "iMessage", ""),
            (2, "iMessage;+;chat123", 43, "chat123", "iMessage", "Trip crew"),
        ],
    )
    db.executemany("INSERT INTO chat_handle_join VALUES (?, ?)", [(1, 1), (2, 2), (2, 3)])
    for rowid, chat, handle, from_me, text, body, extra in rows:
        cols = {
            "ROWID": rowid,
            "guid": f"G-{rowid}",
            "text": text,
            "attributedBody": body,
            "handle_id": handle,
            "is_from_me": from_me,
            "date": T0 + rowid * 60 * NS,
            "service": "iMessage",
            **extra,
        }
        db.execute(f"INSERT INTO message ({','.join(cols)}) VALUES ({','.join('?' * len(cols))})", list(cols.values()))
        db.execute("INSERT INTO chat_message_join VALUES (?, ?, ?)", (chat, rowid, cols["date"]))
    db.commit()
    db.close()


ROWS = [
    (1, 1, 1, 0, "are you coming saturday?", None, {}),
    (2, 1, 1, 1, None, typedstream("yes, bringing the good coffee"), {}),  # text NULL: only attributedBody
    (3, 1, 1, 0, None, typedstream("Loved “yes, bringing…”"), {"associated_message_type": 2000}),  # tapback
    (4, 1, 1, 1, "\ufffc", None, {"cache_has_attachments": 1}),  # a photo alone
    (5, 2, 2, 0, "who books the hostel?", None, {}),
    (6, 2, 0, 0, None, None, {"item_type": 2, "group_title": "Trip crew"}),  # renamed the group
    (7, 2, 3, 0, "not me 😅 I did the flights", None, {}),
    (8, 2, 0, 1, None, typedstream(LONG), {}),  # over 127 bytes: the 0x81 length form
]


@pytest.fixture
def chat_db(tmp_path):
    path = tmp_path / "chat.db"
    build(path, ROWS)
    return path


def test_decode_attributed_body_lengths_and_garbage():
    assert imessage.decode_attributed_body(typedstream("hi")) == "hi"
    assert imessage.decode_attributed_body(typedstream(LONG)) == LONG
    assert imessage.decode_attributed_body(typedstream("ünï 🌍")) == "ünï 🌍"
    assert imessage.decode_attributed_body(None) == ""
    assert imessage.decode_attributed_body(b"streamtyped but no string") == ""


def test_reads_every_chat_read_only(chat_db):
    before = hashlib.sha256(chat_db.read_bytes()).hexdigest()
    assert detect(chat_db, chat_db.read_bytes()[:16]) == "imessage"
    fmt, res = read_source(Source(str(chat_db)))
    assert fmt == "imessage" and res.messages == 8
    assert [[(t.speaker, t.text, t.line) for t in c.turns] for c in res.conversations] == [
        [
            ("+15551230001", "are you coming saturday?", 1),
            ("me", "yes, bringing the good coffee", 2),
            ("me", "<Media omitted>", 4),
        ],
        [
            ("ana@example.com", "who books the hostel?", 5),
            ("+15551230003", "not me 😅 I did the flights", 7),
            ("me", LONG, 8),
        ],
    ]
    assert sorted((r.line, r.rule) for r in res.rejects) == [(3, "meta"), (6, "system-line")]
    t = res.conversations[0].turns
    assert t[1].time - t[0].time == 60 and t[0].time == 700_000_060 + imessage.APPLE_EPOCH
    assert hashlib.sha256(chat_db.read_bytes()).hexdigest() == before  # nothing written


@pytest.mark.parametrize("chat,first", [("+15551230001", 1), ("ana@example.com", 5), ("trip crew", 5), ("all", 1)])
def test_chat_by_handle_or_name(chat_db, chat, first):
    fmt, res = read_source(Source(str(chat_db)), CleanConfig(chat=chat))
    assert res.conversations[0].turns[0].line == first
    assert len(res.conversations) == (2 if chat == "all" else 1)


def test_unknown_chat_and_foreign_database(chat_db, tmp_path):
    with pytest.raises(PersonaError, match="no chat with handle or name 'bob'.*ana@example.com"):
        read_source(Source(str(chat_db)), CleanConfig(chat="bob"))
    other = tmp_path / "notes.db"
    sqlite3.connect(other).executescript("CREATE TABLE note (id INTEGER); INSERT INTO note VALUES (1);")
    with pytest.raises(PersonaError, match="cannot tell its format"):
        read_source(Source(str(other)))
    with pytest.raises(PersonaError, match="not a Messages chat.db"):
        read_source(Source(str(other), "imessage"))


def test_clean_trains_on_my_messages(chat_db, tmp_path):
    stats = clean([chat_db], "me", tmp_path / "out", CleanConfig(min_reply_chars=5, split_gap_hours=1))
    assert stats["inputs"][0]["format"] == "imessage"
    assert stats["funnel"]["samples_out"] == 2  # the coffee reply and the trip reply; the photo is meta
    assert stats["dropped"] == {"meta": 2, "system-line": 1}
