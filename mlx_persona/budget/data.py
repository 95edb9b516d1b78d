"""The data's part of the budget: how long the longest training batch really is.

The worst-case estimate pads every sequence to ``max_seq_length``; real chat samples are far
shorter, and memory follows the batch the trainer actually builds. This module rebuilds that
batch from the data and the model's tokenizer alone (no MLX, no weights), as the trainers do:

- **SFT** (mlx_lm's ``iterate_batches`` over a ``CacheDataset``): records sorted by
  ``itemlen`` (a chat record's key count: in practice file order, a stable sort), cut into full
  batches of ``batch_size`` (the remainder is dropped), each padded to ``1 + 32·⌈L/32⌉`` tokens
  (L = its longest sequence), capped at ``max_seq_length``; the model sees that width minus one.
- **DPO** (:mod:`mlx_persona.dpo.data`): pairs sorted by ``len(prompt) + max(len(chosen),
  len(rejected))`` in tokens, cut the same way; a pair longer than ``max_seq_length`` loses its
  oldest prompt tokens, and one whose reply takes over half of it is skipped. With
  ``share_prompt`` each pair runs its prompt once and both replies on top (P + 2R positions);
  otherwise a (2B, W) matrix. Only reply positions reach the output head. Before training, the
  reference pass scores every train and validation pair, ``reference_batch_size`` pairs per
  (2B, W) matrix, with no gradients: its widest batch is the one that holds the longest pair.

Tokenizing a large export is slow, so only the longest records by characters are tokenized
(:data:`TOKENIZE_LONGEST`): the longest batch is the one that holds the longest record, and a
record with fewer characters than hundreds of others rarely has more tokens than all of them.
"""

from __future__ import annotations

import functools
import json
from dataclasses import asdict, dataclass, replace
from pathlib import Path

from mlx_persona.core import layout
from mlx_persona.core.errors import PersonaError

SFT_PAD = 32  # mlx_lm pads a batch to 1 + a multiple of 32 tokens
DPO_PAD = 8  # the DPO collate rounds widths (and reply widths) up to a multiple of 8
TOKENIZE_LONGEST = 256  # records tokenized, the longest by characters


@dataclass(frozen=True)
class DataShape:
    """Per training sequence (DPO: per chosen or rejected row) of the longest batch."""

    stage: str
    examples: int  # usable training records
    positions: float  # token positions each row runs through the model (its share of the batch)
    keys: int  # attention key length (the widest row)
    logits: int  # positions per row that reach the output head
    longest: int  # the longest record in tokens (DPO: prompt + longer reply)
    source: str  # the file and tokenizer it was read with
    # DPO's reference pass (train and validation pairs, no gradients), its widest batch: the
    # padded width W and reply width R of each of its rows (rounded up to 8); 0: not measured
    reference_keys: int = 0
    reference_logits: int = 0

    def at(self, max_seq_length: int) -> DataShape:
        """The same data under a shorter ``max_seq_length`` (the fit solver's sequence step):
        rows that are longer are cut to it (a reply keeps at most half of it)."""
        if max_seq_length >= max(self.keys, self.reference_keys):
            return self
        ref = {
            "reference_keys": min(self.reference_keys, pad_width(max_seq_length)),
            "reference_logits": min(self.reference_logits, pad_width(max_seq_length // 2)),
        }
        if max_seq_length >= self.keys:
            return replace(self, **ref)
        f = max_seq_length / self.keys
        return replace(
            self,
            positions=self.positions * f,
            keys=max_seq_length,
            logits=min(self.logits, max_seq_length),
            **ref,
        )

    def to_dict(self) -> dict:
        d = asdict(self)
        d["positions"] = round(self.positions, 1)
        return d


def pad_width(n: int) -> int:
    """``n`` tokens rounded up as the DPO collate pads a width (a multiple of :data:`DPO_PAD`)."""
    return -(-n // DPO_PAD) * DPO_PAD


def _tokenizer(model_dir: Path):
    return _load_tokenizer(str(Path(model_dir).resolve()))


@functools.lru_cache(maxsize=4)  # the runner checks every training stage: load each tokenizer once
def _load_tokenizer(model_dir: str):
    try:
        from transformers import AutoTokenizer

        return AutoTokenizer.from_pretrained(model_dir)
    except Exception as e:  # a folder without a tokenizer: the caller falls back to the worst case
        raise PersonaError(f"{model_dir}: cannot load its tokenizer to measure the data ({type(e).__name__})") from None


def _ids(x) -> list:
    """Token ids from apply_chat_template, whichever form this transformers returns."""
    if hasattr(x, "keys") and "input_ids" in x.keys():
        x = x["input_ids"]
    return list(x)


def _records(path: Path) -> list[tuple[int, dict]]:
    """(line number, record) for each JSON object line; bad lines are the stage's to report."""
    if not path.is_file():
        raise PersonaError(f"{path}: missing; cannot measure the data")
    out = []
    for n, line in enumerate(path.read_text(encoding="utf-8", errors="replace").splitlines(), 1):
        try:
            rec = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(rec, dict):
            out.append((n, rec))
    return out


def _longest_first(items: list, key) -> list:
    return sorted(items, key=key, reverse=True)[:TOKENIZE_LONGEST]


def sft_shape(tokenizer, train: Path, batch_size: int, max_seq_length: int) -> DataShape:
    """The longest batch of mlx_lm's SFT batching over ``train`` (chat JSONL)."""
    recs = [r for _, r in _records(train) if isinstance(r.get("messages"), list)]
    if len(recs) < batch_size:
        raise PersonaError(f"{train}: {len(recs)} conversations, fewer than batch_size={batch_size}")
    order = sorted(range(len(recs)), key=lambda i: len(recs[i]))  # CacheDataset.itemlen: key count
    used = order[: len(order) // batch_size * batch_size]  # full batches only
    chars = lambda i: sum(len(str(m.get("content", ""))) for m in recs[i]["messages"])  # noqa: E731
    longest = max(
        len(_ids(tokenizer.apply_chat_template(recs[i]["messages"], tools=recs[i].get("tools"), return_dict=False)))
        for i in _longest_first(used, chars)
    )
    width = min(1 + SFT_PAD * -(-longest // SFT_PAD), max_seq_length) - 1  # inputs = batch[:, :-1]
    return DataShape("sft", len(recs), width, width, width, longest, f"{train} ({type(tokenizer).__name__})")


def _pair_messages(rec: dict) -> tuple[list, str, str] | None:
    """(messages, chosen, rejected) as dpo.data reads a pairs line; None for a line it skips."""
    c, r = rec.get("chosen"), rec.get("rejected")
    if not (isinstance(c, str) and isinstance(r, str) and c.strip() and r.strip() and c.strip() != r.strip()):
        return None
    msgs = rec.get("messages")
    if msgs is None:
        if not isinstance(rec.get("prompt"), str) or not rec["prompt"].strip():
            return None
        msgs = [{"role": "user", "content": rec["prompt"]}]
    if not isinstance(msgs, list) or not msgs:
        return None
    system = rec.get("system")
    head = [{"role": "system", "content": system}] if isinstance(system, str) and system else []
    if head and isinstance(msgs[0], dict) and msgs[0].get("role") == "system":
        head = []
    return head + msgs, c, r


def _pair_tokens(tokenizer, path: Path, max_seq_length: int) -> tuple[int, list[tuple[int, tuple[int, int, int]]]]:
    """(usable pairs in ``path``, [(index, (prompt, chosen, rejected) tokens)] of its longest pairs
    by characters, as the stage fits them to ``max_seq_length``; skipped pairs left out)."""
    recs = [p for _, r in _records(path) if (p := _pair_messages(r))]
    eos = [tokenizer.eos_token_id]

    def tokens(rec) -> tuple[int, int, int] | None:
        msgs, c, r = rec
        p = len(_ids(tokenizer.apply_chat_template(msgs, add_generation_prompt=True, tokenize=True)))
        lc, lr = (len(tokenizer.encode(t.strip(), add_special_tokens=False) + eos) for t in (c, r))
        if p + max(lc, lr) > max_seq_length:
            if max(lc, lr) > max_seq_length // 2:
                return None  # skipped by the stage
            p = max_seq_length - max(lc, lr)
        return p, lc, lr

    def chars(i: int) -> int:
        msgs, c, r = recs[i]
        return sum(len(str(m.get("content", ""))) for m in msgs if isinstance(m, dict)) + max(len(c), len(r))

    return len(recs), [(i, t) for i in _longest_first(list(range(len(recs))), chars) if (t := tokens(recs[i]))]


def reference_batch(measured: list[tuple[int, tuple[int, int, int]]], reference_batch_size: int) -> tuple[int, int]:
    """(W, R) of the reference pass's widest batch over one split's measured pairs: the batch
    that holds the longest pair (the last of the length-sorted batches), counted as
    ``reference_batch_size`` pairs of the longest ones."""
    top = sorted(measured, key=lambda it: (it[1][0] + max(it[1][1], it[1][2]), it[0]))[-reference_batch_size:]
    if not top:
        return 0, 0
    width = max(p + max(c, r) for _, (p, c, r) in top)
    return pad_width(width), pad_width(max(max(c, r) for _, (_, c, r) in top))


def dpo_shape(
    tokenizer,
    train: Path,
    batch_size: int,
    max_seq_length: int,
    share_prompt: bool = True,
    valid: Path | None = None,
    reference_batch_size: int = 0,
) -> DataShape:
    """The longest batch of the DPO stage's batching over ``train`` (pairs JSONL); with
    ``reference_batch_size``, the widest batch of the reference pass over ``train`` and ``valid``."""
    n, measured = _pair_tokens(tokenizer, train, max_seq_length)
    if n < batch_size:
        raise PersonaError(f"{train}: {n} pairs, fewer than batch_size={batch_size}")
    if not measured:
        raise PersonaError(f"{train}: no pair fits max_seq_length={max_seq_length}")
    # the stage sorts pairs by length (ties in file order) and drops the (len mod B) longest:
    # the longest batch is the B pairs just below them (among the measured ones)
    measured.sort(key=lambda it: (it[1][0] + max(it[1][1], it[1][2]), it[0]))
    n_drop = n % batch_size
    kept = [t for _, t in measured[: len(measured) - n_drop]] or [measured[0][1]]
    batch = kept[-batch_size:]
    longest = max(p + max(c, r) for p, c, r in batch)
    if share_prompt:  # per pair: prompt once, both replies on top
        positions = sum(p + 2 * max(c, r) for p, c, r in batch) / (2 * len(batch))
        keys = longest
        logits = max(max(c, r) for _, c, r in batch)
    else:  # one (2B, W) matrix; the head sees the (rounded) reply width only
        keys = pad_width(max(p + max(c, r) for p, c, r in batch))
        positions = keys - 1
        logits = pad_width(max(max(c, r) for _, c, r in batch))
    ref = (0, 0)
    if reference_batch_size:
        splits = [measured] + ([_pair_tokens(tokenizer, valid, max_seq_length)[1]] if valid and valid.is_file() else [])
        ref = tuple(max(dims) for dims in zip(*(reference_batch(m, reference_batch_size) for m in splits)))
    source = f"{train} ({type(tokenizer).__name__})"
    return DataShape("dpo", n, positions, keys, logits, longest, source, *ref)


REFERENCE_BATCH_SIZE = 8  # the dpo block's default reference_batch_size, for settings that lack one


def reference_pairs(cfg) -> int:
    """Pairs per batch of the DPO reference pass under ``cfg`` (0: SimPO has none)."""
    if getattr(cfg, "loss_type", None) == "simpo":
        return 0
    return getattr(cfg, "reference_batch_size", REFERENCE_BATCH_SIZE)


def data_shape(model_dir: Path, data_dir: Path, stage: str, cfg) -> DataShape:
    """The longest batch of ``stage`` (sft or dpo) over ``data_dir``/train.jsonl with ``cfg``'s
    batch size and sequence length, tokenized with ``model_dir``'s tokenizer; for DPO also the
    reference pass's widest batch over train.jsonl and valid.jsonl (``cfg.reference_batch_size``
    pairs; none for a reference-free loss)."""
    tok = _tokenizer(Path(model_dir))
    train = Path(data_dir) / layout.TRAIN_SPLIT
    if stage == "dpo":
        return dpo_shape(
            tok,
            train,
            cfg.batch_size,
            cfg.max_seq_length,
            getattr(cfg, "share_prompt", True),
            Path(data_dir) / layout.VALID_SPLIT,
            reference_pairs(cfg),
        )
    return sft_shape(tok, train, cfg.batch_size, cfg.max_seq_length)
