"""A training child as one rank of several (``mlx.launch``, :mod:`mlx_persona.train.launch`).

Data parallel, as mlx_lm's trainer does it: every rank holds the whole model, draws the same
global batch of B rows from the same resumable order, keeps rows ``rank, rank + N, ...`` (B/N
each), and the gradients are averaged over the N ranks before the update (``all_sum / N``), so
every rank applies the same update and the adapters stay identical.

    g = 1/N · Σ_r ∇ L_r        L_r: rank r's loss on its B/N rows (a mean over them)

For DPO (a mean over pairs) this is the one-process gradient of the whole batch exactly. For
SFT, mlx_lm's loss is a mean over a rank's *tokens*: equal to one process when the ranks score
the same number of tokens, otherwise the mean of the ranks' means.

Only rank 0 writes the stage folder. Rank r > 0 works in ``<out>/ranks/<r>``, a copy of the
stage folder taken when it starts (so a resumed rank reads rank 0's checkpoints); its status
there is what the parent reads to say which rank died. A rank stopped by ``mlx.launch`` because
another one failed marks itself ``terminated`` before it exits.

What the ranks must agree on beyond the gradients (the DPO reference cache, the validation
figures, the kept checkpoint) travels through :func:`sum_over_ranks`: each rank fills its own
entries of a zero array, and the element-wise sum over the ranks is every entry, on every rank.
"""

from __future__ import annotations

import os
import shutil
import signal
from pathlib import Path

from mlx_persona.core import layout
from mlx_persona.core.runs import atomic_write_json

RANKS_DIR = "ranks"  # under the stage folder: the other ranks' scratch folders


def env_rank() -> int:
    """This process's rank as the launcher set it (no MLX needed): 0 when not launched."""
    return int(os.environ.get("MLX_RANK") or os.environ.get("OMPI_COMM_WORLD_RANK") or 0)


def rank_and_size() -> tuple[int, int]:
    """This process's rank and the world size (0, 1 when not launched by ``mlx.launch``)."""
    if "MLX_RANK" not in os.environ and "OMPI_COMM_WORLD_RANK" not in os.environ:
        return 0, 1
    import mlx.core as mx

    group = mx.distributed.init()
    return group.rank(), group.size()


def rank_folder(out: Path, rank: int) -> Path:
    """Where ``rank`` writes: the stage folder for rank 0, else a fresh copy of it."""
    out = Path(out)
    if rank == 0:
        return out
    mine = out / RANKS_DIR / str(rank)
    if mine.exists():
        shutil.rmtree(mine)
    shutil.copytree(out, mine, ignore=shutil.ignore_patterns(RANKS_DIR, "*.log", layout.STATUS))
    return mine


def rank_status(out: Path, rank: int) -> Path:
    return Path(out) / layout.STATUS if rank == 0 else Path(out) / RANKS_DIR / str(rank) / layout.STATUS


def mark_terminated_on_sigterm(out: Path, rank: int) -> None:
    """``mlx.launch`` stops the other ranks with SIGTERM when one fails: say so in our status
    (the parent then names the rank that failed first, not this one) and exit."""

    def handler(signum, frame):
        atomic_write_json(
            rank_status(out, rank), {"state": "terminated", "rank": rank, "error": "stopped: another rank failed"}
        )
        os._exit(128 + signum)

    signal.signal(signal.SIGTERM, handler)


def shard(indices: list[int], rank: int, size: int) -> list[int]:
    """This rank's rows of a global batch (mlx_lm's stride: rows rank, rank + size, ...)."""
    return list(indices)[rank::size]


def sum_over_ranks(values, size: int):
    """The element-wise sum of every rank's ``values`` (a NumPy array of the same shape on every
    rank), as ``mx.distributed.all_sum`` returns it to all of them; every rank must call it, in
    the same order. One process: ``values`` itself, untouched.

    The sum runs in float32: an entry that one rank fills and the others leave at zero comes back
    exactly (x + 0 = x), as do counts below 2^24; sums of fractions gain float32 rounding (~1e-7
    relative)."""
    if size == 1:
        return values
    import mlx.core as mx
    import numpy as np

    return np.array(mx.distributed.all_sum(mx.array(np.asarray(values, np.float32))))
