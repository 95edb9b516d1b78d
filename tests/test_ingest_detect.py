"""Format detection by content with a confidence, and what a clean that yields nothing says."""

import json

import pytest
from click.testing import CliRunner

from mlx_persona.cli import cli
from mlx_persona.core.errors import PersonaError
from mlx_persona.data.clean import CleanConfig, clean, closest_speakers
from mlx_persona.data.ingest import FORMATS, detect, scores


def write(tmp_path, name, text):
    p = tmp_path / name
    p.write_text(text, encoding="utf-8")
    return p


def test_no_single_key_decides(tmp_path):
    """A ``messages`` list alone is not ChatML: it takes roles. Messenger and Telegram say so by
    their senders and types, and each wins clearly over the others."""
    messenger = {"participants": [{"name": "A"}], "messages": [{"sender_name": "A", "timestamp_ms": 1, "content": "x"}]}
    telegram = {"messages": [{"type": "message", "date_unixtime": "1", "from": "A", "text": "x"}]}
    chatml = {"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}]}
    for name, doc, fmt in (
        ("m.json", messenger, "messenger"),
        ("t.json", telegram, "telegram"),
        ("c.jsonl", chatml, "chatml"),
    ):
        p = write(tmp_path, name, json.dumps(doc, indent=1 if fmt != "chatml" else None))
        got = scores(p, p.read_bytes())
        assert detect(p, p.read_bytes()) == fmt
        assert got[fmt][0] >= 0.75 and sorted(s for s, _ in got.values())[-2] < 0.5, got


def test_ambiguous_file_asks_for_format_and_says_why(tmp_path):
    """``[2024-03-01 09:15:02] Ana: hi`` is signal-export's line and an ISO-region iPhone's
    WhatsApp line alike: detection names both, with its evidence, and asks."""
    p = write(tmp_path, "chat.txt", "[2024-03-01 09:15:02] Ana: hi\n[2024-03-01 09:16:40] Sam: yes\n")
    with pytest.raises(PersonaError) as e:
        detect(p, p.read_bytes())
    msg = str(e.value)
    assert "could be whatsapp" in msg and "signal" in msg and "--format whatsapp or --format signal" in msg
    assert "headers" in msg  # the evidence


def test_unknown_file_names_the_closest_guess(tmp_path):
    p = write(tmp_path, "notes.txt", "shopping: eggs, milk\n2024 plans\n")
    with pytest.raises(PersonaError, match="cannot tell its format") as e:
        detect(p, p.read_bytes())
    assert all(f in str(e.value) for f in FORMATS)


CHAT = (
    "12/03/2024, 21:14 - Priya: build?\n12/03/2024, 21:15 - José 🎸: green\n"
    "12/03/2024, 21:16 - Priya: ok\n12/03/2024, 21:17 - José 🎸: yes\n"
)


def test_closest_speakers():
    counts = {"José 🎸": 2, "Priya": 1, "+1 555 0100": 4}
    assert closest_speakers(["jose"], counts) == ["José 🎸"]
    assert closest_speakers(["Pria"], counts) == ["Priya"]
    assert closest_speakers(["Zed"], counts) == []


def test_absent_persona_names_the_closest_speaker(tmp_path):
    p = write(tmp_path, "c.txt", CHAT)
    with pytest.raises(PersonaError, match=r"closest: 'José 🎸' \(give --persona 'José 🎸'\)"):
        clean([p], "Jose", tmp_path / "out", CleanConfig())
    assert not (tmp_path / "out").exists()


def test_no_samples_exits_non_zero_with_the_funnel_and_fix(tmp_path):
    p = write(tmp_path, "c.txt", CHAT)
    out = tmp_path / "out"
    res = CliRunner().invoke(cli, ["clean", str(p), "--persona", "José 🎸", "--out", str(out)])
    assert res.exit_code != 0 and "wrote 0 samples" not in res.output
    assert "no samples: 4 messages read" in res.output and "min-length 2" in res.output
    assert "lower --min-reply-chars (now 10)" in res.output
    assert not out.exists()  # nothing half-written
    ok = CliRunner().invoke(cli, ["clean", str(p), "--persona", "José 🎸", "--out", str(out), "--min-reply-chars", "2"])
    assert ok.exit_code == 0 and "wrote 2 samples" in ok.output


def test_no_samples_when_the_persona_only_talks_to_themselves(tmp_path):
    p = write(
        tmp_path, "c.txt", "12/03/2024, 21:15 - Sam: a note to self here\n12/03/2024, 21:16 - Leo: <Media omitted>\n"
    )
    with pytest.raises(PersonaError, match="no-context 1.*include the other side of the chat"):
        clean([p], "Sam", tmp_path / "out", CleanConfig())
