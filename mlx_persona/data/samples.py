"""From cleaned conversations to training samples: one per persona turn, deduplicated, split.

mlx_lm's ``--mask-prompt`` trains only a sample's last message, so a conversation with five
persona turns yields five samples, each ending in one of them after its preceding context
(at most ``context_turns`` turns and ``max_tokens`` tokens, trimmed from the oldest end).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from collections.abc import Callable
from dataclasses import dataclass

from mlx_persona.data.ingest.base import Conversation, Reject

MESSAGE_OVERHEAD = 4  # template tokens around each message (<|im_start|>role\n ... <|im_end|>\n)
SPLITS = ("train", "valid", "test")
_NOT_WORD = re.compile(r"[\W_]+")


def estimate_tokens(text: str) -> int:
    """Rough token count when no tokenizer is given: about four characters a token."""
    return len(text) // 4 + 1


@dataclass
class Sample:
    group: str  # the conversation it came from (the unit of the train/valid/test split)
    source: str
    line: int  # where the persona's reply starts in the source
    messages: list
    system_chars: int
    line_json: str = ""  # the exact output line, built once


def build_samples(
    conv: Conversation, system: str | None, cfg, count: Callable[[str], int], rejects: list
) -> list[Sample]:
    """One sample per persona turn of ``conv``; rejects the ones too short, too long or alone."""
    turns = conv.turns
    tokens = [count(t.text) + MESSAGE_OVERHEAD for t in turns]
    sys_tokens = count(system) + MESSAGE_OVERHEAD if system else 0
    head = [{"role": "system", "content": system}] if system else []
    out = []
    for i, t in enumerate(turns):
        if t.role != "assistant":
            continue
        if len(t.text) < cfg.min_reply_chars:
            rejects.append(
                Reject(
                    conv.source, t.line, "min-length", f"reply shorter than {cfg.min_reply_chars} characters", t.text
                )
            )
            continue
        budget = cfg.max_tokens - sys_tokens - tokens[i]
        start = max(0, i - cfg.context_turns)
        used = sum(tokens[start:i])
        while start < i and (used > budget or turns[start].role != "user"):
            used -= tokens[start]
            start += 1
        if start == i:
            too_long = any(u.role == "user" for u in turns[max(0, i - cfg.context_turns) : i])
            rule, why = (
                ("too-long", f"reply and its prompt exceed {cfg.max_tokens} tokens")
                if too_long
                else ("no-context", "no message from anyone else before this reply")
            )
            rejects.append(Reject(conv.source, t.line, rule, why, t.text))
            continue
        msgs = head + [{"role": u.role, "content": u.text} for u in turns[start : i + 1]]
        out.append(Sample(conv.key, conv.source, t.line, msgs, len(system or "")))
    return out


class _Groups:
    """Union-find over conversation keys: duplicates tie their conversations into one split."""

    def __init__(self):
        self.parent: dict[str, str] = {}

    def find(self, k: str) -> str:
        p = self.parent.setdefault(k, k)
        while p != self.parent[p]:
            self.parent[p] = self.parent[self.parent[p]]
            p = self.parent[p]
        self.parent[k] = p
        return p

    def union(self, a: str, b: str) -> None:
        ra, rb = self.find(a), self.find(b)
        if ra != rb:
            self.parent[max(ra, rb)] = min(ra, rb)


def _near_key(sample: Sample) -> str:
    """The reply and the message it answers, ignoring case, punctuation and spacing."""
    prompt, reply = sample.messages[-2]["content"], sample.messages[-1]["content"]
    return _NOT_WORD.sub(" ", f"{prompt}\x00{reply}".casefold()).strip()


def deduplicate(samples: list[Sample], mode: str, rejects: list) -> tuple[list[Sample], _Groups]:
    """Drop exact (and, in ``near`` mode, near) duplicates; the first occurrence stays.

    Chat logs often store every prefix of a conversation as its own record; their duplicate
    samples are removed here and, within one file, their conversations tied together so they
    land in one split.
    """
    groups = _Groups()
    seen_exact: dict[str, str] = {}
    seen_near: dict[str, str] = {}
    kept = []
    for s in samples:
        s.line_json = json.dumps({"messages": s.messages}, ensure_ascii=False)
        groups.find(s.group)
        if mode == "off":
            kept.append(s)
            continue
        first = seen_exact.get(s.line_json)
        rule = "duplicate"
        if first is None and mode == "near":
            near = _near_key(s)
            first, rule = seen_near.get(near), "near-duplicate"
            if first is None:
                seen_near[near] = s.group
        if first is not None:
            if rule == "duplicate" and first.rpartition(":")[0] == s.group.rpartition(":")[0]:
                groups.union(first, s.group)  # a log that stored this conversation twice
            rejects.append(Reject(s.source, s.line, rule, f"same as a sample from {first}", s.messages[-1]["content"]))
            continue
        seen_exact[s.line_json] = s.group
        kept.append(s)
    return kept, groups


def _portable(key: str) -> str:
    """A conversation key (``path:line``) without the file's folder: the same data, wherever the
    project or the user's exports live, splits the same way."""
    source, _, line = key.rpartition(":")
    return f"{os.path.basename(source)}:{line}"


def split_by_conversation(samples: list[Sample], groups: _Groups, fractions, seed: int) -> dict[str, list[Sample]]:
    """Assign whole conversations to train/valid/test, deterministic for a seed.

    Conversations are ordered by a seeded hash of their file name and line (so neither input
    order nor the folder the files sit in matters) and each goes to the split furthest below
    its share of samples; with three or more
    conversations and non-zero shares every split gets at least one.
    """
    sizes: dict[str, int] = {}
    for s in samples:
        root = groups.find(s.group)
        sizes[root] = sizes.get(root, 0) + 1
    order = sorted(sizes, key=lambda k: hashlib.sha256(f"{seed}\x00{_portable(k)}".encode()).hexdigest())
    total = max(1, len(samples))
    want = {name: f * total for name, f in zip(SPLITS, fractions)}
    have = {name: 0 for name in SPLITS}
    where: dict[str, str] = {}
    for k in order:
        name = min((n for n in SPLITS if want[n] > 0), key=lambda n: (have[n] / want[n], SPLITS.index(n)))
        where[k] = name
        have[name] += sizes[k]
    out: dict[str, list[Sample]] = {name: [] for name in SPLITS}
    for s in samples:
        out[where[groups.find(s.group)]].append(s)
    return out
