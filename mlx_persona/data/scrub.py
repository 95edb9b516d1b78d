"""Privacy before training: personal data out of every kept message, blocked messages dropped.

A twin trained on someone's chats can say back what was in them: phone numbers, e-mail
addresses, IBANs, card numbers, street addresses. The clean stage (``--scrub``) replaces each
one found with a typed placeholder, so the twin learns *that* a number goes there, not which::

    "call me on +44 20 7946 0958"  ->  "call me on <PHONE>"

Detection uses well-kept libraries for what they know best and keeps regexes to the shape of
a candidate:

- ``PHONE``: ``phonenumbers`` (Google's libphonenumber metadata) finds numbers in any
  country's format; international ones (``+44 ...``) anywhere, national ones (``(415)
  555-2671``, ``030 901820``) for each region in ``regions``; only numbers valid for
  their country count (a date, a price or an order number is not one).
- ``IBAN``: ``stdnum.iban`` (country length and the mod-97 check digits).
- ``CARD``: 13-19 digits (spaces or dashes between groups) that pass the Luhn check
  (``stdnum.luhn``); a mistyped card number is left alone, it is not a card.
- ``IP``: IPv4 dotted quads that ``ipaddress`` accepts.
- ``EMAIL``, ``URL`` (optional) and ``ADDRESS`` (English ``12 Baker Street``, German-style
  ``Hauptstraße 5``; where a pattern can see it) by pattern.

Spans never overlap: the detectors run in the order of :data:`CATEGORIES` and a later one
skips what an earlier one took. Each finding carries a *normal form* (E.164 for a phone,
digits for a card, ...) so the eval's leakage check can tell that ``0044 20 7946 0958`` in a
reply is the number seen in training.

A :class:`Blocklist` (``--block-words FILE``, one word or phrase a line, ``#`` comments)
drops any message that contains one of them, whole word, any case. :class:`ScrubPass` applies
both to the clean stage's conversations and keeps the per-category counts and the
``scrub_report.jsonl`` rows (file, line, category, role; never the secret itself).
"""

from __future__ import annotations

import ipaddress
import json
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from mlx_persona.core.errors import PersonaError
from mlx_persona.data.ingest.base import Conversation, Reject

SCRUB_REPORT = "scrub_report.jsonl"
CATEGORIES = ("EMAIL", "URL", "IBAN", "CARD", "IP", "PHONE", "ADDRESS")
# National formats are read as numbers of these countries (international +CC numbers: any).
DEFAULT_REGIONS = ("US", "GB", "DE", "FR", "IN", "ES", "IT", "NL", "BR")

# Cheap first look: a message without "@", "://", "www." or one of these digit cues has nothing
# to find (most chat messages). One pattern that starts with a digit lets the regex engine skip
# ahead to the digits: 7 digits close together (phone, card, IBAN), a dotted quad, a house
# number before a capitalised word, a number after a German-style street word.
_DIGIT_CUE = re.compile(
    r"\d(?:(?:[ \-().]{0,3}\d){6}|(?:\.\d{1,3}){3}|[A-Za-z]?,?[ \t]+[A-Z]"
    + "".join(rf"|(?<={w} \d)" for w in ("straße", "strasse", r"str\.", "weg", "gasse", "platz", "allee"))
    + ")"
)
_EMAIL = re.compile(r"(?<![\w.+-])[\w.+-]+@[\w-]+(?:\.[\w-]+)*\.[A-Za-z]{2,}(?![\w-])")
_URL = re.compile(r"\b(?:https?://|www\.)[^\s<>\"']+[^\s<>\"'.,;:!?)]")
_IBAN = re.compile(r"\b[A-Z]{2}\d{2}(?: ?[A-Z0-9]){11,30}\b")
_CARD = re.compile(r"(?<![\d-])\d(?:[ -]?\d){12,18}(?![\d-])")
_IPV4 = re.compile(r"(?<![\w.])(?:\d{1,3}\.){3}\d{1,3}(?![\d.]|\.\d)")
# A phone number's candidate: an optional "+" or "(", then 7 to 17 digits with separators between.
_PHONE_RUN = re.compile(r"(?<![\w+])(?:\+|\()?\d(?:[ \-.()]{0,3}\d){6,16}\)?(?!\w)")
_ADDRESS = re.compile(
    r"\b\d{1,5}[A-Za-z]?,?\s+(?:[A-Z][\w'.-]*\s+){1,3}"
    r"(?:Street|St|Avenue|Ave|Road|Rd|Lane|Ln|Boulevard|Blvd|Drive|Dr|Way|Court|Ct|Place|Pl)\b\.?"
    r"|\b[A-ZÄÖÜ][\w'-]*(?:stra(?:ss|ß)e|str\.|weg|gasse|platz|allee)\s+\d{1,4}[a-z]?\b"
)


@dataclass(frozen=True)
class Found:
    """One piece of personal data in a text: where, what kind, and its normal form."""

    category: str
    start: int
    end: int
    value: str  # normal form: E.164 phone, digits of a card, upper-case IBAN, lower-case e-mail


class Scrubber:
    """Finds and replaces personal data; see the module docstring for what each category is."""

    def __init__(self, regions: Sequence[str] = DEFAULT_REGIONS, urls: bool = False, addresses: bool = True):
        import phonenumbers

        self._pn = phonenumbers
        self.regions = tuple(r.upper() for r in regions) or ("ZZ",)
        unknown = [r for r in self.regions if r != "ZZ" and r not in phonenumbers.SUPPORTED_REGIONS]
        if unknown:
            raise PersonaError(
                f"scrub_regions: unknown region {unknown[0]!r}; give two-letter codes such as US, GB, DE"
            )
        self.urls = urls
        self.addresses = addresses

    def find(self, text: str) -> list[Found]:
        """Every piece of personal data in ``text``, in order, never overlapping."""
        if not ("@" in text or "://" in text or "www." in text or _DIGIT_CUE.search(text)):
            return []
        taken: list[Found] = []

        def free(a: int, b: int) -> bool:
            return all(b <= f.start or a >= f.end for f in taken)

        def add(category: str, a: int, b: int, value: str) -> None:
            if free(a, b):
                taken.append(Found(category, a, b, value))

        if "@" in text:
            for m in _EMAIL.finditer(text):
                add("EMAIL", m.start(), m.end(), m.group().lower())
        if self.urls and ("://" in text or "www." in text):
            for m in _URL.finditer(text):
                add("URL", m.start(), m.end(), m.group())
        for m in _IBAN.finditer(text):
            if _valid_iban(m.group()):
                add("IBAN", m.start(), m.end(), m.group().replace(" ", "").upper())
        for m in _CARD.finditer(text):
            digits = re.sub(r"\D", "", m.group())
            if 13 <= len(digits) <= 19 and _luhn(digits):
                add("CARD", m.start(), m.end(), digits)
        for m in _IPV4.finditer(text):
            try:
                ip = ipaddress.IPv4Address(m.group())
            except ValueError:
                continue
            add("IP", m.start(), m.end(), str(ip))
        self._phones(text, add, free)
        if self.addresses:
            for m in _ADDRESS.finditer(text):
                add("ADDRESS", m.start(), m.end(), " ".join(m.group().casefold().split()))
        return sorted(taken, key=lambda f: f.start)

    def _phones(self, text: str, add, free) -> None:
        """Each run of 7+ digits that no other category took is handed to ``phonenumbers``'
        matcher, region by region until one reads a valid number in it (a "+" number: the
        first region already does). Matching the short run, not the whole message, keeps
        the cost to the few messages that have one."""
        pn = self._pn
        for c in _PHONE_RUN.finditer(text):
            if not free(c.start(), c.end()):
                continue
            piece = text[c.start() : c.end()]
            for region in self.regions:
                found = list(pn.PhoneNumberMatcher(piece, region, leniency=pn.Leniency.VALID))
                for m in found:
                    value = pn.format_number(m.number, pn.PhoneNumberFormat.E164)
                    add("PHONE", c.start() + m.start, c.start() + m.end, value)
                if found:
                    break

    def scrub(self, text: str) -> tuple[str, list[Found]]:
        """``text`` with each finding replaced by ``<CATEGORY>``, and the findings."""
        found = self.find(text)
        if not found:
            return text, found
        parts, at = [], 0
        for f in found:
            parts += [text[at : f.start], f"<{f.category}>"]
            at = f.end
        parts.append(text[at:])
        return "".join(parts), found


def _valid_iban(candidate: str) -> bool:
    from stdnum import iban

    return iban.is_valid(candidate)


def _luhn(digits: str) -> bool:
    from stdnum import luhn

    return luhn.is_valid(digits)


class Blocklist:
    """Words and phrases whose messages are dropped whole: whole words, any case, any spacing."""

    def __init__(self, phrases: Iterable[str]):
        self.phrases = tuple(dict.fromkeys(p.strip().casefold() for p in phrases if p.strip()))
        words = (p.split() for p in sorted(self.phrases, key=len, reverse=True))
        body = "|".join(r"\s+".join(map(re.escape, w)) for w in words)  # any spacing between words
        self._re = re.compile(rf"(?<!\w)(?:{body})(?!\w)", re.IGNORECASE) if body else None

    @classmethod
    def from_file(cls, path: str | Path) -> Blocklist:
        p = Path(path)
        try:
            lines = p.read_text(encoding="utf-8").splitlines()
        except (OSError, UnicodeDecodeError) as e:
            raise PersonaError(
                f"--block-words {path}: cannot read ({type(e).__name__}); give a UTF-8 text file"
            ) from None
        return cls(ln for ln in lines if not ln.lstrip().startswith("#"))

    def matches(self, text: str) -> bool:
        return bool(self._re and self._re.search(text))


class ScrubPass:
    """The clean stage's privacy step, one conversation at a time (before merging, so every
    finding keeps its own message's line): blocked messages become rejects, the rest are
    scrubbed; counts and report rows accumulate here."""

    def __init__(self, scrubber: Scrubber | None, blocklist: Blocklist | None):
        self.scrubber = scrubber
        self.blocklist = blocklist
        self.counts = {c: 0 for c in CATEGORIES}
        self.messages = 0  # messages with at least one replacement
        self.blocked = 0
        self.rows: list[dict] = []

    def conversation(self, conv: Conversation, rejects: list) -> None:
        kept = []
        for t in conv.turns:
            if self.blocklist and self.blocklist.matches(t.text):
                self.blocked += 1
                rejects.append(Reject(conv.source, t.line, "blocked", "contains a word from the blocklist"))
                continue
            if self.scrubber:
                t.text = self._scrub(t.text, conv.source, t.line, t.role or "user")
            kept.append(t)
        conv.turns = kept
        if conv.system and self.scrubber:
            conv.system = self._scrub(conv.system, conv.source, conv.line, "system")

    def reject_text(self, text: str) -> str:
        """A dropped record's text as ``rejects.jsonl`` keeps it: empty when it holds a blocked
        word, scrubbed when scrubbing is on (not counted: the counts are of the kept data)."""
        if self.blocklist and self.blocklist.matches(text):
            return ""
        return self.scrubber.scrub(text)[0] if self.scrubber and text else text

    def _scrub(self, text: str, source: str, line: int, role: str) -> str:
        new, found = self.scrubber.scrub(text)
        if found:
            self.messages += 1
            for f in found:
                self.counts[f.category] += 1
                self.rows.append({"source": source, "line": line, "role": role, "category": f.category})
        return new

    def stats(self) -> dict:
        """``stats.json``'s ``scrub`` block."""
        return {
            "enabled": self.scrubber is not None,
            "replaced": {c: n for c, n in self.counts.items() if n or c != "URL" or self.scrubber.urls}
            if self.scrubber
            else {},
            "messages_changed": self.messages,
            "blocked_messages": self.blocked,
        }

    def report(self) -> str:
        """``scrub_report.jsonl``: one row per replacement, without the replaced text."""
        return "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in self.rows)
