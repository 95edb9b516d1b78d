"""Every peer chat export our readers claim, cleaned and checked against what that peer's own
tests expect (``../shared/fixtures/peers/INDEX.md`` lists each file, its source and licence).

The files are read in place from ``../shared`` (never copied into this repository); the tests
skip when it is absent. Deliberate differences from a peer are stated where they are checked:

- continuation lines of a multi-line message are joined with a newline, as typed (chat-miner
  joins them with a space; we compare after doing the same);
- messages keep the export's order (chat-analytics re-sorts a late line by time);
- Telegram calls are system lines and dropped (chat-analytics keeps a call, tg-parser keeps
  every service entry);
- WhatsApp placeholders (media, deleted messages, locations, missed calls; in any language) are
  not the person's words: we count what is left and compare it with the peer's *text* count.
"""

import datetime as dt
import json
from collections import Counter
from pathlib import Path

import pytest

from mlx_persona.data.clean import CleanConfig, clean
from mlx_persona.data.ingest import Source, detect, read_source, scores
from mlx_persona.data.rules import DEFAULT_META_PATTERNS, clean_turns, meta_matcher

PEERS = Path(__file__).resolve().parents[2] / "shared" / "fixtures" / "peers"
pytestmark = pytest.mark.skipif(not PEERS.is_dir(), reason=f"peer fixtures not found at {PEERS} (../shared)")
META = meta_matcher(DEFAULT_META_PATTERNS)


def read(name, fmt=None, **options):
    opts = CleanConfig(**options)
    return read_source(Source(str(PEERS / name), fmt), opts)


def turns(res):
    return [t for c in res.conversations for t in c.turns]


def kept_after_meta(res):
    """The turns the cleaning rule ``meta`` leaves (what the person actually wrote)."""
    rejects = []
    out = []
    for c in res.conversations:
        copy = type(c)(c.source, c.line, list(c.turns), c.system, c.named)
        clean_turns(copy, META, True, rejects)
        out.extend(copy.turns)
    return out


def wa_time(t: float) -> dt.datetime:
    """A WhatsApp turn's time (seconds since day 1 of year 1) as a datetime."""
    return dt.datetime.fromordinal(int(t // 86400)) + dt.timedelta(seconds=t % 86400)


# ---- WhatsApp ------------------------------------------------------------------------------
CHAT_MINER = [
    "chat-miner/test_ddmmyy_24hrs.txt",
    "chat-miner/test_mmddyy_24hrs.txt",
    "chat-miner/test_mmddyyyy_12hrs.txt",
    "chat-miner/test_yyyymmdd_24hrs.txt",
    "chat-miner/test_[mmddyy]_24hrs.txt",
]


@pytest.mark.parametrize("name", CHAT_MINER)
def test_chat_miner_layouts_match_its_target(name):
    """Day-first, month-first (told apart only by days above 12), year-first, bracketed, and
    12 h with 'a. m.': each gives chat-miner's 6 messages with their exact names and times."""
    assert detect(PEERS / name, (PEERS / name).read_bytes()) == "whatsapp"
    fmt, res = read(name)
    target = json.loads((PEERS / "chat-miner/target.json").read_text(encoding="utf-8"))
    got = [
        {"timestamp": wa_time(t.time).isoformat(), "author": t.speaker, "message": t.text.replace("\n", " ")}
        for t in turns(res)
    ]
    assert got == target[::-1]  # target.json is newest first
    assert res.messages == 9  # 6 messages + "John Doe:." + 2 system lines, all seen
    assert sorted(r.rule for r in res.rejects) == ["system-line"] * 3


# file: (entries, {speaker: turns before the meta rule}, text messages left after it)
WHATSAPP = {
    "whatstk/pokemon.txt": (
        20,
        {
            "Ash Ketchum": 4,
            "Misty": 4,
            "Brock": 3,
            "Prof. Oak": 2,
            "Raichu": 2,
            "Jessie & James": 1,
            "Meowth": 1,
            "Wobbuffet": 1,
        },
        18,
    ),
    "whatstk/lorem.txt": (500, {"+1 123 456 789": 145, "John": 124, "Giuseppe": 118, "Mary": 113}, 500),
    "whatstk/lorem-merge-part1.txt": (300, {"Mary": 80, "+1 123 456 789": 78, "Giuseppe": 75, "John": 67}, 300),
    "whatstk/lorem-2000.txt": (2000, {"Giuseppe": 516, "+1 123 456 789": 507, "Mary": 496, "John": 481}, 2000),
    "chat-analytics/2A_5M.txt": (5, {"A": 3, "B": 2}, 4),
    "chat-analytics/4A_11M.txt": (14, {"Alice": 3, "Bob": 2, "Eve": 2, "Mallory": 2, "Trent": 2}, 11),
    # whats_json, iOS: 23 = 4 text + 2 location + 17 system in the peer's count, in every language.
    "whats_json/english_ios.txt": (23, {"Dmitry S": 16, "Elon Musk": 1}, 4),
    "whats_json/english_ios_media.txt": (25, {"Dmitry S": 16, "Elon Musk": 1}, 4),
    "whats_json/deutch_ios.txt": (23, {"Dmitry S": 4}, 4),
    "whats_json/french_ios.txt": (23, {"Dmitry S": 4}, 4),
    "whats_json/japanese_ios.txt": (23, {"Dmitry S": 4}, 4),
    "whats_json/indonesian_ios.txt": (23, {"Dmitry S": 4}, 4),
    "whats_json/vietnamese_ios.txt": (23, {"Dmitry S": 4}, 4),
    "whats_json/arabic2_ios.txt": (23, {"Dmitry Starkov": 4}, 4),
    "whats_json/Buddhist iOS.txt": (28, {"Dmitry S": 19, "Elon Musk": 1}, 4),
    # Android: 60 = 15 text + 2 file + 3 location + 40 system in the peer's count.
    "whats_json/english_android.txt": (60, {"Dmitry S": 48, "Elon": 8}, 15),
    "whats_json/russian_android.txt": (60, {"Dmitry S": 15, "Elon": 2}, 15),
    "whats_json/czech_android.txt": (60, {"Dmitry S": 15, "Elon": 2}, 15),
    "whats_json/deutch_android_media.txt": (41, {"Dmitry S": 14, "Elon": 1}, 14),  # peer skips it; captions kept
    "whats_json/WhatsApp Chat with Group Chat XXX Android.txt": (20, {"Dmitry S": 4}, 3),
    "whats-reader/WhatsApp Chat with Alice.txt": (45, {"Alice": 22, "Bob": 21}, 39),
    "whats-reader/_chat.txt": (45, {"Alice": 22, "Bob": 21}, 39),
    "whats-reader/ios-format-test.txt": (5, {"Amazon EG": 4}, 3),
    "whats-reader/european-ampm-format-test.txt": (4, {"Loris": 2, "Luke": 2}, 4),
    "whats-reader/dot-time-klo-format-test.txt": (3, {"Mika": 2, "Laura": 1}, 3),
    "whats-reader/asian-ampm-format-test.txt": (5, {"Alice": 3, "Bob": 2}, 4),
}


@pytest.mark.parametrize("name", sorted(WHATSAPP))
def test_whatsapp_peer_files_counts_and_exact_names(name):
    entries, by_speaker, text = WHATSAPP[name]
    raw = (PEERS / name).read_bytes()
    assert detect(PEERS / name, raw) == "whatsapp"  # no --format
    fmt, res = read(name)
    assert res.messages == entries
    assert Counter(t.speaker for t in turns(res)) == by_speaker  # names exact: emoji, RTL, "+1 ..."
    assert len(kept_after_meta(res)) == text
    assert not [r for r in res.rejects if r.rule in ("bad-record", "undecodable")]


def test_whatsapp_dates_per_layout():
    def first(name, speaker=None):
        return next(t for t in turns(read(name)[1]) if speaker in (None, t.speaker))

    assert wa_time(first("whats_json/Buddhist iOS.txt").time) == dt.datetime(2022, 3, 27, 21, 41, 35)  # 2565 BE
    assert wa_time(first("whats_json/vietnamese_ios.txt").time) == dt.datetime(2022, 3, 27, 21, 41, 35)  # time first
    assert wa_time(first("whats_json/arabic2_ios.txt").time) == dt.datetime(2022, 3, 27, 21, 41, 35)  # RLM, "،"
    assert wa_time(first("whats_json/indonesian_ios.txt").time) == dt.datetime(2022, 3, 27, 21, 41, 35)  # 21.41.35
    ash = first("whatstk/pokemon.txt")
    assert (ash.speaker, ash.text, wa_time(ash.time)) == ("Ash Ketchum", "Hey guys!", dt.datetime(2016, 8, 6, 13, 23))
    lorem = turns(read("whatstk/lorem.txt")[1])
    assert (wa_time(lorem[0].time), wa_time(lorem[-1].time)) == (
        dt.datetime(2020, 1, 15, 2, 22, 56),
        dt.datetime(2020, 5, 11, 22, 32, 48),
    )
    assert wa_time(first("whatstk/lorem-2000.txt").time) == dt.datetime(2019, 4, 16, 2, 9)
    assert first("whatstk/lorem-2000.txt").speaker == "+1 123 456 789"
    assert first("whatstk/lorem-merge-part1.txt").speaker == "John"
    eu = [wa_time(t.time).time() for t in turns(read("whats-reader/european-ampm-format-test.txt")[1])]
    assert [(x.hour, x.minute) for x in eu] == [(13, 55), (13, 56), (13, 57), (1, 58)]  # p.m., p. m., PM, am
    klo = [wa_time(t.time) for t in turns(read("whats-reader/dot-time-klo-format-test.txt")[1])]
    assert klo[0] == dt.datetime(2018, 6, 13, 21, 25, 15) == klo[1] and klo[2] == dt.datetime(2018, 6, 13, 21, 25)
    amazon = turns(read("whats-reader/ios-format-test.txt")[1])
    assert wa_time(amazon[1].time) == dt.datetime(2025, 11, 13, 9, 9, 43)  # U+202F before AM
    assert amazon[1].text.count("\n") >= 5  # the Arabic body's continuation lines stay with it
    # 4A_11M: every date is 12/9/20, so the day order is a tie; time forward, then day-first.
    alice = first("chat-analytics/4A_11M.txt", "Alice")
    assert (alice.text, wa_time(alice.time)) == ("boiii", dt.datetime(2020, 9, 12, 23, 55))


def test_whatsapp_date_order_is_per_file_and_overridable():
    """Month-first in one file, day-first in the next, in the same run; --date-order forces one."""
    us = turns(read("chat-miner/test_mmddyy_24hrs.txt")[1])
    eu = turns(read("chat-miner/test_ddmmyy_24hrs.txt")[1])
    assert [t.time for t in us] == [t.time for t in eu]
    forced = turns(read("chat-analytics/2A_5M.txt", date_order="mdy")[1])
    auto = turns(read("chat-analytics/2A_5M.txt")[1])
    assert wa_time(forced[0].time).date() == wa_time(auto[0].time).date() == dt.date(2021, 1, 1)
    wrong = read("chat-miner/test_ddmmyy_24hrs.txt", date_order="mdy")[1]  # forced: 20/01/19 is no date
    assert {2, 3, 9, 10} <= {r.line for r in wrong.rejects if r.rule == "bad-record"}
    assert [t.line for t in turns(wrong)] == [1, 5, 8]  # 01/01/19, 10/06/20, 10/12/21 still read


def _samples(tmp_path, name, **cfg):
    out = tmp_path / name.replace("/", "_").replace(" ", "_")
    clean([PEERS / name], "Alice", out, CleanConfig(**cfg))
    return sorted(
        line
        for split in ("train", "valid", "test")
        if (out / f"{split}.jsonl").exists()
        for line in (out / f"{split}.jsonl").read_text(encoding="utf-8").splitlines()
    )


def test_ios_and_android_exports_of_one_chat_give_identical_samples(tmp_path):
    """whats-reader's two exports of one dialogue. The hand-made iOS file has 7 lines on 03/12
    marked PM where the Android file has 09:xx (INDEX.md): a 12-hour silence in the middle of
    that morning, so at the default 6 h split the iOS chat is one conversation more. Read with a
    split gap above 12 h, or with those 7 lines' PM put right, the samples are identical."""
    android, ios = "whats-reader/WhatsApp Chat with Alice.txt", "whats-reader/_chat.txt"
    a = _samples(tmp_path, android, split_gap_hours=13)
    assert a and a == _samples(tmp_path, ios, split_gap_hours=13)

    fixed = (PEERS / ios).read_bytes()
    for hms in (b"9:16:07", b"9:18:29", b"9:20:51", b"9:21:13", b"9:25:35", b"9:28:57", b"9:30:19"):
        fixed = fixed.replace(b"[03/12/2024, " + hms + b" PM]", b"[03/12/2024, " + hms + b" AM]")
    (tmp_path / "ios").mkdir()
    (tmp_path / "ios" / "_chat.txt").write_bytes(fixed)
    out = tmp_path / "fixed"
    clean([tmp_path / "ios" / "_chat.txt"], "Alice", out, CleanConfig())
    b = sorted(line for f in out.glob("*.jsonl") if f.name != "rejects.jsonl" for line in f.read_text().splitlines())
    assert b == _samples(tmp_path, android)
    assert _samples(tmp_path, ios) != b  # the unfixed file really differs at the default gap


# ---- Telegram, Messenger, Signal -----------------------------------------------------------
def test_telegram_single_and_full_account_exports():
    for name, opts in (
        ("chat-miner/test_single_export.json", {}),
        ("chat-miner/test_batch_export.json", {"chat": "Chatname"}),
    ):
        fmt, res = read(name, **opts)
        assert fmt == "telegram"
        got = [
            (dt.datetime.fromtimestamp(t.time, dt.timezone.utc).replace(tzinfo=None), t.speaker, t.text)
            for t in turns(res)
        ]
        assert got == [
            (dt.datetime(2018, 12, 5, 10, 39, 10), "Author 1", "Minimal Message"),
            (dt.datetime(2018, 12, 5, 10, 49, 24), "Author 2", "Link: https://telegram.org/"),
        ]


def test_telegram_desktop_exports_drop_service_and_calls():
    fmt, dm = read("chat-analytics/DM_2A_7M.json")
    assert fmt == "telegram" and dm.messages == 8
    assert Counter(t.speaker for t in turns(dm)) == {"Alice": 4, "Bob": 2}  # 6 messages; the call is dropped
    assert sorted(r.rule for r in dm.rejects) == ["system-line", "system-line"]
    assert [t.text for t in turns(dm)][-2:] == ["<Media omitted>", "<Media omitted>"]  # the two photos
    fmt, pc = read("tg-parser/personal_chat.json")
    assert Counter(t.speaker for t in turns(pc)) == {"Alice": 2, "Bob": 2}  # tg-parser: 5 with the call
    assert "Check this" in turns(pc)[2].text and "important" in turns(pc)[2].text
    fmt, sg = read("tg-parser/supergroup_with_topics.json")
    assert Counter(t.speaker for t in turns(sg)) == {"User1": 2, "User2": 1, "User3": 1}  # Admin only made topics
    assert len(sg.rejects) == 3


def test_messenger_sample_in_time_order():
    fmt, res = read("chat-analytics/2A_7M.json")  # starts with a BOM
    assert fmt == "messenger"
    got = [(t.speaker, t.text) for t in turns(res)]
    assert got[:4] == [(got[i][0], "<Media omitted>") for i in range(4)]  # image, sticker, audio, file
    assert got[4:] == [("Bob", "you what"), ("Bob", "Whats up!"), ("Alice", "Hello")]
    assert Counter(s for s, _ in got) == {"Bob": 5, "Alice": 2}


def test_signal_text_export_with_format():
    """chat-miner's Signal file is byte for byte also a year-first bracketed WhatsApp export;
    detection takes it as WhatsApp (which reads it the same), --format signal as Signal."""
    name = "chat-miner/test_export.txt"
    assert scores(PEERS / name, (PEERS / name).read_bytes())["signal"][0] >= 0.5
    fmt, res = read(name, "signal")
    got = [
        (dt.datetime(1970, 1, 1) + dt.timedelta(seconds=t.time), t.speaker, t.text.replace("\n", " "))
        for t in turns(res)
    ]
    assert got == [
        (dt.datetime(2019, 12, 24, 12, 23), "Jane Doe", "Hello John!"),
        (dt.datetime(2020, 1, 17, 21, 49), "John Doe", "Hello Jane!"),
    ]
    wa = read(name)
    assert wa[0] == "whatsapp" and [t.text for t in turns(wa[1])] == [t.text for t in turns(res)]


def test_every_export_in_the_folder_is_claimed_or_refused_with_a_reason():
    """Nothing is read as the wrong format: each file is claimed by the reader of its kind, and
    the one non-export (chat-miner's expected-output list) is refused with --format asked for."""
    kinds = {".txt": {"whatsapp"}, ".json": {"telegram", "messenger"}}
    for path in sorted(PEERS.glob("*/*")):
        if path.name == "LICENSE" or path.suffix not in kinds:
            continue
        if path.name == "target.json":
            with pytest.raises(Exception, match="cannot tell its format"):
                detect(path, path.read_bytes())
            continue
        assert detect(path, path.read_bytes()) in kinds[path.suffix], path
