"""The pair generator's prompts and the replies its children wrote.

- Prompt: every cleaned sample minus its last reply (system line + context turns), with the
  person's real reply kept beside it (``real``; None when the sample ends on a user turn). Its
  ``id`` is a hash of the split, system line, context and real reply, so a re-run finds the
  replies it already has.
- Replies: one JSONL per model (``base.jsonl``, ``twin.jsonl``), one line per reply (a prompt
  the twin answers ``twin_samples`` times has that many lines, numbered by ``sample``); a child
  appends each finished reply at once, so a killed run leaves at most a torn last line.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from mlx_persona.core import layout
from mlx_persona.core.errors import PersonaError
from mlx_persona.pairs.config import SPLITS


def read_prompts(data_dir: Path, max_prompts: int | None = None) -> tuple[list[dict], list[dict]]:
    """Prompts from the cleaned splits, and the lines that could not be used (file:line, reason)."""
    prompts, bad = [], []
    for split in SPLITS:
        path = Path(data_dir) / layout.split_file(split)
        if not path.is_file():
            raise PersonaError(f"{path}: missing (run `mlx-persona clean` first)")
        taken = 0
        for lineno, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            if not line.strip():
                continue
            where = f"{path}:{lineno}"
            try:
                msgs = json.loads(line)["messages"]
                ok = isinstance(msgs, list) and all(isinstance(m.get("content"), str) and m.get("role") for m in msgs)
            except (ValueError, KeyError, TypeError, AttributeError):
                ok = False
            if not ok:
                bad.append({"source": where, "reason": "not a chat record with a 'messages' list"})
                continue
            system = msgs[0]["content"] if msgs and msgs[0]["role"] == "system" else None
            turns = msgs[1:] if system is not None else msgs
            real = turns[-1]["content"] if turns and turns[-1]["role"] == "assistant" else None
            context = turns[:-1] if real is not None else turns
            if not context or context[-1]["role"] != "user":
                bad.append({"source": where, "reason": "no user turn before the reply"})
                continue
            if max_prompts is not None and taken >= max_prompts:
                break
            key = json.dumps([split, system, context, real], ensure_ascii=False, sort_keys=True)
            prompts.append(
                {
                    "id": hashlib.sha256(key.encode()).hexdigest()[:16],
                    "split": split,
                    "source": where,
                    "system": system,
                    "messages": context,
                    "real": real,
                }
            )
            taken += 1
    return prompts, bad


def chat_messages(p: dict) -> list[dict]:
    return ([{"role": "system", "content": p["system"]}] if p.get("system") else []) + p["messages"]


def read_samples(path: Path) -> dict[str, list[dict]]:
    """Every reply a child already wrote, per prompt id in the order written; a torn last line (a
    killed child) is ignored."""
    done: dict[str, list[dict]] = {}
    if path.is_file():
        for line in path.read_text(encoding="utf-8").splitlines():
            try:
                r = json.loads(line)
                done.setdefault(r["id"], []).append(r)
            except (ValueError, KeyError, TypeError):
                continue
    return done


def last_replies(samples: dict[str, list[dict]]) -> dict[str, dict]:
    """One reply per prompt of :func:`read_samples`' result: the last written for it."""
    return {i: replies[-1] for i, replies in samples.items()}


def read_replies(path: Path) -> dict[str, dict]:
    """One reply per prompt, the last a child wrote for it (see :func:`read_samples`)."""
    return last_replies(read_samples(path))
