"""BatchOrder hands out exactly the batches mlx_lm's iterate_batches would, and can resume."""

from __future__ import annotations

import types

import numpy as np
from mlx_lm import load
from mlx_lm.tuner.datasets import CacheDataset, load_dataset
from mlx_lm.tuner.trainer import iterate_batches
from sft_helpers import write_chat_data

from mlx_persona.train.batches import BatchOrder


def datasets(model_dir, data_dir):
    _, tokenizer = load(str(model_dir))
    args = types.SimpleNamespace(data=str(data_dir), train=True, test=False, mask_prompt=True, hf_dataset=False)
    train, valid, _ = load_dataset(args, tokenizer)
    return CacheDataset(train), CacheDataset(valid)


def same(a, b):
    assert all(np.array_equal(np.array(x), np.array(y)) for x, y in zip(a, b))


def test_same_batches_as_mlx_lm_with_validation_in_between(tiny_model_dir, tmp_path):
    train, valid = datasets(tiny_model_dir, write_chat_data(tmp_path, n_train=9, n_valid=6))
    seed, bs, max_len = 3, 2, 16  # 4 batches an epoch, some sequences truncated

    np.random.seed(seed)  # what `mlx_lm lora` does, then train() pulls and validates in turn
    theirs_train = iterate_batches(train, bs, max_len, loop=True)
    theirs = []
    for step in range(11):
        theirs.append(next(theirs_train))
        if step in (0, 4, 8):
            theirs.extend(iterate_batches(valid, bs, max_len))

    order = BatchOrder(train, bs, max_len, seed)
    ours = []
    for step in range(11):
        # we validate after the previous step, mlx_lm after pulling this step's batch: the RNG
        # draws come in the same sequence all the same
        evals = list(order.eval_batches(valid, bs, max_len)) if step in (0, 4, 8) else []
        ours.append(order.next_batch())
        ours.extend(evals)
    assert len(ours) == len(theirs)
    for (ta, tl), (oa, ol) in zip(theirs, ours):
        same([ta, tl], [oa, ol])


def test_state_round_trip_continues_the_same_order(tiny_model_dir, tmp_path):
    train, _ = datasets(tiny_model_dir, write_chat_data(tmp_path, n_train=7))
    a = BatchOrder(train, 2, 64, seed=1)
    for _ in range(5):
        a.next_batch()
    b = BatchOrder(train, 2, 64, seed=99)
    b.load_state(a.state())
    for _ in range(8):
        same(a.next_batch(), b.next_batch())
