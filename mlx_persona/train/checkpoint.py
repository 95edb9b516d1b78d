"""Resumable SFT checkpoints: everything a run needs to continue as if it never stopped.

A checkpoint is a folder ``checkpoints/<iteration>/`` with

- ``adapters.safetensors``: the trainable weights (LoRA/DoRA matrices, or whole layers for full);
- ``optimizer.safetensors``: the optimizer state, flattened (Adam's moments, ``step``, which is
  also the learning-rate schedule's position, and the current ``learning_rate``);
- ``state.json``: the iteration, MLX's PRNG key (dropout), the data order (see
  :mod:`mlx_persona.train.batches`), early-stopping bookkeeping, elapsed time and fingerprints of the
  config and data it was made with.

Each folder is built aside and renamed into place (:func:`mlx_persona.core.runs.atomic_dir`); only
then does ``checkpoint.json`` (itself written atomically) point at it, and older folders are
removed. A ``kill -9`` at any instant leaves the pointer on a complete checkpoint.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import mlx.core as mx
from mlx.utils import tree_flatten, tree_map_with_path

from mlx_persona.core import layout
from mlx_persona.core.runs import atomic_dir, atomic_write_json


def save_weights(path: Path, weights: dict) -> None:
    """``mx.save_safetensors`` to a temporary name, then rename over ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.stem}.{os.getpid()}.tmp.safetensors")
    mx.save_safetensors(str(tmp), weights)
    os.replace(tmp, path)


def trainable_weights(model) -> dict:
    return dict(tree_flatten(model.trainable_parameters()))


def rng_key() -> list[int]:
    """MLX's global PRNG key as two ints (``mx.random.seed`` can set it back exactly)."""
    return [int(x) for x in mx.random.state[0].tolist()]


def set_rng_key(key: list[int]) -> None:
    hi, lo = key
    mx.random.seed((hi << 32) | lo)  # seed(s) sets the key to [s >> 32, s & 0xffffffff]


def save_checkpoint(out: Path, iteration: int, model, optimizer, state: dict) -> Path:
    """Write checkpoint ``iteration`` under ``out`` and point ``checkpoint.json`` at it."""
    out = Path(out)
    folder = out / layout.CHECKPOINTS_DIR / f"{iteration:07d}"
    with atomic_dir(folder, overwrite=True) as tmp:
        mx.save_safetensors(str(tmp / layout.ADAPTER_WEIGHTS), trainable_weights(model))
        mx.save_safetensors(str(tmp / layout.CHECKPOINT_OPTIMIZER), dict(tree_flatten(optimizer.state)))
        full = {"iteration": iteration, "rng_key": rng_key(), **state}
        (tmp / layout.CHECKPOINT_STATE).write_text(json.dumps(full, indent=1))
    atomic_write_json(out / layout.CHECKPOINT, {"latest": folder.name, "iteration": iteration})
    for old in (out / layout.CHECKPOINTS_DIR).iterdir():
        if old.is_dir() and old.name != folder.name and not old.name.startswith("."):
            shutil.rmtree(old, ignore_errors=True)
    return folder


def latest_checkpoint(out: Path) -> Path | None:
    """The folder ``checkpoint.json`` points at, or None when the run has none yet."""
    pointer = Path(out) / layout.CHECKPOINT
    if not pointer.is_file():
        return None
    folder = Path(out) / layout.CHECKPOINTS_DIR / json.loads(pointer.read_text())["latest"]
    return folder if (folder / layout.CHECKPOINT_STATE).is_file() else None


def read_state(folder: Path) -> dict:
    return json.loads((Path(folder) / layout.CHECKPOINT_STATE).read_text())


def restore_checkpoint(folder: Path, model, optimizer) -> dict:
    """Load weights, optimizer state and the PRNG key from ``folder``; return its ``state.json``.

    The model must already carry its LoRA/DoRA layers (same config), so every saved tensor has
    a place; the optimizer is initialised on the trainable parameters and its leaves replaced.
    """
    folder = Path(folder)
    weights = mx.load(str(folder / layout.ADAPTER_WEIGHTS))
    expected = trainable_weights(model)
    if set(weights) != set(expected):
        raise ValueError(f"checkpoint {folder} does not match the model's trainable weights")
    model.load_weights(list(weights.items()), strict=False)

    saved = mx.load(str(folder / layout.CHECKPOINT_OPTIMIZER))
    optimizer.init(model.trainable_parameters())

    def take(path, fresh):
        if path not in saved:
            raise ValueError(f"checkpoint {folder} has no optimizer state for {path}")
        return saved[path].astype(fresh.dtype) if fresh.dtype != saved[path].dtype else saved[path]

    optimizer.state = tree_map_with_path(take, optimizer.state)
    state = read_state(folder)
    set_rng_key(state["rng_key"])
    mx.eval(model.parameters(), optimizer.state)
    return state
