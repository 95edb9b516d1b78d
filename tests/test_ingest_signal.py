"""Signal reader (signal-export chat.md): markup that is not the person's words is taken out."""

from mlx_persona.data.ingest import Source, detect, read_source, signal

EXPORT = """[2024-03-01 09:15:02] Ana: are you up?
[2024-03-01 09:16:40] Sam: > are you up?

yes. coffee first
(- Ana: 👍 -)
[2024-03-01 09:17:00] Sam: ![IMG_0001.jpg](./media/IMG_0001.jpg)\x20\x20
[2024-03-01 09:18:30] Ana: look
[beach.jpg](./media/beach.jpg)\x20\x20
[2024-03-01 09:19:00] Ana: (This message was deleted)
[2024-03-01 09:20:00] Sam:\x20
(( 🐧 ))
[2024-03-01 09:21:00] Sam: two lines
of text
"""


def test_signal_export_markdown(tmp_path):
    path = tmp_path / "chat.md"
    path.write_text(EXPORT, encoding="utf-8")
    assert detect(path, path.read_bytes()) == "signal"  # its markdown settles it against WhatsApp
    fmt, res = read_source(Source(str(path)))
    assert res.messages == 7
    got = [(t.speaker, t.text, t.line) for t in res.conversations[0].turns]
    assert got == [
        ("Ana", "are you up?", 1),
        ("Sam", "yes. coffee first", 2),  # the quote and the reactions line are not his words
        ("Sam", "<Media omitted>", 6),
        ("Ana", "look", 7),  # the attachment link goes, the caption stays
        ("Sam", "<Media omitted>", 10),  # a sticker
        ("Sam", "two lines\nof text", 12),
    ]
    assert [(r.line, r.rule) for r in res.rejects] == [(9, "meta")]
    t = res.conversations[0].turns
    assert t[1].time - t[0].time == 98


def test_bare_bracketed_iso_lines_are_not_signal():
    """``[2019-04-16 02:09] Name:`` (no seconds, no comma) is what WhatsApp writes, not signal-export."""
    assert signal.HEADER.match("[2019-04-16 02:09] Mary: hi") is None
    assert signal.HEADER.match("[2019-04-16 02:09:10] Mary: hi") is not None
    assert signal.HEADER.match("[2019-04-16, 02:09] Mary: hi") is not None
