"""WhatsApp ``.txt`` chat exports: Android and iOS shapes, in every locale's date and time layout.

    Android:  12/03/2024, 21:15 - Sam: text      13.6.2018 klo 21.25.15 - Sam: text
              2024/03/12, 9:15 pm - Sam: text    13.06.18 21.25.15: Sam: text
    iOS:      [12/03/2024, 21:15:07] Sam: text   [3/18/2565 BE, 14:56:01] Sam: text
              [14:56:01, 3/18/22] Sam: text      [\u200f18\u200f/3\u200f/2022\u060c 14:56:01] Sam: text

A header is a date (``/``, ``.`` or ``-`` between 1-4 digit fields; a Buddhist-era year with
``BE``), a time (``:`` or ``.``; seconds optional; 12 h with ``AM``/``a. m.``/``p.m.``, U+202F or
no space) and a separator, with direction marks (U+200E/U+200F) allowed anywhere around it.
Day-first or month-first is inferred per file from the data (a first field above 12 means
day-first; if no field says, the order under which time runs forward more often wins) and can be
forced with ``date_order``; a 4-digit first field is always year-first. Lines without a header
continue the previous message. Messages keep the file's order, as the person saw them.

What WhatsApp itself wrote is not the person's words:
- system lines (no ``Name:``, or an encryption / group notice) are rejected as ``system-line``;
- English media and deleted-message placeholders are kept as text so the cleaning rule ``meta``
  reports them (and ``--meta-pattern`` can add to it); in other languages the reader reports
  them as ``meta`` itself: an iOS body that starts with U+200E, an Android ``<...>`` body, a
  ``(file attached)`` line in any language, a deleted-message notice from a small table, a shared
  location. A placeholder followed by a caption keeps the caption.
"""

from __future__ import annotations

import datetime as _dt
import re

from mlx_persona.data.ingest.base import Conversation, ReadResult, Reject, Turn, decode_lines

_MARKS = "\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069\ufeff"  # direction marks and BOM


def _headers(m: str) -> tuple[re.Pattern, re.Pattern, re.Pattern]:
    """The three header shapes, with ``m`` (a pattern for direction marks, or "") around each field.

    Groups: a, b, c (date fields), era, hh, mm, ss, ampm, rest (time-first: the time's come first).
    """
    date = rf"{m}(\d{{1,4}}){m}[/.\-]\s?{m}(\d{{1,2}}){m}[/.\-]\s?{m}(\d{{1,4}})\.?(\s?BE)?{m}"
    time = rf"{m}(\d{{1,2}})[:.](\d{{2}})(?:[:.](\d{{2}}))?(?:[\s\u202f\u00a0]*([AaPp])\.?\s?[Mm]\.?)?{m}"
    sep = r"(?:[,\u060c]\s*|\s+)(?:klo\s+)?"
    return (
        re.compile(rf"^{m}\[{date}{sep}{time}\]\s*(.*)$"),
        re.compile(rf"^{m}{date}{sep}{time}\s*(?:-|:)\s+(.*)$"),
        re.compile(rf"^{m}\[{time}[,\u060c]\s*{date}\]\s*(.*)$"),
    )


# Most lines carry no direction mark: they get the plain patterns, which are faster.
IOS, ANDROID, IOS_TIME_FIRST = _headers(f"[{_MARKS}]*")
_PLAIN = _headers("")
_HAS_MARK = re.compile(f"[{_MARKS}]")
_STARTS = "0123456789[" + _MARKS

SYSTEM_TEXT = re.compile(
    r"end-to-end encrypted|joined using this group's invite link|created (the )?group|"
    r"^\S.{0,60} (added|removed) |^\S.{0,60} left$|changed the (subject|group description)|"
    r"changed this group's (icon|settings)|security code (with .*)?changed|changed their phone number|"
    r"turned (on|off) disappearing messages|pinned a message|^You're now an admin",
    re.IGNORECASE,
)
# Notices WhatsApp attributes to a name without any mark (Android group exports, business chats).
NOTICE = re.compile(
    r"^Messages and calls are end-to-end encrypted\. No one outside of this chat|"
    r"^Messages (you send )?to this (group|chat) are now secured with end-to-end encryption|"
    r"^This business uses a secure service from Meta|^Tap to learn more\.$"
)
# English placeholders stay text for the cleaning rule ``meta`` (the user can see and extend it).
ENGLISH_PLACEHOLDER = re.compile(
    r"^(<Media omitted>|<attached: [^>]*>|(image|video|audio|sticker|GIF|document|Contact card) omitted|"
    r"This message was deleted\.?|You deleted this message\.?|<This message was deleted>|null|"
    r"\S+\.\w{2,4} \(file attached\))$",
    re.IGNORECASE,
)
ANGLE_PLACEHOLDER = re.compile(r"^<[^\W\d_][^<>\n]{2,40}>$")  # <Без медиафайлов>, <Média vynechány>
FILE_ATTACHED = re.compile(r"^\S+\.\w{2,5} \((file attached|[^()]{3,40})\)$")
# "Some file.txt \u200edocument omitted", "Resume.pdf \u2022 \u200f2 pages \u200f...": a file name, then a mark.
IOS_DOCUMENT = re.compile(r"^\S[^\n]{0,120}\.\w{2,5}\b[^\n]* [\u200e\u200f][^\n]{2,80}$")
LOCATION = re.compile(
    r"^[^\n]{1,80}(\n[^\n]{1,80}){0,2}(:\s|\n)https://(maps\.google\.com/\?q=|foursquare\.com/v/)\S+$"
)
MISSED_CALL = re.compile(
    r"^(Пропущенный (аудио|видео)звонок|Gemiste (spraakoproep|video-oproep)|Zmeškaný (hlasový |video)?hovor|"
    r"Verpasster (Sprach|Video)anruf|Appel (vocal|vidéo) manqué|Llamada (de voz|de video) perdida|"
    r"Chamada de (voz|vídeo) perdida|Chiamata (vocale|video) persa)$"
)
DELETED = re.compile(
    r"^(Данное сообщение удалено|Вы удалили данное сообщение|Tato zpráva byla odstraněna\.|"
    r"Tuto zprávu jste odstranil/a\.|Dit bericht is verwijderd|U hebt dit bericht verwijderd|"
    r"Diese Nachricht wurde gelöscht\.?|Du hast diese Nachricht gelöscht\.?|Ce message a été supprimé\.?|"
    r"Vous avez supprimé ce message\.?|Se eliminó este mensaje\.?|Eliminaste este mensaje\.?|"
    r"Mensagem apagada|Você apagou esta mensagem|Questo messaggio è stato eliminato|"
    r"Hai eliminato questo messaggio)$"
)
FOREIGN_MARKUP = re.compile(r"\]\(\./|^\(- .* -\)$|^\(\( .* \)\)$")  # signal-export's attachments, reactions
_FILE_PREFIXES = ("\u200e", "IMG-", "VID-", "PTT-", "AUD-", "STK-", "DOC-")
_NOTICE_FIRST = {alt.lstrip("^(")[:1] for alt in (DELETED.pattern + "|" + MISSED_CALL.pattern).split("|")}
EDITED = re.compile(r"\s*\u200e?<This message was edited>\s*$")
MARKS = _MARKS
BUDDHIST_ERA = 543  # years between the Thai Buddhist calendar and the common era


def header(line: str):
    """``(a, b, c, era, hh, mm, ss, ampm, rest)`` if ``line`` starts a message, else None."""
    if not line or line[0] not in _STARTS:
        return None
    ios, android, time_first = (IOS, ANDROID, IOS_TIME_FIRST) if _HAS_MARK.search(line, 0, 48) else _PLAIN
    m = ios.match(line) or android.match(line)
    if m:
        return m.groups()
    m = time_first.match(line)
    if m:
        hh, mm, ss, ampm, a, b, c, era, rest = m.groups()
        return a, b, c, era, hh, mm, ss, ampm, rest
    return None


def confidence(probe) -> tuple[float, str]:
    """How sure we are that the file (a :class:`~mlx_persona.data.ingest.base.Probe`) is a
    WhatsApp export, and why: the share of its first lines that are message headers."""
    return line_confidence(probe.lines)


def line_confidence(lines: list) -> tuple[float, str]:
    """WhatsApp confidence of a file's first lines."""
    seen = [ln for ln in lines[:200] if ln and ln.strip()][:40]
    if not seen:
        return 0.0, "empty"
    heads = [h for h in map(header, seen) if h]
    if not heads:
        return 0.0, "no line starts with a WhatsApp date/time header"
    named = sum(": " in h[8] or h[8].endswith(":") for h in heads)
    share = len(heads) / len(seen)
    first = header(seen[0]) is not None
    score = min(1.0, 0.5 * share + 0.3 * (named / len(heads)) + 0.2 * first)
    why = f"{len(heads)} of the first {len(seen)} lines are WhatsApp message headers"
    if any(FOREIGN_MARKUP.search(ln) for ln in seen):
        score, why = score - 0.3, why + ", but it has markdown links or reaction lines WhatsApp never writes"
    return max(score, 0.0), why


def sniff(lines: list) -> bool:
    """True if the first non-blank lines look like a WhatsApp export."""
    return line_confidence(lines)[0] >= 0.5


def _order_of(headers: list, forced: str) -> str:
    """The file's day/month order for headers whose first field is not a 4-digit year."""
    if forced in ("dmy", "mdy", "ymd"):
        return forced
    short = [h for h in headers if len(h[0]) < 4]
    day_first = any(int(h[0]) > 12 for h in short)
    month_first = any(int(h[1]) > 12 for h in short)
    if day_first != month_first:
        return "dmy" if day_first else "mdy"
    # Nothing (or both) says: take the order under which time runs forward more often.
    steps = {}
    for order in ("dmy", "mdy"):
        try:
            t = [_seconds(h, order, {}) for h in headers]
        except ValueError:
            continue
        steps[order] = sum(b < a for a, b in zip(t, t[1:]))
    return min(steps, key=lambda o: (steps[o], o)) if steps else "dmy"


def _seconds(g: tuple, order: str, days: dict) -> float:
    """Seconds since year 1 of header groups ``g`` read in ``order`` (``days`` caches dates)."""
    a, b, c, era, hh, mm, ss, ampm = g[:8]
    key = (a, b, c, era, order)
    day = days.get(key)
    if day is None:
        if len(a) == 4 or order == "ymd":
            y, m, d = int(a), int(b), int(c)
        elif order == "mdy":
            m, d, y = int(a), int(b), int(c)
        else:
            d, m, y = int(a), int(b), int(c)
        if era:
            y -= BUDDHIST_ERA
        elif y < 100:
            y += 2000
        day = days[key] = _dt.date(y, m, d).toordinal() * 86400.0
    h = int(hh)
    if ampm:
        h = h % 12 + (12 if ampm in "pP" else 0)
    return day + h * 3600 + int(mm) * 60 + int(ss or 0)


def _generated(body: str) -> str | None:
    """Why ``body`` is a placeholder WhatsApp wrote (in a language the meta rule does not read).

    Each check is guarded by a cheap string test: most messages are the person's words and must
    pass through fast."""
    why = None
    first = body[:1]
    if first in ("\u200e", "\u200f"):
        why = "WhatsApp placeholder (marked with U+200E/U+200F)"
    elif ("\u200e" in body or "\u200f" in body) and IOS_DOCUMENT.match(body):
        why = "WhatsApp document placeholder"
    elif first == "<" and ANGLE_PLACEHOLDER.match(body):
        why = "WhatsApp media placeholder"
    elif body.endswith(")") and body.startswith(_FILE_PREFIXES) and FILE_ATTACHED.match(body):
        why = "WhatsApp attachment line"
    elif first in _NOTICE_FIRST and (DELETED.match(body) or MISSED_CALL.match(body)):
        why = "WhatsApp deleted-message or missed-call notice"
    if why is not None and ENGLISH_PLACEHOLDER.match(body.lstrip(MARKS)):
        return None  # left for the cleaning rule ``meta``
    return why


def read(raw: bytes, source: str, options=None) -> ReadResult:
    lines, bad = decode_lines(raw, source)
    result = ReadResult(rejects=bad)
    parsed = []  # (line number, header groups | "bad" | None, text)
    for i, ln in enumerate(lines, 1):
        if ln is None:
            parsed.append((i, "bad", None))
        else:
            parsed.append((i, header(ln), ln))
    heads = [p[1] for p in parsed if isinstance(p[1], tuple)]
    order = _order_of(heads, getattr(options, "date_order", "auto"))
    days: dict = {}

    turns: list[Turn] = []
    current = None  # [line, speaker, time, text parts, damaged]

    def flush():
        if current is None:
            return
        line, speaker, t, parts, damaged = current
        result.messages += 1
        if damaged:
            return  # its undecodable line is already in the rejects
        text = "\n".join(parts).rstrip() if len(parts) > 1 else parts[0].rstrip()
        if text.endswith("edited>"):
            text = EDITED.sub("", text)
        if (
            speaker is None
            or NOTICE.match(text.lstrip(MARKS))
            or (text.startswith("\u200e") and SYSTEM_TEXT.search(text))
        ):
            result.rejects.append(Reject(source, line, "system-line", "WhatsApp system message", text))
            return
        if "https://" in text and LOCATION.match(text):
            result.rejects.append(Reject(source, line, "meta", "WhatsApp shared location", text))
            return
        first, nl, caption = text.partition("\n")
        why = _generated(first)
        if why is None and nl and ENGLISH_PLACEHOLDER.match(first.lstrip(MARKS)):
            why = "WhatsApp placeholder"
        if why is not None:
            if not (nl and caption.strip()):
                result.rejects.append(Reject(source, line, "meta", why, text))
                return
            text = caption  # a media message's caption is the person's words
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
        rest = groups[8]
        try:
            t = _seconds(groups, order, days)
        except ValueError:
            result.rejects.append(Reject(source, i, "bad-record", f"impossible date for order {order}", text))
            current = None
            continue
        name, sep, body = rest.partition(": ")
        if not sep and rest.endswith(":") and 0 < len(rest) <= 81:
            name, sep, body = rest[:-1], ":", ""  # "Name:" with an empty message
        if not sep or len(name) > 80 or SYSTEM_TEXT.search(name):
            current = [i, None, t, [rest], False]
        else:
            current = [i, name.strip(MARKS + " "), t, [body], False]
    flush()
    if turns:
        result.conversations.append(Conversation(source, turns[0].line, turns))
    return result
