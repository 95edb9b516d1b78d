"""The reference policy's log-probabilities, computed once and cached in the stage folder.

DPO compares the policy with a frozen reference. Ours is the fused SFT model itself *before* the
fresh adapter is attached (equivalently: with the adapter at zero, since a new LoRA's B matrix is
zero). Its log-probabilities never change, so we compute them once, batched and without
gradients, for every train and validation pair, and keep them in ``reference.json``:

    {"fingerprint": "...", "splits": {"train": {"<pair index>": [chosen_sum, rejected_sum,
                                                                  chosen_tokens, rejected_tokens]}, ...}}

Training then needs no second model in memory and two forward passes per step (chosen and
rejected, in one batch) instead of four. The file is rewritten atomically every few batches, so
a killed run resumes the cache where it stopped; a different model, pairs file or
``max_seq_length`` changes the fingerprint and the cache is rebuilt.

Across N ranks (:mod:`mlx_persona.train.ranks`) the pass is split, not repeated. Rank 0's cache
is the one that counts: its rows go to every rank first, so all of them skip the same pairs. The
pairs still to score are cut into the same length-sorted batches as in one process, and taken
in rounds of N batches: in each round rank r scores batch r (adjacent batches have nearly the
same length, so the ranks finish a round together), then every rank receives the round's rows
(:func:`~mlx_persona.train.ranks.sum_over_ranks`: each rank fills its own rows of a zero
array). Each rank thus scores about 1/N of the pairs and ends with the whole cache, whose values
are those of one process (same batches, same padding). Only rank 0 writes ``reference.json``,
with every rank's rows, so a resume after any rank died reuses them all.
"""

from __future__ import annotations

import itertools
import json
import time
from collections.abc import Callable
from pathlib import Path

import mlx.core as mx
import numpy as np

from mlx_persona.core import layout
from mlx_persona.core.runs import atomic_write_json
from mlx_persona.dpo.data import Pair, collate, fixed_batches
from mlx_persona.dpo.logps import pair_logps, sequence_logps
from mlx_persona.train.ranks import sum_over_ranks

SAVE_SECONDS = 20.0  # write the partial cache at most this often


def reference_logps(
    model,
    splits: dict[str, list[Pair]],
    batch_size: int,
    out: Path,
    head,
    fingerprint: str,
    log: Callable = print,
    rank: int = 0,
    size: int = 1,
    shared: bool = False,
) -> tuple[dict[str, np.ndarray], int]:
    """({split: array (N, 4)}, pairs this rank scored): the summed reply log-probs of chosen and
    rejected and their token counts, for every pair, on every rank. ``head``:
    :func:`mlx_persona.models.head.output_head` of the model, or None; ``rank`` of ``size``: this
    process's share (every rank must call this, with the same pairs); ``shared``: each pair's prompt
    runs once for both replies (:func:`~mlx_persona.dpo.logps.pair_logps`, as training scores
    them), else a padded batch of full rows."""
    path = Path(out) / layout.REFERENCE_CACHE
    cache = json.loads(path.read_text()) if rank == 0 and path.is_file() else None
    if cache is None or cache.get("fingerprint") != fingerprint:
        cache = {"fingerprint": fingerprint, "splits": {s: {} for s in splits}}
    if size > 1:
        cache = agree_on_cache(cache, splits, rank, size)
    todo = sum(len(p) for p in splits.values()) - sum(len(v) for v in cache["splits"].values())
    if todo and rank == 0:
        over = f" over {size} ranks" if size > 1 else ""
        log(f"reference log-probs: {todo} pairs to score{over} (cached in {path})")
    tic, last_save, scored, added = time.perf_counter(), time.perf_counter(), 0, 0
    for split, pairs in splits.items():
        done = cache["splits"].setdefault(split, {})
        batches = [
            b
            for batch in fixed_batches(len(pairs), batch_size, [len(p) for p in pairs])
            if (b := unscored(batch, done))
        ]
        for start in range(0, len(batches), size):  # a round: batch start + r is rank r's
            round_ = batches[start : start + size]
            rows = np.zeros((sum(len(b) for b in round_), 4), np.float32)
            if rank < len(round_):
                mine = round_[rank]
                at = sum(len(b) for b in round_[:rank])
                rows[at : at + len(mine)] = score(model, [pairs[i] for i in mine], head, shared)
                scored += len(mine)
            rows = sum_over_ranks(rows, size)
            for i, row in zip(itertools.chain(*round_), rows):
                done[str(i)] = [float(row[0]), float(row[1]), int(row[2]), int(row[3])]
            added += len(rows)
            if rank == 0 and time.perf_counter() - last_save > SAVE_SECONDS:
                atomic_write_json(path, cache)
                last_save = time.perf_counter()
    if added and rank == 0:
        atomic_write_json(path, cache)
    if scored:
        who = f"rank {rank} of {size} scored {scored} of {added} pairs" if size > 1 else f"{scored} pairs"
        log(f"reference log-probs: {who} in {time.perf_counter() - tic:.1f} s")
    refs = {
        s: np.array([cache["splits"][s][str(i)] for i in range(len(p))], np.float32).reshape(len(p), 4)
        for s, p in splits.items()
    }
    return refs, scored


def unscored(batch: list[int], done: dict) -> list[int]:
    return [i for i in batch if str(i) not in done]


def score(model, pairs: list[Pair], head, shared: bool = False) -> np.ndarray:
    """(B, 4) float32: chosen sum, rejected sum, chosen tokens, rejected tokens of each pair."""
    if shared:
        scored = [pair_logps(model, head, p.prompt, p.chosen, p.rejected) for p in pairs]
        sums, counts = mx.concatenate([s for s, _ in scored]), mx.concatenate([c for _, c in scored])
        mx.eval(sums, counts)
        sums, counts = np.array(sums).reshape(-1, 2), np.array(counts).reshape(-1, 2)
        return np.stack([sums[:, 0], sums[:, 1], counts[:, 0], counts[:, 1]], axis=1).astype(np.float32)
    sums, counts = sequence_logps(model, *collate(pairs), head=head)
    mx.eval(sums, counts)
    b, sums, counts = len(pairs), np.array(sums), np.array(counts)
    return np.stack([sums[:b], sums[b:], counts[:b], counts[b:]], axis=1)


def agree_on_cache(cache: dict, splits: dict[str, list[Pair]], rank: int, size: int) -> dict:
    """Rank 0's cache on every rank: rank 0 fills (1, row) for each cached pair, the others
    zeros, and the sum over the ranks is rank 0's rows. The cached floats came from float32, so
    they travel exactly."""
    agreed = {"fingerprint": cache["fingerprint"], "splits": {}}
    for split, pairs in splits.items():
        mine = cache["splits"].get(split, {})
        rows = np.zeros((len(pairs), 5), np.float32)
        for key, row in mine.items():
            if int(key) < len(pairs):
                rows[int(key)] = [1.0, *row]
        rows = sum_over_ranks(rows, size)
        agreed["splits"][split] = (
            dict(mine)
            if rank == 0
            else {str(i): [float(r[1]), float(r[2]), int(r[3]), int(r[4])] for i, r in enumerate(rows) if r[0] > 0}
        )
    return agreed
