"""Messenger / Instagram JSON reader: order, mojibake repair, attachments, calls, unsent."""

import json

from mlx_persona.data.ingest import Source, messenger, read_source


def meta_escaped(text: str) -> str:
    """How Meta's export writes ``text``: each UTF-8 byte as its own code point."""
    return text.encode("utf-8").decode("latin-1")


def test_fix_mojibake_round_trip_and_leaves_real_text():
    for s in ("café", "Привет 👋", "naïve — ok", "plain"):
        assert messenger.fix_mojibake(meta_escaped(s)) == s
    assert messenger.fix_mojibake("Zoë") == "Zoë"  # already text: Ã« would be the escaped form
    assert messenger.fix_mojibake("∑ 3") == "∑ 3"  # a code point above 255 cannot be escaped bytes


def test_reads_oldest_first_and_repairs_names_and_text(tmp_path):
    doc = {
        "participants": [{"name": meta_escaped("Zoë Ødegaard")}, {"name": "Sam"}],
        "title": meta_escaped("Zoë Ødegaard"),
        "thread_path": "inbox/zoe_123",
        "messages": [
            {"sender_name": "Sam", "timestamp_ms": 1700000300000, "content": meta_escaped("à demain 👋")},
            {"sender_name": "Sam", "timestamp_ms": 1700000250000, "type": "Call", "call_duration": 40},
            {"sender_name": meta_escaped("Zoë Ødegaard"), "timestamp_ms": 1700000200000, "photos": [{"uri": "p.jpg"}]},
            {"sender_name": meta_escaped("Zoë Ødegaard"), "timestamp_ms": 1700000150000, "is_unsent": True},
            {"sender_name": meta_escaped("Zoë Ødegaard"), "timestamp_ms": 1700000100000, "content": "on se voit?"},
        ],
    }
    path = tmp_path / "message_1.json"
    path.write_text(json.dumps(doc, indent=2), encoding="utf-8")  # \\u00c3\\u00ab escapes, as Meta writes
    fmt, res = read_source(Source(str(path)))
    assert fmt == "messenger" and res.messages == 5
    turns = res.conversations[0].turns
    assert [(t.speaker, t.text) for t in turns] == [
        ("Zoë Ødegaard", "on se voit?"),
        ("Zoë Ødegaard", "<Media omitted>"),
        ("Sam", "à demain 👋"),
    ]
    assert turns[2].time - turns[0].time == 200.0
    lines = path.read_text().split("\n")
    assert "1700000100000" in lines[turns[0].line - 1]  # the message's own line
    assert sorted(r.rule for r in res.rejects) == ["meta", "system-line"]
