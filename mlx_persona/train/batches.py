"""The training data order, as mlx_lm draws it, but with state we can save and restore.

mlx_lm's ``iterate_batches`` sorts examples by ``CacheDataset.itemlen`` (for chat JSONL that
is the raw record's key count, so in practice file order), cuts them into fixed batches, and
shuffles the batch order once per epoch with NumPy's *global* RNG; each validation pass draws one
more permutation from that same global RNG. Nothing of that can be checkpointed: a generator's
position and the global RNG die with the process.

:class:`BatchOrder` keeps the same recipe with the state in the open: one ``RandomState(seed)``
(what ``np.random.seed(seed)`` seeds globally in ``mlx_lm lora``), the current epoch's
permutation, and a cursor into it. Training batches and validation passes draw from it in the
same sequence mlx_lm's do, so a run with the same seed sees the same batches as
``mlx_lm lora``, and :meth:`state` / :meth:`load_state` make the order resumable exactly.

One difference in *timing* only: the next epoch's permutation is drawn as soon as the last batch
of an epoch is handed out (mlx_lm draws it when the next batch is requested, which is before the
validation that precedes that step). The draw sequence is the same; ours has no state hidden in
a suspended generator.
"""

from __future__ import annotations

from collections.abc import Iterator

import mlx.core as mx
import numpy as np

PAD_MULTIPLE = 32  # mlx_lm pads each batch to 1 + a multiple of 32 tokens


def length_sorted_batches(dataset, batch_size: int) -> list[list[int]]:
    """Example indices sorted as mlx_lm sorts them, cut into full batches (remainder dropped)."""
    if len(dataset) < batch_size:
        raise ValueError(f"need at least batch_size={batch_size} examples, have {len(dataset)}")
    order = sorted(range(len(dataset)), key=dataset.itemlen)
    return [order[i : i + batch_size] for i in range(0, len(order) - batch_size + 1, batch_size)]


def collate(examples: list, max_seq_length: int, positions: bool = False) -> tuple:
    """Pad (tokens, prompt_offset) pairs into a token matrix and a (offset, length) matrix; with
    ``positions``, also the scored positions of each row (:func:`scored_positions`)."""
    tokens = [list(t) for t, _ in examples]
    offsets = [int(o) for _, o in examples]
    longest = max(len(t) for t in tokens)
    width = min(1 + PAD_MULTIPLE * -(-longest // PAD_MULTIPLE), max_seq_length)
    matrix = np.zeros((len(tokens), width), np.int32)
    lengths = []
    for row, seq in enumerate(tokens):
        seq = seq[:max_seq_length]
        matrix[row, : len(seq)] = seq
        lengths.append(len(seq))
    out = (mx.array(matrix), mx.array(list(zip(offsets, lengths))))
    return (*out, mx.array(scored_positions(offsets, lengths, width))) if positions else out


def scored_positions(offsets: list[int], lengths: list[int], width: int) -> np.ndarray:
    """(rows, R) int32: the token positions a row's loss scores, as mlx_lm's ``default_loss``
    masks them (``offset <= p <= length``, p from 1 to width - 1; p = length is the first pad of
    a short row, which mlx_lm counts), then zeros. 0 is never a target, so it marks the padding.
    R is the longest row's count rounded up to a multiple of :data:`PAD_MULTIPLE` (at most
    width - 1), so that few shapes reach the compiled step."""
    spans = [range(max(o, 1), min(n, width - 1) + 1) for o, n in zip(offsets, lengths)]
    longest = max((len(s) for s in spans), default=0)
    r = max(1, min(PAD_MULTIPLE * -(-longest // PAD_MULTIPLE), width - 1))
    out = np.zeros((len(spans), r), np.int32)
    for row, span in enumerate(spans):
        out[row, : len(span)] = list(span)
    return out


class BatchOrder:
    """Shuffled, length-bucketed batches with a checkpointable position."""

    def __init__(self, train_set, batch_size: int, max_seq_length: int, seed: int):
        self.train_set = train_set
        self.batch_size = batch_size
        self.max_seq_length = max_seq_length
        self.rng = np.random.RandomState(seed)
        self.batches = length_sorted_batches(train_set, batch_size)
        self.epoch = 0
        self.cursor = 0
        self.permutation = self.rng.permutation(len(self.batches))  # epoch 0, drawn up front
        self.rank, self.size = 0, 1  # one of `size` ranks keeps rows rank, rank + size, ... (train/ranks.py)
        self.positions = False  # batches also carry scored_positions (the SFT loss on reply positions)

    def next_indices(self) -> list[int]:
        """The next batch's example indices; draws the next epoch's order when this one is used up."""
        chosen = self.batches[self.permutation[self.cursor]]
        self.cursor += 1
        if self.cursor == len(self.permutation):
            self.epoch += 1
            self.cursor = 0
            self.permutation = self.rng.permutation(len(self.batches))
        return list(chosen)

    def next_batch(self) -> tuple:
        """The next training batch, collated for mlx_lm's trainer."""
        rows = self.next_indices()[self.rank :: self.size]
        return collate([self.train_set[j] for j in rows], self.max_seq_length, self.positions)

    def train_batches(self, *_, **__) -> Iterator[tuple]:
        """An endless batch stream, shaped as mlx_lm's ``iterate_batches`` for ``train()``."""
        while True:
            yield self.next_batch()

    def eval_batches(self, dataset, batch_size: int, max_seq_length: int, **_) -> Iterator:
        """One shuffled pass over ``dataset`` for ``evaluate()``; one permutation from our RNG."""
        batches = length_sorted_batches(dataset, batch_size)
        for i in self.rng.permutation(len(batches)):
            yield collate([dataset[j] for j in batches[i]], max_seq_length, self.positions)

    # ------------------------------------------------------------------ checkpointing
    def state(self) -> dict:
        """JSON-able: RNG state, epoch, cursor and the current permutation."""
        name, keys, pos, has_gauss, gauss = self.rng.get_state()
        return {
            "rng": {
                "name": name,
                "keys": keys.tolist(),
                "pos": int(pos),
                "has_gauss": int(has_gauss),
                "cached_gaussian": float(gauss),
            },
            "epoch": self.epoch,
            "cursor": self.cursor,
            "permutation": self.permutation.tolist(),
            "batches": len(self.batches),
        }

    def load_state(self, state: dict) -> None:
        if state["batches"] != len(self.batches):
            raise ValueError("the training data changed since the checkpoint")
        r = state["rng"]
        self.rng.set_state(
            (r["name"], np.array(r["keys"], dtype=np.uint32), r["pos"], r["has_gauss"], r["cached_gaussian"])
        )
        self.epoch = state["epoch"]
        self.cursor = state["cursor"]
        self.permutation = np.array(state["permutation"], dtype=np.int64)
