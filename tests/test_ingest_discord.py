"""Discord reader (DiscordChatExporter JSON): names, replies kept, events dropped, media."""

import json

import pytest

from mlx_persona.data.ingest import Source, read_source


def message(mid, kind, ts, content, name, nickname=None, **extra):
    author = {"id": f"9{mid}", "name": name, "discriminator": "0000", "nickname": nickname, "isBot": False}
    return {
        "id": str(mid),
        "type": kind,
        "timestamp": ts,
        "timestampEdited": None,
        "isPinned": False,
        "content": content,
        "author": author,
        "attachments": [],
        "embeds": [],
        "stickers": [],
        "reactions": [],
        "mentions": [],
        **extra,
    }


def test_discord_chat_exporter_json(tmp_path):
    doc = {
        "guild": {"id": "1", "name": "Direct Messages", "iconUrl": ""},
        "channel": {"id": "2", "type": "DirectTextChat", "name": "ana", "topic": None},
        "dateRange": {"after": None, "before": None},
        "exportedAt": "2024-03-02T10:00:00+00:00",
        "messages": [
            message(11, "RecipientAdd", "2024-03-01T09:00:00+00:00", "", "ana_k"),
            message(12, "Default", "2024-03-01T09:15:00.123+00:00", "deploy done?", "ana_k", "Ana"),
            message(
                13, "Reply", "2024-03-01T09:16:00+01:00", "yes, green", "sam_o", None, reference={"messageId": "12"}
            ),
            message(
                14,
                "Default",
                "2024-03-01T09:17:00+00:00",
                "",
                "sam_o",
                attachments=[{"id": "5", "url": "x.png", "fileName": "x.png"}],
            ),
            message(15, "ChannelPinnedMessage", "2024-03-01T09:18:00+00:00", "", "ana_k", "Ana"),
        ],
        "messageCount": 5,
    }
    path = tmp_path / "dm.json"
    path.write_text(json.dumps(doc, indent=2), encoding="utf-8")
    fmt, res = read_source(Source(str(path)))
    assert fmt == "discord" and res.messages == 5
    turns = res.conversations[0].turns
    assert [(t.speaker, t.text) for t in turns] == [
        ("Ana", "deploy done?"),
        ("sam_o", "yes, green"),
        ("sam_o", "<Media omitted>"),
    ]
    assert turns[1].time - turns[0].time == pytest.approx(60 - 3600 - 0.123)  # +01:00 offset honoured
    assert '"12"' in path.read_text().split("\n")[turns[0].line - 1]
    assert sorted(r.rule for r in res.rejects) == ["system-line", "system-line"]
