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
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path

import mlx.core as mx
import numpy as np

from mlx_persona.core import layout
from mlx_persona.core.runs import atomic_write_json
from mlx_persona.dpo.data import Pair, collate, fixed_batches
from mlx_persona.dpo.logps import sequence_logps

SAVE_SECONDS = 20.0  # write the partial cache at most this often


def reference_logps(
    model, splits: dict[str, list[Pair]], batch_size: int, out: Path, head, fingerprint: str, log: Callable = print
) -> dict[str, np.ndarray]:
    """{split: array (N, 4)}: summed reply log-probs of chosen and rejected, and their token counts.
    ``head``: :func:`mlx_persona.dpo.logps.output_head` of the model, or None."""
    path = Path(out) / layout.REFERENCE_CACHE
    cache = json.loads(path.read_text()) if path.is_file() else None
    if cache is None or cache.get("fingerprint") != fingerprint:
        cache = {"fingerprint": fingerprint, "splits": {s: {} for s in splits}}
    todo = sum(len(p) for p in splits.values()) - sum(len(v) for v in cache["splits"].values())
    if todo:
        log(f"reference log-probs: {todo} pairs to score (cached in {path})")
    tic, last_save, scored = time.perf_counter(), time.perf_counter(), 0
    for split, pairs in splits.items():
        done = cache["splits"].setdefault(split, {})
        for batch in fixed_batches(len(pairs), batch_size, [len(p) for p in pairs]):
            batch = [i for i in batch if str(i) not in done]
            if not batch:
                continue
            sums, counts = sequence_logps(model, *collate([pairs[i] for i in batch]), head=head)
            mx.eval(sums, counts)
            sums, counts, b = sums.tolist(), counts.tolist(), len(batch)
            for j, i in enumerate(batch):
                done[str(i)] = [sums[j], sums[b + j], counts[j], counts[b + j]]
            scored += b
            if time.perf_counter() - last_save > SAVE_SECONDS:
                atomic_write_json(path, cache)
                last_save = time.perf_counter()
    if scored:
        atomic_write_json(path, cache)
        log(f"reference log-probs: {scored} pairs in {time.perf_counter() - tic:.1f} s")
    return {
        s: np.array([cache["splits"][s][str(i)] for i in range(len(p))], np.float32).reshape(len(p), 4)
        for s, p in splits.items()
    }
