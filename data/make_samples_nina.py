"""Write the second sample persona, Nina Brandt, in two raw formats (deterministic).

    python data/make_samples_nina.py   # rewrites data/sample/nina_* (make_samples.py calls it too)

Nina is Sam's opposite (long, warm, capitalised, "!" and emoji, follow-up questions), so the
pair of personas tells "learned the person" from "learned to be short". Her files use the
formats and locales Sam's main file does not:

- ``nina_whatsapp_de.txt``: a 1:1 WhatsApp chat with Tom exported from an Android phone set to
  German: ``14.05.24, 18:42 - Tom: text`` (day.month.two-digit year, 24-hour clock) and the
  German encryption notice as its first, speakerless line.
- ``nina_telegram.json``: a Telegram Desktop export of the chat with her sister Clara: message
  text as a string or as a list of formatted parts, a sticker, a call, edited messages.

Like Sam's files they carry what real exports carry: bursts a minute apart (merged by the clean
stage), multi-line messages, a no-break space from a phone keyboard, emoji with zero-width joiners and
variation selectors (kept: they are the voice), short acks under the reply minimum, and
silences of days that split the chat into conversations.
"""

from __future__ import annotations

import json
import random
import re
import sys
from datetime import datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from persona_bank_nina import CLARA_THREADS, SHORT_ACKS, TOM_THREADS

NINA = "Nina Brandt"
# a sentence ends at . ! ? or at the emoji after them; the next one starts with a capital
SENTENCE = re.compile(r"(?<=[.!?\u2600-\u27bf\ufe0f\U0001f000-\U0001faff])\s+(?=[A-Z])")


def split_once(reply: str, min_chars: int = 40) -> tuple[str, str]:
    """The reply cut after its first sentence that ends past ``min_chars`` ("" if none does)."""
    for m in SENTENCE.finditer(reply):
        if m.start() >= min_chars and m.end() < len(reply):
            return reply[: m.start()], reply[m.end() :]
    return reply, ""


def whatsapp_de(rng: random.Random) -> str:
    """The chat with Tom, WhatsApp Android export in a German locale."""
    t = datetime(2024, 5, 14, 18, 30)
    stamp = lambda: t.strftime("%d.%m.%y, %H:%M")  # noqa: E731
    lines = [
        f"{stamp()} - Nachrichten und Anrufe sind Ende-zu-Ende-verschlüsselt. Niemand außerhalb dieses "
        "Chats, nicht einmal WhatsApp, kann sie lesen oder anhören. Tippe, um mehr zu erfahren."
    ]
    n = 0
    for k, thread in enumerate(TOM_THREADS):
        if k and rng.random() < 0.3:  # the next topic the same evening: one conversation
            t += timedelta(hours=rng.randint(1, 3), minutes=rng.randint(0, 59))
        else:  # days later: a new conversation
            t = (t + timedelta(days=rng.randint(1, 4))).replace(hour=rng.randint(8, 20), minute=rng.randint(0, 59))
        for ask, reply in thread:
            n += 1
            t += timedelta(minutes=rng.randint(1, 25))
            ask_text = ask.replace(" ", "\u00a0", 1) if n % 13 == 0 else ask  # an NBSP from a phone keyboard
            lines.append(f"{stamp()} - Tom: {ask_text}")
            t += timedelta(minutes=rng.randint(0, 6))
            head, tail = split_once(reply)
            if n % 7 == 3 and tail:  # a burst: the reply in two messages a minute apart
                lines.append(f"{stamp()} - {NINA}: {head}")
                t += timedelta(minutes=1)
                lines.append(f"{stamp()} - {NINA}: {tail}")
            elif n % 9 == 5 and tail:  # one message over two lines
                lines.append(f"{stamp()} - {NINA}: {head}\n{tail}")
            else:
                lines.append(f"{stamp()} - {NINA}: {reply}")
            if n % 11 == 8:
                t += timedelta(minutes=2)
                lines.append(f"{stamp()} - Tom: thanks!!")
                lines.append(f"{stamp()} - {NINA}: {rng.choice(SHORT_ACKS)}")
    return "\n".join(lines) + "\n"


def telegram_clara(rng: random.Random) -> str:
    """The chat with Clara, a Telegram Desktop ``result.json`` of one personal chat."""
    t = datetime(2024, 6, 2, 19, 0)
    msgs: list[dict] = []
    ids = {"Clara": "user5550101", NINA: "user5550202"}

    def add(**fields) -> dict:
        m = {
            "id": 300 + len(msgs),
            "type": "message",
            "date": t.isoformat(),
            "date_unixtime": str(int((t - datetime(1970, 1, 1)).total_seconds())),
            **fields,
        }
        msgs.append(m)
        return m

    def say(who: str, text, **extra) -> None:
        parts = [text] if isinstance(text, str) else text
        entities = [{"type": "plain", "text": p} if isinstance(p, str) else p for p in parts if p]
        add(**{"from": who, "from_id": ids[who], "text": text, "text_entities": entities, **extra})

    n = 0
    for k, thread in enumerate(CLARA_THREADS):
        t = (t + timedelta(days=rng.randint(1, 5))).replace(hour=rng.randint(9, 21), minute=rng.randint(0, 59))
        if k == 6:
            add(
                **{
                    "type": "service",
                    "actor": "Clara",
                    "actor_id": ids["Clara"],
                    "action": "phone_call",
                    "duration_seconds": 1260,
                    "text": "",
                    "text_entities": [],
                }
            )
            t += timedelta(minutes=30)
        for ask, reply in thread:
            n += 1
            if n % 5 == 2:  # a sticker first: media with no caption, dropped as meta by the clean stage
                say(
                    "Clara",
                    "",
                    media_type="sticker",
                    sticker_emoji="😂",
                    file="stickers/sticker.webp",
                    width=512,
                    height=512,
                )
            t += timedelta(minutes=rng.randint(1, 15))
            say("Clara", ask)
            t += timedelta(minutes=rng.randint(1, 8))
            head, tail = split_once(reply)
            if n % 6 == 4 and tail:  # a burst: two messages 40 seconds apart
                say(NINA, head)
                t += timedelta(seconds=40)
                say(NINA, tail)
            elif n % 4 == 1 and tail:  # formatted text: a list of parts, the second one in italics
                say(NINA, [head + " ", {"type": "italic", "text": tail}])
            else:
                extra = {"edited": (t + timedelta(minutes=2)).isoformat()} if n % 7 == 0 else {}
                say(NINA, reply, **extra)
    return (
        json.dumps(
            {"name": "Clara", "type": "personal_chat", "id": 5550101, "messages": msgs}, indent=1, ensure_ascii=False
        )
        + "\n"
    )


def files() -> dict[str, str]:
    return {
        "nina_whatsapp_de.txt": whatsapp_de(random.Random(11)),
        "nina_telegram.json": telegram_clara(random.Random(12)),
    }


def main() -> None:
    from make_samples import write  # imported here: make_samples imports this module

    write(files())


if __name__ == "__main__":
    main()
