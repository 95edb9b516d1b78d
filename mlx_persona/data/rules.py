"""Cleaning rules on conversations: normalize, drop meta, merge, split, map roles, system prompt.

Each rule works on one conversation and reports what it drops as a :class:`Reject`; nothing is
dropped silently. The person's own spelling, casing, emoji and typos are never touched: they
are the voice the twin learns.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Sequence

from mlx_persona.core.errors import PersonaError
from mlx_persona.data.ingest.base import Conversation, Reject, Turn

# Meta replies: not something the person said. Matched (case-insensitive) on normalized text.
DEFAULT_META_PATTERNS = (
    r"^\[Request interrupted",  # coding-agent logs
    r"^\[No response",
    r"^<Media omitted>$",  # WhatsApp Android
    r"^<attached: [^>]*>$",  # WhatsApp iOS
    r"^(image|video|audio|sticker|GIF|document|Contact card) omitted$",
    r"^\S+\.\w{2,4} \(file attached\)",
    r"^(This message was deleted|You deleted this message|This message was deleted by admin)\.?$",
    r"^<This message was deleted>$",
    r"^Missed (voice|video) call",
    r"^(null|None|undefined)$",
)

# Characters that carry no text: zero-width spaces, direction marks, soft hyphens, BOMs.
# ZWJ (U+200D, emoji sequences) and ZWNJ (U+200C, Persian script) are kept: they change text.
_INVISIBLE = "\u200b\u200e\u200f\u2060\ufeff\u00ad\u180e\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069"
_TABLE = {ord(c): None for c in _INVISIBLE}
_TABLE.update({c: None for c in range(32) if chr(c) not in "\t\n"})
_TABLE.update({0x7F: None, 0xA0: " ", 0x202F: " ", 0x2007: " ", 0x2009: " ", 0x200A: " ", 0x3000: " "})
_INNER_SPACES = re.compile(r"(?<=\S)[ \t]{2,}")  # runs inside a line; indentation is kept
_TRAILING = re.compile(r"[ \t]+\n")
_BLANK_LINES = re.compile(r"\n{3,}")

_EMAIL = re.compile(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+")
_URL = re.compile(r"\b(?:https?://|www\.)[^\s<>\"']+")
_PHONE = re.compile(r"(?<![\w.])\+?\d[\d \-().]{5,}\d(?![\w.])")


def normalize_text(text: str) -> str:
    """NFC, no invisible or control characters, tidy whitespace; words left exactly as typed."""
    if "\r" in text:
        text = text.replace("\r\n", "\n").replace("\r", "\n")
    if not text.isascii():
        text = unicodedata.normalize("NFC", text)
    text = text.translate(_TABLE)
    if "  " in text or "\t" in text:
        text = _INNER_SPACES.sub(" ", text)
    if " \n" in text or "\t\n" in text:
        text = _TRAILING.sub("\n", text)
    if "\n\n\n" in text:
        text = _BLANK_LINES.sub("\n\n", text)
    return text.strip()


def scrub_pii(text: str) -> str:
    """Replace URLs, emails and phone numbers (7+ digits) with placeholders."""
    text = _URL.sub("<URL>", text)
    text = _EMAIL.sub("<EMAIL>", text)
    return _PHONE.sub(lambda m: "<PHONE>" if sum(c.isdigit() for c in m.group()) >= 7 else m.group(), text)


def meta_matcher(patterns) -> re.Pattern:
    try:
        return re.compile("|".join(f"(?:{p})" for p in patterns), re.IGNORECASE)
    except re.error as e:
        raise PersonaError(f"bad meta pattern: {e}") from None


def clean_turns(conv: Conversation, meta: re.Pattern, normalize: bool, rejects: list) -> None:
    """Normalize each turn's text; drop empty turns and meta replies (any speaker)."""
    kept = []
    for t in conv.turns:
        text = normalize_text(t.text) if normalize else t.text.strip()
        if not text:
            rejects.append(Reject(conv.source, t.line, "empty", "no text after normalizing", t.text))
        elif meta.search(text):
            rejects.append(Reject(conv.source, t.line, "meta", "meta reply, not the person's words", text))
        else:
            t.text = text
            kept.append(t)
    conv.turns = kept
    if conv.system is not None and normalize:
        conv.system = normalize_text(conv.system)


def speakers(conversations) -> dict[str, int]:
    counts: dict[str, int] = {}
    for c in conversations:
        for t in c.turns:
            counts[t.speaker] = counts.get(t.speaker, 0) + 1
    return counts


def assign_roles(conversations: list[Conversation], names: Sequence[str], source: str) -> None:
    """Persona's turns become ``assistant``, everyone else's ``user``.

    ``names`` are the persona's names (one person is "Sam Okafor" in WhatsApp, "SAM" in a
    script), matched ignoring case. Named sources (chats, scripts) must contain one of them as a
    speaker. Role-based sources (ChatML, ShareGPT, ...) use a matching ``name`` field if there
    is one, else their assistant role.
    """
    want = {n.strip().casefold() for n in names}
    counts = speakers(conversations)
    present = any(s.strip().casefold() in want for s in counts)
    if not present and conversations and all(c.named for c in conversations):
        top = ", ".join(s for s, _ in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[:8])
        raise PersonaError(f"persona {' / '.join(names)!r} is not a speaker in {source}; speakers there: {top}")
    for c in conversations:
        for t in c.turns:
            if present:
                t.role = "assistant" if t.speaker.strip().casefold() in want else "user"
            elif t.role is None:
                t.role = "user"


def split_and_merge(conv: Conversation, merge_gap_s: float, split_gap_s: float) -> tuple[list[Conversation], int]:
    """Split at silences longer than ``split_gap_s``; merge one speaker's messages within ``merge_gap_s``.

    Returns the pieces and how many messages were merged into the one before them. Turns without
    a time (JSONL, CSV) are never split apart and always merge with the same speaker's last turn.
    """
    pieces, cur, merged = [], [], 0
    last_time: float | None = None
    for t in conv.turns:
        gap = None if (t.time is None or last_time is None) else t.time - last_time
        if cur and gap is not None and gap > split_gap_s:
            pieces.append(cur)
            cur = []
        if cur and cur[-1].speaker == t.speaker and (gap is None or gap <= merge_gap_s):
            prev = cur[-1]
            cur[-1] = Turn(prev.speaker, f"{prev.text}\n{t.text}", prev.line, t.time, prev.role)
            merged += 1
        else:
            cur.append(t)
        last_time = t.time if t.time is not None else last_time
    if cur:
        pieces.append(cur)
    out = [Conversation(conv.source, p[0].line, p, conv.system, conv.named) for p in pieces]
    return out, merged


def join_other_speakers(conv: Conversation) -> None:
    """Adjacent ``user`` turns from different people become one turn, each line ``Name: text``.

    Only group chats (more than one non-persona speaker) get name prefixes; roles then alternate.
    """
    others = {t.speaker for t in conv.turns if t.role == "user"}
    group = conv.named and len(others) > 1
    out: list[Turn] = []
    for t in conv.turns:
        text = f"{t.speaker}: {t.text}" if group and t.role == "user" else t.text
        if out and t.role == "user" and out[-1].role == "user":
            prev = out[-1]
            out[-1] = Turn(prev.speaker, f"{prev.text}\n{text}", prev.line, t.time, "user")
        else:
            out.append(Turn(t.speaker, text, t.line, t.time, t.role))
    conv.turns = out


def system_prompt(original: str | None, persona_line: str, mode: str, max_chars: int, add_missing: bool) -> str | None:
    """The system prompt a sample gets, by ``mode``:

    keep: as written | drop: none | replace: always the persona line |
    truncate: first ``max_chars`` characters | replace-long: the persona line when longer than
    ``max_chars`` (tool-call histories), else as written. A conversation without one gets the
    persona line when ``add_missing`` (except in ``drop`` mode).
    """
    if mode == "drop":
        return None
    if not original:
        return persona_line if add_missing else None
    if mode == "keep":
        return original
    if mode == "replace":
        return persona_line
    if mode == "truncate":
        return original[:max_chars].rstrip()
    return persona_line if len(original) > max_chars else original
