"""DPO pairs: read, check, tokenize, fit to ``max_seq_length``, batch.

A pairs line (mlx-lm-lora's layout, what ``mlx-persona pairs`` writes)::

    {"prompt": "...", "chosen": "...", "rejected": "...", "system": "...", "messages": [...]}

``messages`` (the whole context, user/assistant turns) wins over ``prompt`` (a single user turn);
``system`` is optional. Tokens: the chat template applied to the context with the generation
prompt (it ends in the assistant header), then the reply's own tokens and the end-of-turn token,
the same sequence the model produces when it answers. Only the reply tokens are scored.

Bad lines never stop a run; each is reported with file:line in ``rejects.jsonl`` by one rule:

- not JSON, no ``chosen`` / ``rejected`` string, an empty one, chosen == rejected, no prompt:
  **skipped**;
- prompt + reply longer than ``max_seq_length``: the oldest prompt tokens are dropped (the
  replies are kept whole) — **truncated**; if a reply alone takes more than half of
  ``max_seq_length``, there is not enough prompt left to mean anything — **skipped**.

Batches: a batch of B pairs is one (2B, W) token matrix, the B chosen sequences then the B
rejected ones, so one forward pass scores both (see :func:`mlx_persona.dpo.train.sequence_logps`).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import mlx.core as mx
import numpy as np

from mlx_persona.core.errors import PersonaError
from mlx_persona.models.generate import chat_prompt

PAD_TO = 8  # widths are rounded up to a multiple of this: few distinct shapes to compile, little padding


@dataclass
class Pair:
    prompt: list  # token ids, ending in the assistant header
    chosen: list  # reply token ids + end-of-turn
    rejected: list
    source: str  # file:line
    anchor: list | None = None  # rpo_on real: the person's reply tokens + end-of-turn (the NLL's reply)

    def replies(self) -> list[list]:
        return [self.chosen, self.rejected] + ([self.anchor] if self.anchor is not None else [])

    def __len__(self) -> int:
        return len(self.prompt) + max(map(len, self.replies()))


def record_messages(record) -> tuple[list[dict], str, str]:
    """(chat messages, chosen, rejected) from one pairs record; ValueError with the reason."""
    if not isinstance(record, dict):
        raise ValueError("not a JSON object")
    for key in ("chosen", "rejected"):
        if key not in record:
            raise ValueError(f"missing '{key}'")
        if not isinstance(record[key], str) or not record[key].strip():
            raise ValueError(f"'{key}' is empty or not a string")
    if record["chosen"].strip() == record["rejected"].strip():
        raise ValueError("chosen equals rejected (nothing to prefer)")
    msgs = record.get("messages")
    if msgs is None:
        if not isinstance(record.get("prompt"), str) or not record["prompt"].strip():
            raise ValueError("no 'messages' and no 'prompt'")
        msgs = [{"role": "user", "content": record["prompt"]}]
    if (
        not isinstance(msgs, list)
        or not msgs
        or not all(isinstance(m, dict) and isinstance(m.get("content"), str) and m.get("role") for m in msgs)
    ):
        raise ValueError("'messages' must be a non-empty list of {role, content}")
    system = record.get("system")
    if system is not None and not isinstance(system, str):
        raise ValueError("'system' is not a string")
    head = [{"role": "system", "content": system}] if system and msgs[0]["role"] != "system" else []
    return head + msgs, record["chosen"], record["rejected"]


def encode(tokenizer, messages: list[dict], *replies: str) -> tuple[list, ...]:
    """(prompt ids ending in the assistant header, then each reply's ids + end-of-turn)."""
    prompt = chat_prompt(tokenizer, messages)
    eos = tokenizer.eos_token_id

    def reply(text):
        return list(tokenizer.encode(text.strip(), add_special_tokens=False)) + [eos]

    return (prompt, *map(reply, replies))


def anchor_text(record: dict) -> str:
    """``rpo_on: real``: the reply the NLL is taken on, the person's own one the pair carries in
    ``real`` (pairs ``chosen: closest``), else the chosen reply."""
    real = record.get("real")
    return real if isinstance(real, str) and real.strip() else record["chosen"]


def fit(pair: Pair, max_seq_length: int) -> tuple[Pair | None, str | None]:
    """Apply the length rule; returns (pair or None, what was done or None)."""
    if len(pair) <= max_seq_length:
        return pair, None
    longest = max(map(len, pair.replies()))
    if longest > max_seq_length // 2:
        return None, f"skipped: a reply of {longest} tokens is over half of max_seq_length={max_seq_length}"
    keep = max_seq_length - longest
    cut = len(pair.prompt) - keep
    pair.prompt = pair.prompt[cut:]
    return pair, f"truncated: dropped the oldest {cut} prompt tokens to fit max_seq_length={max_seq_length}"


def load_pairs(path: Path, tokenizer, max_seq_length: int, anchor: bool = False) -> tuple[list[Pair], list[dict]]:
    """Usable pairs from one JSONL file, and a report line for every line that was changed or skipped.
    With ``anchor`` each pair also carries the tokens of :func:`anchor_text` (``rpo_on: real``)."""
    path = Path(path)
    if not path.is_file():
        raise PersonaError(f"{path}: missing (run `mlx-persona pairs` first)")
    pairs, report = [], []
    lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
    if not any(line.strip() for line in lines):
        report.append({"source": f"{path}:1", "action": "skipped", "reason": "empty file: no pairs"})
    for lineno, line in enumerate(lines, 1):
        if not line.strip():
            continue
        where = f"{path}:{lineno}"
        try:
            record = json.loads(line)
            messages, chosen, rejected = record_messages(record)
            if anchor:
                prompt, c, r, a = encode(tokenizer, messages, chosen, rejected, anchor_text(record))
                pair = Pair(prompt, c, r, source=where, anchor=a)
            else:
                pair = Pair(*encode(tokenizer, messages, chosen, rejected), source=where)
        except json.JSONDecodeError as e:
            report.append({"source": where, "action": "skipped", "reason": f"not JSON ({e.msg})"})
            continue
        except ValueError as e:
            report.append({"source": where, "action": "skipped", "reason": str(e)})
            continue
        pair, done = fit(pair, max_seq_length)
        if done:
            action, why = done.split(": ", 1)
            report.append({"source": where, "action": action, "reason": why})
        if pair is not None:
            pairs.append(pair)
    return pairs, report


class PairSet:
    """A list of pairs with ``itemlen``, which :func:`mlx_persona.train.batches.length_sorted_batches` sorts by."""

    def __init__(self, pairs: list[Pair]):
        self.pairs = pairs

    def __len__(self) -> int:
        return len(self.pairs)

    def __getitem__(self, i: int) -> Pair:
        return self.pairs[i]

    def itemlen(self, i: int) -> int:
        return len(self.pairs[i])


def collate(pairs: list[Pair], anchor: bool = False) -> tuple[mx.array, mx.array, mx.array, mx.array]:
    """tokens (2B, W) int32: chosen rows then rejected rows (then, with ``anchor``, B anchor rows:
    (3B, W)), zero-padded on the right; prompt_lengths (2B,) and lengths (2B,) int32: where each
    reply starts and each row ends; reply_pos (2B, R) int32: prompt_length + 0..R-1, the
    positions of the reply tokens (R = the longest reply, rounded up to 8; positions at or past
    ``lengths`` are padding)."""
    rows = [p.prompt + p.chosen for p in pairs] + [p.prompt + p.rejected for p in pairs]
    if anchor:
        rows += [p.prompt + p.anchor for p in pairs]
    starts = [len(p.prompt) for p in pairs] * (len(rows) // len(pairs))
    width = -(-max(len(r) for r in rows) // PAD_TO) * PAD_TO
    reply = -(-max(len(r) - s for r, s in zip(rows, starts)) // 8) * 8
    tokens = np.zeros((len(rows), width), np.int32)
    for i, r in enumerate(rows):
        tokens[i, : len(r)] = r
    reply_pos = np.array(starts, np.int32)[:, None] + np.arange(reply, dtype=np.int32)[None, :]
    return (
        mx.array(tokens),
        mx.array(starts, dtype=mx.int32),
        mx.array([len(r) for r in rows], dtype=mx.int32),
        mx.array(reply_pos),
    )


def fixed_batches(n: int, batch_size: int, lengths: list[int]) -> list[list[int]]:
    """Every index once, length-sorted, in batches of at most ``batch_size`` (validation, reference)."""
    order = sorted(range(n), key=lambda i: lengths[i])
    return [order[i : i + batch_size] for i in range(0, n, batch_size)]
