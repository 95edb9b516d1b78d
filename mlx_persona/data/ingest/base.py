"""What every reader produces: conversations of turns, and rejects that say file:line and why.

A reader never raises for a bad record: it reports the record as a :class:`Reject` and goes on.
Only problems with the whole input (the file is missing, the shape is unknown, a required
CSV column is absent) are errors the user must fix.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

# Role words that sources use for "the other side" and "the model / the persona".
USER_ROLES = {"user", "human", "prompter", "input", "prompt", "instruction"}
ASSISTANT_ROLES = {"assistant", "gpt", "chatgpt", "model", "bot", "bard", "bing", "output", "completion"}
SYSTEM_ROLES = {"system", "developer"}


@dataclass
class Turn:
    """One message as the source wrote it."""

    speaker: str  # a person's name, or a role word for role-based sources
    text: str
    line: int  # 1-based line in the source file where the message starts
    time: float | None = None  # seconds (any epoch: only differences are used)
    role: str | None = None  # "user" / "assistant" when the source says so


@dataclass
class Conversation:
    """Ordered turns that belong together (one chat, one JSONL record, one CSV scene)."""

    source: str
    line: int
    turns: list[Turn]
    system: str | None = None
    named: bool = True  # speakers are people's names (WhatsApp, CSV) rather than roles

    @property
    def key(self) -> str:
        return f"{self.source}:{self.line}"


@dataclass(frozen=True)
class Reject:
    """A record dropped by a reader or a rule, with where it came from."""

    source: str
    line: int
    rule: str
    reason: str
    text: str = ""

    def to_json(self) -> dict:
        return {
            "source": self.source,
            "line": self.line,
            "rule": self.rule,
            "reason": self.reason,
            "text": self.text[:200],
        }


# Rules that mean the *input* is damaged (counted as warnings), not that a rule filtered it.
INPUT_ERROR_RULES = {"malformed-json", "undecodable", "csv-missing-column", "csv-extra-column", "bad-record"}


@dataclass
class ReadResult:
    conversations: list[Conversation] = field(default_factory=list)
    rejects: list[Reject] = field(default_factory=list)
    messages: int = 0  # raw messages seen, kept or not


@dataclass
class Probe:
    """What format detection looks at: the start of the file as text, and its JSON if it is JSON."""

    path: Path
    raw: bytes  # the file's bytes (for an SQLite database, only its header)
    lines: list[str]  # the first 64 KB as text lines (BOM and CR dropped)
    doc: object = None  # the whole file as one JSON document, when it is one
    records: list = field(default_factory=list)  # its first objects: JSONL lines, array items, or the doc

    @classmethod
    def of(cls, path: Path, raw: bytes) -> Probe:
        text = raw[:65536].decode("utf-8", "replace").lstrip("\ufeff")
        lines = [ln[:-1] if ln.endswith("\r") else ln for ln in text.split("\n")]
        probe = cls(Path(path), raw, lines)
        start = text.lstrip()[:1]
        if start not in ("{", "["):
            return probe
        try:
            probe.doc = json.loads(raw.decode("utf-8", "replace").lstrip("\ufeff"))
        except ValueError:
            probe.doc = None
        if isinstance(probe.doc, list):
            probe.records = [d for d in probe.doc[:20] if isinstance(d, dict)]
        elif isinstance(probe.doc, dict):
            probe.records = [probe.doc]
        else:  # JSONL: one object per line
            for ln in lines:
                if ln.strip().startswith("{"):
                    try:
                        obj = json.loads(ln)
                    except ValueError:
                        continue
                    if isinstance(obj, dict):
                        probe.records.append(obj)
                if len(probe.records) >= 20:
                    break
        return probe


def decode_lines(raw: bytes, source: str) -> tuple[list[str | None], list[Reject]]:
    """Split ``raw`` into physical lines; a line that is not UTF-8 becomes ``None`` and a reject."""
    if raw.startswith(b"\xef\xbb\xbf"):
        raw = raw[3:]
    try:
        lines: list[str | None] = raw.decode("utf-8").split("\n")
        bad: list[Reject] = []
    except UnicodeDecodeError:
        lines, bad = [], []
        for i, chunk in enumerate(raw.split(b"\n"), 1):
            try:
                lines.append(chunk.decode("utf-8"))
            except UnicodeDecodeError as e:
                lines.append(None)
                bad.append(
                    Reject(
                        source,
                        i,
                        "undecodable",
                        f"not UTF-8 at byte {e.start} of the line",
                        chunk.decode("utf-8", "replace"),
                    )
                )
    return [ln[:-1] if ln and ln.endswith("\r") else ln for ln in lines], bad


def iter_json_records(lines: list[str | None], source: str, result: ReadResult) -> Iterator[tuple[int, dict]]:
    """Yield ``(line, record)`` for each JSON object in a JSONL file (or a JSON array file).

    Malformed lines become rejects in ``result``; undecodable ones were reported already.
    """
    first = next((ln for ln in lines if ln and ln.strip()), "")
    if first.lstrip().startswith("["):
        yield from _iter_json_array(lines, source, result)
        return
    for i, ln in enumerate(lines, 1):
        if ln is None or not ln.strip():
            continue
        try:
            obj = json.loads(ln)
        except ValueError as e:
            result.rejects.append(Reject(source, i, "malformed-json", str(e), ln))
            continue
        if not isinstance(obj, dict):
            result.rejects.append(Reject(source, i, "bad-record", "a line must hold a JSON object", ln))
            continue
        yield i, obj


def _iter_json_array(lines, source, result):
    """Walk a ``[ {...}, {...} ]`` file element by element so each record keeps its line."""
    bad = {i for i, ln in enumerate(lines, 1) if ln is None}
    text = "\n".join("" if ln is None else ln for ln in lines)
    dec = json.JSONDecoder()
    pos, line = text.index("[") + 1, 1 + text.count("\n", 0, text.index("["))
    while True:
        nxt = _skip_ws(text, pos)
        line += text.count("\n", pos, nxt)
        pos = nxt
        if pos >= len(text) or text[pos] == "]":
            return
        try:
            obj, end = dec.raw_decode(text, pos)
        except ValueError as e:
            result.rejects.append(Reject(source, line, "malformed-json", f"{e}; rest of the array skipped"))
            return
        last = line + text.count("\n", pos, end)
        if any(b in bad for b in range(line, last + 1)):
            pass  # the undecodable line was reported; the record it broke is dropped with it
        elif not isinstance(obj, dict):
            result.rejects.append(Reject(source, line, "bad-record", "array items must be JSON objects"))
        else:
            yield line, obj
        nxt = _skip_ws(text, end)
        line, pos = last + text.count("\n", end, nxt), nxt
        if pos < len(text) and text[pos] == ",":
            pos += 1


def _skip_ws(text: str, pos: int) -> int:
    while pos < len(text) and text[pos] in " \t\r\n":
        pos += 1
    return pos


def content_text(content) -> str:
    """Message content as text: a string, or OpenAI-style parts ``[{"type": "text", ...}]``."""
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        parts = []
        for p in content:
            if isinstance(p, str):
                parts.append(p)
            elif isinstance(p, dict) and isinstance(p.get("text"), str):
                parts.append(p["text"])
        return "".join(parts)
    return str(content)


def role_of(word: str) -> str | None:
    """Map a source's role word to ``user`` / ``assistant`` / ``system`` (None if unknown)."""
    w = str(word).strip().lower()
    if w in ASSISTANT_ROLES:
        return "assistant"
    if w in USER_ROLES:
        return "user"
    if w in SYSTEM_ROLES:
        return "system"
    return None


# -- what the role-based JSON readers (chatml, sharegpt, alpaca, completion) share
def message_list(obj: dict, key: str, source: str, line: int, result: ReadResult) -> list | None:
    """The record's list of messages under ``key``; None (and a bad-record reject) when absent."""
    msgs = obj.get(key)
    if not isinstance(msgs, list):
        result.rejects.append(Reject(source, line, "bad-record", f"no '{key}' list"))
        return None
    return msgs


def string_fields(obj: dict, keys: tuple[str, ...], source: str, line: int, result: ReadResult) -> list[str] | None:
    """The record's values under ``keys`` when each is a string; None (and a bad-record reject) otherwise."""
    values = [obj.get(k) for k in keys]
    if not all(isinstance(v, str) for v in values):
        names = " and ".join(f"'{k}'" for k in keys)
        result.rejects.append(Reject(source, line, "bad-record", f"{names} must be strings"))
        return None
    return values


def exchange(prompt: str, reply: str, line: int) -> list[Turn]:
    """A user turn and the assistant's reply to it."""
    return [Turn("user", prompt, line, None, "user"), Turn("assistant", reply, line, None, "assistant")]


def role_conversation(source: str, line: int, turns: list[Turn], system: list[str] | str | None) -> Conversation:
    """A role-based record's conversation (its speakers are roles, not names). ``system``: the
    record's system prompt, or its parts, joined by a blank line (none: no system prompt); a
    ``system`` field that is not a non-blank string is ignored."""
    if isinstance(system, list):
        system = "\n\n".join(system) if system else None
    elif not (isinstance(system, str) and system.strip()):
        system = None
    return Conversation(source, line, turns, system, named=False)


def read_json_records(raw: bytes, source: str, convert) -> ReadResult:
    """Read a JSONL (or JSON array) file, turning each record into a conversation.

    ``convert(record, source, line, result)`` returns a :class:`Conversation` or ``None`` (after
    adding its own rejects to ``result``).
    """
    lines, bad = decode_lines(raw, source)
    result = ReadResult(rejects=bad)
    for line, obj in iter_json_records(lines, source, result):
        conv = convert(obj, source, line, result)
        if conv is not None:
            result.messages += len(conv.turns)
            result.conversations.append(conv)
    return result


def load_json_document(lines: list[str | None], source: str, result: ReadResult):
    """A whole-file JSON export (Telegram, Messenger, Discord) parsed from its decoded lines; on
    a parse error a ``malformed-json`` reject (at the error's line) is added and None returned."""
    try:
        return json.loads("\n".join("" if ln is None else ln for ln in lines))
    except ValueError as e:
        result.rejects.append(Reject(source, getattr(e, "lineno", 1), "malformed-json", f"{e}; file skipped"))
        return None


def messages_document(raw: bytes, source: str) -> tuple[list[str | None], ReadResult, dict | None]:
    """(decoded lines, the result so far, the document) of a whole-file JSON export holding a
    ``messages`` list (Messenger, Discord); the document is None, with a reject in the result,
    when the file is not JSON or has no such list."""
    lines, bad = decode_lines(raw, source)
    result = ReadResult(rejects=bad)
    doc = load_json_document(lines, source, result)
    if doc is not None and not (isinstance(doc, dict) and isinstance(doc.get("messages"), list)):
        result.rejects.append(Reject(source, 1, "bad-record", "no 'messages' list; file skipped"))
        doc = None
    return lines, result, doc


def lines_of_values(lines: list[str | None], pattern: re.Pattern) -> dict[str, list[int]]:
    """``pattern``'s first group -> the 1-based lines it sits on, in order: where each message of
    a pretty-printed JSON export starts (its id or timestamp is on a line of its own), so a
    reject can name its line."""
    found: dict[str, list[int]] = {}
    for i, ln in enumerate(lines, 1):
        m = pattern.match(ln or "")
        if m:
            found.setdefault(m.group(1), []).append(i)
    return found
