"""``clean --scrub`` and ``--block-words``: personal data out, blocked messages dropped, counts right."""

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from mlx_persona.cli import cli
from mlx_persona.core.errors import PersonaError
from mlx_persona.data.clean import CleanConfig, clean
from mlx_persona.data.scrub import SCRUB_REPORT, Blocklist, Scrubber

# (speaker, raw message, what Sam's message must become); Priya's questions stay as written.
CHAT = [
    ("Priya", "what's your number again?", None),
    ("Sam", "uk: +44 20 7946 0958, us: (415) 555-2671", "uk: <PHONE>, us: <PHONE>"),
    ("Priya", "and the offices?", None),
    (
        "Sam",
        "berlin 030 901820, paris 01 42 68 53 00, pune +91 98765 43210",
        "berlin <PHONE>, paris <PHONE>, pune <PHONE>",
    ),
    ("Priya", "mail?", None),
    ("Sam", "sam.okafor@example.com or ops-team@corp.example.org", "<EMAIL> or <EMAIL>"),
    ("Priya", "bank details for the refund?", None),
    ("Sam", "IBAN DE89 3704 0044 0532 0130 00, ref 2024-03-15", "IBAN <IBAN>, ref 2024-03-15"),
    ("Priya", "card on file?", None),
    (
        "Sam",
        "4111 1111 1111 1111 works, 4111 1111 1111 1112 is a typo",
        "<CARD> works, 4111 1111 1111 1112 is a typo",
    ),
    ("Priya", "which box?", None),
    ("Sam", "ssh into 192.168.1.20 at 10:30, v1.2.3 is there", "ssh into <IP> at 10:30, v1.2.3 is there"),
]
SECRETS = [
    "7946 0958",
    "555-2671",
    "901820",
    "42 68 53 00",
    "98765 43210",
    "sam.okafor",
    "ops-team",
    "DE89",
    "4111 1111 1111 1111",
    "192.168.1.20",
]


def write_chat(path: Path, chat=CHAT) -> Path:
    """A WhatsApp export, one message every 10 minutes (no merging), line i+2 for message i."""
    lines = ["12/03/2024, 08:58 - Messages and calls are end-to-end encrypted."]
    for i, (who, text, _) in enumerate(chat):
        lines.append(f"13/03/2024, {9 + i // 6:02d}:{(i % 6) * 10:02d} - {who}: {text}")
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def outputs(folder: Path) -> list[dict]:
    return [json.loads(ln) for name in ("train", "valid", "test") for ln in _lines(folder / f"{name}.jsonl")]


def _lines(p: Path):
    return p.read_text(encoding="utf-8").splitlines() if p.exists() else []


def cfg(**kw):
    return CleanConfig(min_reply_chars=1, splits=(1.0, 0.0, 0.0), **kw)


def test_scrubber_replaces_each_valid_one_and_nothing_else():
    s = Scrubber()
    for _, raw, want in CHAT:
        new, found = s.scrub(raw)
        assert new == (want or raw)
        # the normal form of what was found says which number it was, whatever the format
        for f in found:
            assert f.value and f.category in ("PHONE", "EMAIL", "IBAN", "CARD", "IP")
    phones = {f.value for f in s.find(CHAT[1][1]) + s.find(CHAT[3][1])}
    assert phones == {"+442079460958", "+14155552671", "+4930901820", "+33142685300", "+919876543210"}
    assert s.find("call +44 (0)20 7946-0958")[0].value == "+442079460958"


@pytest.mark.parametrize(
    "text",
    [
        "order 1234567 shipped, build 20240115, at 10:30 on 2024-01-15",
        "v1.2.3.4 is out; pi is 3.14159265",
        "it costs 1,250,000 dollars, 12 people",
        "meet at 3 pm in Room 12",
        "see https://example.com/docs?page=2",
    ],
)
def test_ordinary_numbers_and_urls_stay(text):
    assert Scrubber().scrub(text) == (text, [])


def test_optional_categories():
    assert Scrubber(urls=True).scrub("see https://example.com/docs?page=2.")[0] == "see <URL>."
    assert Scrubber().scrub("I'm at 221B Baker Street, come by")[0] == "I'm at <ADDRESS>, come by"
    assert Scrubber().scrub("Hauptstraße 5 in Berlin")[0] == "<ADDRESS> in Berlin"
    assert Scrubber(addresses=False).scrub("Hauptstraße 5")[0] == "Hauptstraße 5"
    with pytest.raises(PersonaError, match="unknown region"):
        Scrubber(regions=("XX",))


def test_clean_scrub_counts_report_and_no_secret_left(tmp_path):
    src = write_chat(tmp_path / "chat.txt")
    stats = clean([src], "Sam", tmp_path / "out", cfg(scrub=True))
    rows = outputs(tmp_path / "out")
    replies = {r["messages"][-1]["content"] for r in rows}
    assert replies == {want for who, _, want in CHAT if who == "Sam"}
    prompts = {m["content"] for r in rows for m in r["messages"] if m["role"] == "user"}
    assert prompts == {raw for who, raw, _ in CHAT if who == "Priya"}  # untouched
    assert stats["scrub"]["replaced"] == {"EMAIL": 2, "IBAN": 1, "CARD": 1, "IP": 1, "PHONE": 5, "ADDRESS": 0}
    assert stats["scrub"]["messages_changed"] == 6 and stats["scrub"]["enabled"] is True
    on_disk = json.loads((tmp_path / "out" / "stats.json").read_text())
    assert on_disk["scrub"] == stats["scrub"]

    report = [json.loads(ln) for ln in _lines(tmp_path / "out" / SCRUB_REPORT)]
    got = sorted((r["line"], r["category"]) for r in report)
    want = sorted(
        (i + 2, cat)
        for i, (who, _, new) in enumerate(CHAT)
        if new
        for cat in ("PHONE", "EMAIL", "IBAN", "CARD", "IP")
        for _ in range(new.count(f"<{cat}>"))
    )
    assert got == want and {r["source"] for r in report} == {str(src)}
    assert all(r["role"] == "assistant" for r in report)
    everything = "".join(p.read_text(encoding="utf-8") for p in (tmp_path / "out").iterdir())
    for secret in SECRETS:
        assert secret not in everything


def test_rejected_lines_are_scrubbed_and_blocked_words_left_out(tmp_path):
    """rejects.jsonl keeps dropped lines' text for the user to check; it must not keep what the
    scrub or the blocklist takes out of the kept data (here: meta lines WhatsApp writes)."""
    src = write_chat(tmp_path / "chat.txt", [("Priya", "hi", None), ("Sam", "hey", None)])
    with open(src, "a", encoding="utf-8") as f:
        f.write("13/03/2024, 10:00 - Priya added +44 20 7946 0958\n")
        f.write('13/03/2024, 10:01 - Priya changed the subject to "Falcon launch"\n')
    words = tmp_path / "block.txt"
    words.write_text("falcon\n", encoding="utf-8")
    for scrub, out in ((True, "out"), (False, "plain")):
        clean([src], "Sam", tmp_path / out, cfg(scrub=scrub, block_words=str(words)))
    rejects = {r["line"]: r["text"] for r in map(json.loads, _lines(tmp_path / "out" / "rejects.jsonl"))}
    plain = {r["line"]: r["text"] for r in map(json.loads, _lines(tmp_path / "plain" / "rejects.jsonl"))}
    assert "7946 0958" in plain[4] and "7946 0958" not in rejects[4] and "<PHONE>" in rejects[4]
    assert rejects[5] == plain[5] == ""  # a blocked word: no text at all


def test_without_scrub_the_data_is_as_written(tmp_path):
    stats = clean([write_chat(tmp_path / "chat.txt")], "Sam", tmp_path / "out", cfg())
    replies = {r["messages"][-1]["content"] for r in outputs(tmp_path / "out")}
    assert replies == {raw for who, raw, _ in CHAT if who == "Sam"}
    assert stats["scrub"] == {"enabled": False, "replaced": {}, "messages_changed": 0, "blocked_messages": 0}
    assert not (tmp_path / "out" / SCRUB_REPORT).exists()


def test_blocklist_drops_whole_messages(tmp_path):
    chat = [
        ("Priya", "how is Project Falcon going?", None),
        ("Sam", "falcon ships friday, don't tell anyone", None),
        ("Priya", "and the falconry club?", None),
        ("Sam", "falconry is on saturday", None),
        ("Priya", "lunch?", None),
        ("Sam", "sure, the usual place", None),
    ]
    words = tmp_path / "block.txt"
    words.write_text("# secret code names\nFALCON\nusual place\n\n", encoding="utf-8")
    stats = clean([write_chat(tmp_path / "chat.txt", chat)], "Sam", tmp_path / "out", cfg(block_words=str(words)))
    texts = [m["content"] for r in outputs(tmp_path / "out") for m in r["messages"]]
    assert "falconry is on saturday" in texts and "and the falconry club?" in texts  # whole words only
    assert not any("alcon " in t or "usual place" in t for t in texts)
    rejects = [json.loads(ln) for ln in _lines(tmp_path / "out" / "rejects.jsonl")]
    blocked = [r for r in rejects if r["rule"] == "blocked"]
    assert sorted(r["line"] for r in blocked) == [2, 3, 7] and all(r["text"] == "" for r in blocked)
    assert stats["dropped"]["blocked"] == 3 and stats["scrub"]["blocked_messages"] == 3


def test_blocklist_matches_phrases_any_case():
    b = Blocklist(["Project Falcon", " ", "a+b"])
    assert b.matches("the PROJECT\n falcon")  # any case, any spacing between the words
    assert b.matches("re: project falcon!") and b.matches("is a+b ok") and not b.matches("projects")


def test_cli_scrub_flags_and_warning(tmp_path):
    src = write_chat(tmp_path / "chat.txt")
    common = ["clean", str(src), "--persona", "Sam", "--min-reply-chars", "1", "--split", "1,0,0", "--quiet"]
    res = CliRunner().invoke(cli, [*common, "--out", str(tmp_path / "a"), "--scrub", "--scrub-regions", "GB,DE"])
    assert res.exit_code == 0, res.output
    stats = json.loads((tmp_path / "a" / "stats.json").read_text())
    # +CC numbers are found whatever the regions; national (415) and 01 ... numbers need US / FR
    assert stats["scrub"]["replaced"]["PHONE"] == 3 and stats["config"]["scrub_regions"] == ["GB", "DE"]
    res = CliRunner().invoke(cli, [*common, "--out", str(tmp_path / "b"), "--no-scrub"])
    assert res.exit_code == 0 and "--no-scrub" in res.output and "warning" in res.output
    res = CliRunner().invoke(cli, [*common, "--out", str(tmp_path / "c"), "--block-words", str(tmp_path / "nope")])
    assert res.exit_code == 1 and "block_words file not found" in res.output and not (tmp_path / "c").exists()


def test_recipes_scrub_by_default(tmp_path):
    from mlx_persona.runner.recipe import load_recipe

    recipe = Path(__file__).resolve().parent.parent / "recipes" / "quickstart.yaml"
    assert load_recipe(recipe).clean.scrub is True
    assert load_recipe(recipe, overrides=("clean.scrub=false",)).clean.scrub is False
