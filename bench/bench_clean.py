"""Clean 100,000 chat messages: ``mlx_persona.data.clean`` against a naive per-message loop, same run.

    python bench/bench_clean.py [--messages 100000] [--repeats 2]

Writes a synthetic WhatsApp export (two people and a third now and then; bursts, multi-line
messages, media placeholders, system lines, long silences, NBSPs), then times, end to end
(read, clean, write train/valid/test/rejects/stats):

- ``clean()``: this project's stage, default rules;
- the peer: the straightforward loop one writes first — ``strptime`` per header, each meta
  pattern searched one by one, and every sample re-normalizing its context turns.

Prints both times, samples out, and the ratio. Then it builds a macOS Messages ``chat.db``
of the same size (20 chats, a third of the texts only in ``attributedBody``, tapbacks and
attachments among them) and times the iMessage reader alone and ``clean()`` on it.
With ``--scrub`` it times only the scrubbing cost instead: ``clean()`` with and without
``scrub=True`` on the same export, alternated ``--repeats`` times (best of each), where
``--pii-share`` of the messages carry a phone number, an e-mail, an IBAN or a card number.
The figures in bench/RESULTS.md come from here.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import platform
import random
import re
import sqlite3
import sys
import tempfile
import time
import unicodedata
from datetime import datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "data"))
from persona_bank import EXCHANGES

from mlx_persona.data.clean import CleanConfig, clean
from mlx_persona.data.ingest import Source, read_source
from mlx_persona.data.rules import DEFAULT_META_PATTERNS

WORDS = "prod staging cache queue deploy index ticket logs metrics rollback flag retry".split()


def make_export(path: Path, n: int, seed: int = 0) -> None:
    rng = random.Random(seed)
    t = datetime(2023, 1, 2, 9, 0)
    lines = ["02/01/2023, 08:59 - Messages and calls are end-to-end encrypted. Tap to learn more."]
    k = 0
    while k < n:
        ask, reply = rng.choice(EXCHANGES)
        t += timedelta(minutes=rng.randint(1, 30) if rng.random() > 0.02 else 60 * 14)
        who = "Priya" if rng.random() > 0.1 else "Leo"
        stamp = t.strftime("%d/%m/%Y, %H:%M")
        lines.append(f"{stamp} - {who}: {ask.replace(' ', chr(0xA0), 1)} ({rng.choice(WORDS)} {k})")
        k += 1
        if rng.random() < 0.03:
            lines.append(f"{stamp} - {who}: <Media omitted>")
            k += 1
        body = f"{reply} re {rng.choice(WORDS)}-{k}"
        if rng.random() < 0.1:
            body += "\nalso check the dashboard"
        lines.append(f"{stamp} - Sam: {body}")
        k += 1
        if rng.random() < 0.15:
            lines.append(f"{stamp} - Sam: {rng.choice(WORDS)} first, then {rng.choice(WORDS)} {k}")
            k += 1
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


# ---- the naive peer: same rules, written as a plain loop ------------------------------------
HEADER = r"^(\d{1,2}/\d{1,2}/\d{4}, \d{1,2}:\d{2}) - ([^:]+): (.*)$"
INVISIBLE = "\u200b\u200e\u200f\u2060\ufeff\u00ad"


def naive_normalize(text: str) -> str:
    text = unicodedata.normalize("NFC", text.replace("\r\n", "\n"))
    for ch in INVISIBLE:
        text = text.replace(ch, "")
    text = text.replace("\u00a0", " ")
    text = re.sub(r"(?<=\S)[ \t]{2,}", " ", text)
    text = re.sub(r"[ \t]+\n", "\n", text)
    return re.sub(r"\n{3,}", "\n\n", text).strip()


def naive_clean(path: Path, persona: str, out: Path, cfg: CleanConfig) -> int:
    msgs, rejects = [], []
    for i, line in enumerate(path.read_text(encoding="utf-8").split("\n"), 1):
        m = re.match(HEADER, line)
        if m:
            when = datetime.strptime(m.group(1), "%d/%m/%Y, %H:%M")
            msgs.append({"line": i, "who": m.group(2), "text": m.group(3), "t": when})
        elif msgs and line:
            msgs[-1]["text"] += "\n" + line
        elif line:
            rejects.append({"line": i, "rule": "system-line"})
    turns = []
    for m in msgs:
        if any(re.search(p, naive_normalize(m["text"]), re.IGNORECASE) for p in cfg.meta_patterns):
            rejects.append({"line": m["line"], "rule": "meta"})
            continue
        gap = (m["t"] - turns[-1]["t"]).total_seconds() if turns else None
        if turns and gap > cfg.split_gap_hours * 3600:
            turns.append({"break": True, "t": m["t"]})
        if turns and turns[-1].get("who") == m["who"] and gap <= cfg.merge_gap_min * 60:
            turns[-1]["text"] += "\n" + m["text"]
            turns[-1]["t"] = m["t"]
        else:
            turns.append(dict(m))
    samples, seen, conv = [], set(), 0
    for i, tr in enumerate(turns):
        if tr.get("break"):
            conv += 1
            continue
        if tr["who"] != persona or len(naive_normalize(tr["text"])) < cfg.min_reply_chars:
            continue
        ctx = []
        for prev in reversed(turns[max(0, i - cfg.context_turns) : i]):
            if prev.get("break"):
                break
            role = "assistant" if prev["who"] == persona else "user"
            ctx.insert(0, {"role": role, "content": naive_normalize(prev["text"])})
        while ctx and ctx[0]["role"] != "user":
            ctx.pop(0)
        if not ctx:
            continue
        messages = (
            [{"role": "system", "content": f"You are {persona}."}]
            + ctx
            + [{"role": "assistant", "content": naive_normalize(tr["text"])}]
        )
        line = json.dumps({"messages": messages}, ensure_ascii=False)
        if line not in seen:
            seen.add(line)
            samples.append((conv, line))
    splits = {"train": [], "valid": [], "test": []}
    for conv_id, line in samples:
        h = int(hashlib.sha256(f"{cfg.seed}:{conv_id}".encode()).hexdigest(), 16) % 10
        splits["train" if h < 8 else "valid" if h < 9 else "test"].append(line)
    out.mkdir(parents=True, exist_ok=True)
    for name, rows in splits.items():
        (out / f"{name}.jsonl").write_text("".join(r + "\n" for r in rows), encoding="utf-8")
    (out / "rejects.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rejects))
    return len(samples)


# ---- a Messages chat.db: the tables and columns the reader uses, as macOS names them ----------
CHAT_DB = """
CREATE TABLE handle (ROWID INTEGER PRIMARY KEY AUTOINCREMENT UNIQUE, id TEXT NOT NULL, service TEXT NOT NULL);
CREATE TABLE chat (ROWID INTEGER PRIMARY KEY AUTOINCREMENT, guid TEXT UNIQUE NOT NULL, style INTEGER,
    chat_identifier TEXT, service_name TEXT, display_name TEXT);
CREATE TABLE chat_handle_join (chat_id INTEGER, handle_id INTEGER, UNIQUE(chat_id, handle_id));
CREATE TABLE chat_message_join (chat_id INTEGER, message_id INTEGER, message_date INTEGER DEFAULT 0,
    PRIMARY KEY (chat_id, message_id));
CREATE TABLE message (ROWID INTEGER PRIMARY KEY AUTOINCREMENT, guid TEXT UNIQUE NOT NULL, text TEXT,
    handle_id INTEGER DEFAULT 0, attributedBody BLOB, service TEXT, date INTEGER, is_from_me INTEGER DEFAULT 0,
    cache_has_attachments INTEGER DEFAULT 0, item_type INTEGER DEFAULT 0, associated_message_type INTEGER DEFAULT 0);
CREATE INDEX chat_message_join_idx_message_id_only ON chat_message_join(message_id);
"""


def typedstream(text: str) -> bytes:
    raw = text.encode("utf-8")
    n = len(raw)
    length = bytes([n]) if n < 0x80 else b"\x81" + n.to_bytes(2, "little")
    return (
        b"\x04\x0bstreamtyped\x81\xe8\x03\x84\x01@\x84\x84\x84\x12NSAttributedString\x00\x84\x84\x08NSObject\x00"
        b"\x85\x92\x84\x84\x84\x08NSString\x01\x94\x84\x01+" + length + raw + b"\x86\x84\x02iI\x01\x05\x92"
    )


def make_chat_db(path: Path, n: int, seed: int = 0) -> None:
    rng = random.Random(seed)
    db = sqlite3.connect(path)
    db.executescript(CHAT_DB)
    chats = 20
    db.executemany(
        "INSERT INTO handle VALUES (?, ?, 'iMessage')", [(h, f"+1555010{h:04d}") for h in range(1, chats + 1)]
    )
    db.executemany(
        "INSERT INTO chat VALUES (?, ?, 45, ?, 'iMessage', '')",
        [(c, f"iMessage;-;+1555010{c:04d}", f"+1555010{c:04d}") for c in range(1, chats + 1)],
    )
    db.executemany("INSERT INTO chat_handle_join VALUES (?, ?)", [(c, c) for c in range(1, chats + 1)])
    date = 700_000_000 * 10**9
    rows, joins = [], []
    for k in range(1, n + 1):
        ask, reply = rng.choice(EXCHANGES)
        chat = rng.randint(1, chats)
        mine = rng.random() < 0.5
        text = f"{reply if mine else ask} ({rng.choice(WORDS)} {k})"
        date += rng.randint(1, 600) * 10**9
        tapback = 2000 if rng.random() < 0.03 else 0
        attach = int(rng.random() < 0.03)
        if attach:
            text = "\ufffc"
        body = typedstream(text) if rng.random() < 0.33 else None
        rows.append(
            (
                k,
                f"G{k}",
                None if body else text,
                0 if mine else chat,
                body,
                "iMessage",
                date,
                int(mine),
                attach,
                0,
                tapback,
            )
        )
        joins.append((chat, k, date))
    db.executemany("INSERT INTO message VALUES (?,?,?,?,?,?,?,?,?,?,?)", rows)
    db.executemany("INSERT INTO chat_message_join VALUES (?, ?, ?)", joins)
    db.commit()
    db.close()


def best_of(fn, repeats: int):
    times, result = [], None
    for _ in range(repeats):
        tic = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - tic)
    return min(times), result


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--messages", type=int, default=100_000)
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--skip-whatsapp", action="store_true", help="Only the iMessage chat.db part.")
    ap.add_argument("--scrub", action="store_true", help="Only the scrubbing cost: clean() with and without --scrub.")
    ap.add_argument("--pii-share", type=float, default=0.02, help="With --scrub: share of messages carrying PII.")
    a = ap.parse_args()
    print(f"machine: {platform.system()} {platform.machine()}, python {platform.python_version()}")
    if a.scrub:
        return scrub_part(a)
    if not a.skip_whatsapp:
        whatsapp_part(a)
    with tempfile.TemporaryDirectory() as tmp:
        db = Path(tmp) / "chat.db"
        make_chat_db(db, a.messages)
        read_s, (_, res) = best_of(lambda: read_source(Source(str(db))), a.repeats)
        cfg = CleanConfig(split_gap_hours=1)
        clean_s, stats = best_of(lambda: clean([db], "me", Path(tmp) / f"im{time.time_ns()}", cfg), a.repeats)
    print(f"imessage chat.db: {res.messages:,} messages, {len(res.conversations)} chats, best of {a.repeats}")
    print(f"  read (iMessage reader): {read_s:.2f} s ({res.messages / read_s:,.0f} msg/s)")
    print(f"  clean() end to end:    {clean_s:.2f} s, {stats['funnel']['samples_out']:,} samples")


PII = [
    "call me on +44 20 7946 0958",
    "mail sam.okafor@example.com",
    "IBAN DE89 3704 0044 0532 0130 00",
    "card 4111 1111 1111 1111",
    "(415) 555-2671 after six",
]


def scrub_part(a) -> None:
    """clean() with and without scrub=True, alternated on one export (the machine's load moves)."""
    import os

    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp) / "chat.txt"
        make_export(src, a.messages)
        rng = random.Random(1)
        lines = src.read_text(encoding="utf-8").split("\n")
        for i in range(1, len(lines)):
            if lines[i] and rng.random() < a.pii_share:
                lines[i] += " " + rng.choice(PII)
        src.write_text("\n".join(lines), encoding="utf-8")
        times: dict[bool, list[float]] = {False: [], True: []}
        stats = {}
        for _ in range(a.repeats):
            for scrub in (False, True):
                tic = time.perf_counter()
                stats[scrub] = clean([src], "Sam", Path(tmp) / f"s{time.time_ns()}", CleanConfig(scrub=scrub))
                times[scrub].append(time.perf_counter() - tic)
    off, on = min(times[False]), min(times[True])
    n = stats[True]["funnel"]["messages_in"]
    print(
        f"messages: {n:,}, {a.pii_share:.0%} with PII, best of {a.repeats} each, alternated; load {os.getloadavg()[0]:.1f}"
    )
    print(f"clean():              {off:.2f} s  (all: {', '.join(f'{t:.2f}' for t in times[False])})")
    print(f"clean(scrub=True):    {on:.2f} s  (all: {', '.join(f'{t:.2f}' for t in times[True])})")
    print(f"scrubbing adds {100 * (on - off) / off:.0f}%; replaced {stats[True]['scrub']['replaced']}")


def whatsapp_part(a) -> None:
    cfg = CleanConfig()
    assert tuple(cfg.meta_patterns) == DEFAULT_META_PATTERNS
    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp) / "chat.txt"
        make_export(src, a.messages)
        n = 0
        ours_s, stats = best_of(lambda: clean([src], "Sam", Path(tmp) / f"ours{time.time_ns()}", cfg), a.repeats)
        peer_s, peer_n = best_of(lambda: naive_clean(src, "Sam", Path(tmp) / f"peer{time.time_ns()}", cfg), a.repeats)
        n = stats["funnel"]["messages_in"]
    print(f"messages: {n:,} (export of {a.messages:,} lines of chat), best of {a.repeats}")
    print(
        f"mlx_persona.data.clean: {ours_s:.2f} s ({n / ours_s:,.0f} msg/s), {stats['funnel']['samples_out']:,} samples"
    )
    print(f"naive loop peer:   {peer_s:.2f} s ({n / peer_s:,.0f} msg/s), {peer_n:,} samples")
    print(f"ratio (peer / ours): {peer_s / ours_s:.1f}x")


if __name__ == "__main__":
    main()
