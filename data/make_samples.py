"""Write the sample persona data in every raw format ``mlx-persona clean`` reads.

    python data/make_samples.py        # rewrites data/sample/* (deterministic)

The second persona, Nina (Sam's opposite style), comes from make_samples_nina.py, which
``main`` runs too.

The files carry, on purpose, what real exports carry: system lines, media placeholders,
deleted messages, bursts of messages, long silences, invisible characters, short acks, a
repeated exchange, PII, tool-call system prompts hundreds of characters long, and
"[Request interrupted" meta lines, so that every reader and every cleaning rule has work.
"""

from __future__ import annotations

import csv
import io
import json
import random
import sys
from datetime import datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
import make_samples_nina
from persona_bank import EXCHANGES, SHORT_ACKS

OUT = Path(__file__).parent / "sample"
SAM = "Sam Okafor"
TOOL_HISTORY = (
    "You are a coding agent working in the repository /srv/billing. Tools: read_file(path), "
    "run(cmd), edit(path, old, new), search(query). Previous tool calls in this session: "
    "run('pytest -q tests/test_invoice.py') -> 3 failed, 41 passed; read_file('billing/invoice.py') "
    "-> 212 lines; search('rounding') -> billing/money.py:88, billing/invoice.py:131; "
    "edit('billing/money.py', ...) -> ok; run('pytest -q') -> 44 passed. Answer the user tersely."
)


def whatsapp_android(rng: random.Random) -> str:
    """A 1:1 chat with Priya: day-first dates, 24-hour clock, sessions days apart."""
    t = datetime(2024, 3, 12, 9, 0)
    lines = [
        "12/03/2024, 08:58 - Messages and calls are end-to-end encrypted. No one outside of this chat, "
        "not even WhatsApp, can read or listen to them. Tap to learn more."
    ]
    pairs = EXCHANGES[:]
    rng.shuffle(pairs)
    pairs.insert(20, pairs[3])  # the same exchange exported twice
    stamp = lambda: t.strftime("%d/%m/%Y, %H:%M")  # noqa: E731
    for i, (ask, reply) in enumerate(pairs):
        t += timedelta(minutes=rng.randint(1, 20))
        if i % 9 == 0:
            t += timedelta(days=1, hours=rng.randint(0, 5))  # a new day: a long silence
        if i % 11 == 5:
            lines.append(f"{stamp()} - Priya: <Media omitted>")
        ask_text = ask.replace(" ", "\u00a0", 1) if i % 13 == 0 else ask  # an NBSP from a phone keyboard
        lines.append(f"{stamp()} - Priya: {ask_text}")
        t += timedelta(minutes=rng.randint(0, 4))
        if i % 7 == 3 and ". " in reply:  # a burst: the reply in two messages a minute apart
            head, _, tail = reply.partition(". ")
            lines.append(f"{stamp()} - {SAM}: {head}")
            t += timedelta(minutes=1)
            lines.append(f"{stamp()} - {SAM}: {tail}")
        elif i % 10 == 6:  # a multi-line message
            lines.append(f"{stamp()} - {SAM}: {reply}\nsecond thing: write it down in the ticket")
        elif i % 12 == 8:
            lines.append(f"{stamp()} - {SAM}: {reply}\u200b <This message was edited>")
        else:
            lines.append(f"{stamp()} - {SAM}: {reply}")
        if i % 8 == 2:
            t += timedelta(minutes=2)
            lines.append(f"{stamp()} - Priya: thanks!")
            lines.append(f"{stamp()} - {SAM}: {rng.choice(SHORT_ACKS)}")
        if i % 17 == 4:
            lines.append(f"{stamp()} - {SAM}: This message was deleted")
    t += timedelta(days=1)
    lines.append(f"{stamp()} - Priya: what's the on-call number again?")
    lines.append(
        f"{stamp()} - {SAM}: +44 20 7946 0958 or mail oncall@example.com, runbook at https://wiki.example.com/oncall"
    )
    return "\n".join(lines) + "\n"


def whatsapp_ios_group(rng: random.Random) -> str:
    """A group chat (Leo, Priya, Sam) in the iOS shape: month-first dates, 12-hour clock."""
    t = datetime(2024, 4, 2, 20, 0)

    def stamp() -> str:
        return f"[{t.month}/{t.day}/{t.strftime('%y')}, {t.hour % 12 or 12}:{t:%M:%S} {'PM' if t.hour >= 12 else 'AM'}]"

    lines = [
        f"{stamp()} infra: \u200eMessages and calls are end-to-end encrypted. No one outside of this chat, "
        "not even WhatsApp, can read or listen to them.",
        f"{stamp()} infra: \u200eLeo added Priya",
    ]
    for i, (ask, reply) in enumerate(rng.sample(EXCHANGES, 30)):
        t += timedelta(minutes=rng.randint(2, 30))
        if i % 6 == 0:
            t += timedelta(hours=9)
        who = "Leo" if i % 3 else "Priya"
        lines.append(f"{stamp()} {who}: {ask}")
        if i % 5 == 1:
            lines.append(f"{stamp()} {'Priya' if who == 'Leo' else 'Leo'}: +1, same question")
        if i % 7 == 2:
            lines.append(f"{stamp()} {SAM}: \u200eimage omitted")
        t += timedelta(minutes=1)
        lines.append(f"{stamp()} {SAM}: {reply}")
    return "\n".join(lines) + "\n"


def script_csv(rng: random.Random) -> str:
    """A dialogue script: episode and scene columns bound conversations."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["episode", "scene", "speaker", "text"])
    picks = rng.sample(EXCHANGES, 60)
    for k in range(0, len(picks), 3):
        ep, scene = 1 + k // 30, 1 + (k // 3) % 10
        for ask, reply in picks[k : k + 3]:
            w.writerow([ep, scene, "Leo", ask])
            w.writerow([ep, scene, "SAM", reply])  # another casing of the name: matched anyway
        if scene % 4 == 0:
            w.writerow([ep, scene, "Leo", "ok, thanks. one more thing,\nis it fine if I ask tomorrow?"])
            w.writerow([ep, scene, "Sam", "yes. bring what you tried"])
    return buf.getvalue()


def agent_jsonl(rng: random.Random) -> str:
    """Chat logs in OpenAI messages form, logged as growing prefixes, with tool-call system prompts."""
    rows = []
    picks = rng.sample(EXCHANGES, 50)
    for c in range(0, 50, 5):
        msgs = [{"role": "system", "content": TOOL_HISTORY}]
        for j, (ask, reply) in enumerate(picks[c : c + 5]):
            msgs.append({"role": "user", "content": ask})
            if j == 2:
                msgs.append(
                    {
                        "role": "assistant",
                        "content": None,
                        "tool_calls": [{"type": "function", "function": {"name": "run", "arguments": "{}"}}],
                    }
                )
                msgs.append({"role": "tool", "content": "44 passed"})
            msgs.append({"role": "assistant", "content": reply})
            if j == 3:
                msgs.append({"role": "user", "content": "[Request interrupted by user]"})
                msgs.append({"role": "assistant", "content": "[No response requested]"})
            if j % 2 == 1:  # the logger stores each prefix of the conversation as its own record
                rows.append(json.dumps({"messages": list(msgs)}, ensure_ascii=False))
        rows.append(json.dumps({"messages": msgs}, ensure_ascii=False))
    rows.append(
        json.dumps(
            {
                "messages": [
                    {"role": "system", "content": "Be brief."},
                    {"role": "user", "content": "status of the billing bug?"},
                    {"role": "assistant", "content": "fixed in main, deploying after lunch"},
                ]
            }
        )
    )
    return "\n".join(rows) + "\n"


def telegram_json(rng: random.Random) -> str:
    t = datetime(2024, 5, 6, 10, 0)
    msgs = [{"id": 1, "type": "service", "date": t.isoformat(), "actor": "Leo", "action": "create_group"}]
    for i, (ask, reply) in enumerate(rng.sample(EXCHANGES, 15)):
        for who, text in (("Leo", ask), (SAM, reply)):
            t += timedelta(minutes=3)
            body = (
                text if i % 4 else [text.split(" ")[0] + " ", {"type": "bold", "text": " ".join(text.split(" ")[1:])}]
            )
            msgs.append(
                {
                    "id": len(msgs) + 1,
                    "type": "message",
                    "date": t.isoformat(),
                    "date_unixtime": str(int((t - datetime(1970, 1, 1)).total_seconds())),
                    "from": who,
                    "text": body,
                }
            )
        if i == 5:
            msgs.append(
                {
                    "id": len(msgs) + 1,
                    "type": "message",
                    "date": t.isoformat(),
                    "from": "Leo",
                    "photo": "photos/photo_1.jpg",
                    "text": "",
                }
            )
    return (
        json.dumps({"name": "Leo", "type": "personal_chat", "id": 4242, "messages": msgs}, indent=1, ensure_ascii=False)
        + "\n"
    )


def small_role_files(rng: random.Random) -> dict[str, str]:
    share, alpaca, comp = [], [], []
    for i, (ask, reply) in enumerate(rng.sample(EXCHANGES, 30)):
        if i % 3 == 0:
            share.append(
                json.dumps({"conversations": [{"from": "human", "value": ask}, {"from": "gpt", "value": reply}]})
            )
        elif i % 3 == 1:
            alpaca.append({"instruction": ask, "input": "", "output": reply})
        else:
            comp.append(json.dumps({"prompt": ask, "completion": reply}))
    return {
        "sharegpt.jsonl": "\n".join(share) + "\n",
        "alpaca.json": json.dumps(alpaca, indent=2) + "\n",
        "completion.jsonl": "\n".join(comp) + "\n",
    }


def files() -> dict[str, str]:
    """Every sample file's name and text, Sam's and Nina's (tests compare them with data/sample)."""
    return {
        "whatsapp_android.txt": whatsapp_android(random.Random(1)),
        "whatsapp_ios_group.txt": whatsapp_ios_group(random.Random(2)),
        "script.csv": script_csv(random.Random(3)),
        "agent_logs.jsonl": agent_jsonl(random.Random(4)),
        "telegram_result.json": telegram_json(random.Random(5)),
        **small_role_files(random.Random(6)),
        **make_samples_nina.files(),
    }


def write(samples: dict[str, str]) -> None:
    """Write ``{file name: text}`` into data/sample/."""
    OUT.mkdir(parents=True, exist_ok=True)
    for name, text in samples.items():
        (OUT / name).write_text(text, encoding="utf-8")
        print(f"wrote data/sample/{name} ({text.count(chr(10))} lines)")


def main() -> None:
    write(files())


if __name__ == "__main__":
    main()
