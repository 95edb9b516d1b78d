"""WhatsApp ``.txt`` chat exports, Android and iOS shapes.

    Android:  12/03/2024, 21:15 - Sam: text            (also 9:15 pm, 2-digit years)
    iOS:      [12/03/2024, 21:15:07] Sam: text

Day-first or month-first dates are detected from the whole file (a first field above 12 means
day-first) and can be forced with ``date_order``. Lines without a header continue the previous
message. System lines (encryption notice, joins, subject changes) are rejected here; media and
deleted-message placeholders are kept as text so the cleaning rule ``meta`` reports them.
"""

from __future__ import annotations

import datetime as _dt
import re

from mlx_persona.data.ingest.base import Conversation, ReadResult, Reject, Turn, decode_lines

_DATE = r"(\d{1,4})[/.\-](\d{1,2})[/.\-](\d{1,4})"
_TIME = r"(\d{1,2})[:.](\d{2})(?:[:.](\d{2}))?(?:\s*([AaPp])\.?\s*[Mm]\.?)?"
ANDROID = re.compile(rf"^\u200e?{_DATE},?\s+{_TIME}\s+-\s+(.*)$")
IOS = re.compile(rf"^\u200e?\[{_DATE},?\s+{_TIME}\]\s+(.*)$")
SYSTEM_TEXT = re.compile(
    r"end-to-end encrypted|joined using this group's invite link|created (the )?group|"
    r"^\S.{0,60} (added|removed) |^\S.{0,60} left$|changed the (subject|group description)|"
    r"changed this group's (icon|settings)|security code (with .*)?changed|changed their phone number|"
    r"turned (on|off) disappearing messages|pinned a message|^You're now an admin",
    re.IGNORECASE,
)
EDITED = re.compile(r"\s*\u200e?<This message was edited>\s*$")
MARKS = "\u200e\u200f\u202a\u202b\u202c\u202d\u202e"


def sniff(lines: list) -> bool:
    """True if the first non-blank lines look like a WhatsApp export."""
    seen = [ln for ln in lines[:50] if ln and ln.strip()][:5]
    return bool(seen) and sum(bool(ANDROID.match(ln) or IOS.match(ln)) for ln in seen) >= max(1, len(seen) // 2)


def _date_order(headers: list, forced: str) -> str:
    if forced in ("dmy", "mdy", "ymd"):
        return forced
    if any(len(h[0]) == 4 for h in headers):
        return "ymd"
    if any(int(h[0]) > 12 for h in headers):
        return "dmy"
    if any(int(h[1]) > 12 for h in headers):
        return "mdy"
    # Ambiguous throughout: take the order under which time runs forward more often.
    steps = {}
    for order in ("dmy", "mdy"):
        try:
            t = [_seconds(h, order) for h in headers]
        except ValueError:
            continue
        steps[order] = sum(b < a for a, b in zip(t, t[1:]))
    return min(steps, key=lambda o: (steps[o], o)) if steps else "dmy"


def _seconds(g: tuple, order: str) -> float:
    a, b, c, hh, mm, ss, ampm = g
    if order == "ymd":
        y, m, d = int(a), int(b), int(c)
    elif order == "mdy":
        m, d, y = int(a), int(b), int(c)
    else:
        d, m, y = int(a), int(b), int(c)
    if y < 100:
        y += 2000
    h = int(hh)
    if ampm:
        h = h % 12 + (12 if ampm in "pP" else 0)
    return _dt.date(y, m, d).toordinal() * 86400.0 + h * 3600 + int(mm) * 60 + int(ss or 0)


def read(raw: bytes, source: str, options=None) -> ReadResult:
    lines, bad = decode_lines(raw, source)
    result = ReadResult(rejects=bad)
    parsed = []  # (line number, header groups or None, text)
    for i, ln in enumerate(lines, 1):
        if ln is None:
            parsed.append((i, "bad", None))
            continue
        m = IOS.match(ln) or ANDROID.match(ln)
        parsed.append((i, m.groups() if m else None, ln))
    order = _date_order([p[1][:7] for p in parsed if isinstance(p[1], tuple)], getattr(options, "date_order", "auto"))

    turns: list[Turn] = []
    current = None  # [line, speaker, time, text parts, damaged]

    def flush():
        if current is None:
            return
        line, speaker, t, parts, damaged = current
        result.messages += 1
        text = EDITED.sub("", "\n".join(parts).rstrip())
        if damaged:
            return  # its undecodable line is already in the rejects
        if speaker is None or (text.startswith("\u200e") and SYSTEM_TEXT.search(text)):
            result.rejects.append(Reject(source, line, "system-line", "WhatsApp system message", text))
            return
        turns.append(Turn(speaker, text.lstrip(MARKS), line, t))

    for i, groups, text in parsed:
        if groups == "bad":  # cannot tell a header from a continuation: drop until the next header
            flush()
            current = [i, None, None, [], True]
            continue
        if groups is None:
            if current is not None:
                current[3].append(text)
            elif text.strip():
                result.rejects.append(Reject(source, i, "bad-record", "text before the first message", text))
            continue
        flush()
        rest = groups[7]
        try:
            t = _seconds(groups[:7], order)
        except ValueError:
            result.rejects.append(Reject(source, i, "bad-record", f"impossible date for order {order}", text))
            current = None
            continue
        name, sep, body = rest.partition(": ")
        if not sep or len(name) > 80 or SYSTEM_TEXT.search(name):
            current = [i, None, t, [rest], False]
        else:
            current = [i, name.strip(MARKS + " "), t, [body], False]
    flush()
    if turns:
        result.conversations.append(Conversation(source, turns[0].line, turns))
    return result
