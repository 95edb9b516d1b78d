"""Signal chats as signal-export writes them (``chat.md``), one file per chat.

    [2020-01-17 21:49:12] Jane Doe: Hello John!
    [2019-12-24, 12:23] Jane Doe: Hello John!      (the same line without seconds, with a comma)

Lines without a header continue the previous message. signal-export adds markup to a body that
is not the person's words, and it is taken out: quoted lines (``> ...``, the message replied
to), the reactions line ``(- Name: emoji -)``, attachment links ``[name](./media/...)`` and a
sticker ``(( label ))``. A message left with nothing but attachments becomes ``<Media omitted>``
for the ``meta`` rule; ``(This message was deleted)`` is meta.

A year-first bracketed line also fits an iOS WhatsApp export from some regions; detection weighs
both and asks for ``--format`` when it cannot tell (signal-export's markdown settles it).
"""

from __future__ import annotations

import datetime as _dt
import re

from mlx_persona.data.ingest.base import Conversation, ReadResult, Reject, Turn, decode_lines

# signal-export's [yyyy-mm-dd hh:mm:ss], or [yyyy-mm-dd, hh:mm]; never the bare [yyyy-mm-dd hh:mm]
# that WhatsApp exports also write.
HEADER = re.compile(r"^\[(\d{4})-(\d{2})-(\d{2})(?:, (\d{2}):(\d{2})(?::(\d{2}))?| (\d{2}):(\d{2}):(\d{2}))\] (.*)$")
QUOTE = re.compile(r"^> ?")
REACTIONS = re.compile(r"^\(- .* -\)$")
STICKER = re.compile(r"^\(\( .* \)\)$")
ATTACHMENT = re.compile(r"!?\[[^\]]*\]\(\./[^)]*\)\s*")
DELETED = "(This message was deleted)"
_EPOCH = _dt.datetime(1970, 1, 1)  # times are local wall-clock; only their differences are used
MARKDOWN = re.compile(r"\]\(\./|^\(- .* -\)$|^\(\( .* \)\)$")  # only signal-export writes these


def confidence(probe) -> tuple[float, str]:
    seen = [ln for ln in probe.lines[:400] if ln.strip()][:60]
    if not seen:
        return 0.0, "empty"
    heads = sum(bool(HEADER.match(ln)) for ln in seen)
    if not heads:
        return 0.0, "no [yyyy-mm-dd hh:mm] headers"
    marked = any(MARKDOWN.search(ln) for ln in seen)
    score = 0.8 * heads / len(seen) + 0.1 * bool(HEADER.match(seen[0])) + 0.25 * marked
    why = f"{heads} of the first {len(seen)} lines are [yyyy-mm-dd hh:mm] headers"
    return min(score, 1.0), why + (", with signal-export markdown" if marked else "")


def _body(lines: list[str]) -> tuple[str, bool]:
    """The person's words in a signal-export body, and whether it had attachments."""
    kept, media = [], False
    for ln in lines:
        if QUOTE.match(ln) or REACTIONS.match(ln.strip()):
            continue
        if STICKER.match(ln.strip()):
            media = True
            continue
        stripped = ATTACHMENT.sub("", ln)
        media = media or stripped != ln
        kept.append(stripped)
    return "\n".join(kept).strip(), media


def read(raw: bytes, source: str, options=None) -> ReadResult:
    lines, bad = decode_lines(raw, source)
    result = ReadResult(rejects=bad)
    turns: list[Turn] = []
    current = None  # [line, speaker, time, body lines, damaged]

    def flush():
        if current is None:
            return
        line, speaker, t, parts, damaged = current
        result.messages += 1
        if damaged:
            return
        if speaker is None:
            result.rejects.append(Reject(source, line, "system-line", "Signal line without a sender", parts[0]))
            return
        text, media = _body(parts)
        if text == DELETED:
            result.rejects.append(Reject(source, line, "meta", "deleted message", text))
            return
        turns.append(Turn(speaker, text or ("<Media omitted>" if media else ""), line, t))

    for i, ln in enumerate(lines, 1):
        if ln is None:
            flush()
            current = [i, None, None, [], True]
            continue
        m = HEADER.match(ln)
        if m is None:
            if current is not None:
                current[3].append(ln)
            elif ln.strip():
                result.rejects.append(Reject(source, i, "bad-record", "text before the first message", ln))
            continue
        flush()
        y, mo, d, h1, m1, s1, h2, m2, s2, rest = m.groups()
        hh, mm, ss = (h1, m1, s1) if h1 is not None else (h2, m2, s2)
        try:
            t = (_dt.datetime(int(y), int(mo), int(d), int(hh), int(mm), int(ss or 0)) - _EPOCH).total_seconds()
        except ValueError:
            result.rejects.append(Reject(source, i, "bad-record", "impossible date", ln))
            current = None
            continue
        name, sep, body = rest.partition(": ")
        current = [i, name.strip() if sep else None, t, [body if sep else rest], False]
    flush()
    if turns:
        result.conversations.append(Conversation(source, turns[0].line, turns))
    return result
