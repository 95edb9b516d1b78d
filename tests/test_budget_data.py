"""The budget on the data: the longest batch it predicts is the one the trainers build, the
data figure decides the preflight and the fit, and a run whose data is not written yet is
refused only when no data could make it fit."""

from __future__ import annotations

import json
import random
import types
from pathlib import Path

import pytest

from mlx_persona.budget.data import data_shape
from mlx_persona.budget.devices import Device
from mlx_persona.budget.estimate import TrainSettings, estimate_shape
from mlx_persona.budget.fit import preflight_stage, solve
from mlx_persona.budget.shapes import load_shape
from mlx_persona.core.errors import PersonaError

WORDS = "yeah ship it tests pass merge after lunch the cache is wrong not query check ttl".split()


def _text(rng: random.Random, n: int) -> str:
    return " ".join(rng.choice(WORDS) for _ in range(n))


def write_chats(folder: Path, lengths: list[int], seed: int = 0) -> Path:
    rng = random.Random(seed)
    folder.mkdir(parents=True, exist_ok=True)
    for split, ls in (("train", lengths), ("valid", lengths[:4])):
        rows = [
            {"messages": [{"role": "user", "content": _text(rng, 3)}, {"role": "assistant", "content": _text(rng, n)}]}
            for n in ls
        ]
        (folder / f"{split}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return folder


def write_pairs(folder: Path, shapes: list[tuple[int, int, int]], seed: int = 0) -> Path:
    rng = random.Random(seed)
    folder.mkdir(parents=True, exist_ok=True)
    rows = [{"prompt": _text(rng, p), "chosen": _text(rng, c), "rejected": _text(rng, r)} for p, c, r in shapes]
    for split in ("train", "valid"):
        (folder / f"{split}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return folder


def _cfg(batch_size: int, max_seq_length: int, share_prompt: bool = True):
    return types.SimpleNamespace(batch_size=batch_size, max_seq_length=max_seq_length, share_prompt=share_prompt)


@pytest.mark.parametrize("max_seq", [512, 48])
def test_sft_longest_batch_is_the_one_mlx_lm_builds(tiny_model_dir, tmp_path, max_seq):
    """Widths from mlx_lm's own dataset + the project's batching (mlx_lm's, resumable) equal the
    prediction; the longest record sits in the dropped remainder, so it must not count."""
    from mlx_lm import load
    from mlx_lm.tuner.datasets import CacheDataset, load_dataset

    from mlx_persona.train.batches import collate, length_sorted_batches

    lengths = [5, 30, 12, 8, 20, 3, 9, 60]  # batch 3: the last (60 words) is dropped
    data = write_chats(tmp_path / "d", lengths)
    _, tok = load(str(tiny_model_dir))
    args = types.SimpleNamespace(data=str(data), train=True, test=False, mask_prompt=False, hf_dataset=False)
    train = CacheDataset(load_dataset(args, tok)[0])
    widths = [
        collate([train[j] for j in b], max_seq)[0].shape[1] - 1  # the model sees batch[:, :-1]
        for b in length_sorted_batches(train, 3)
    ]
    got = data_shape(tiny_model_dir, data, "sft", _cfg(3, max_seq))
    assert got.keys == got.positions == got.logits == max(widths)
    assert got.examples == len(lengths)
    if max_seq == 512:  # the dropped record is longer than any kept one
        assert got.longest < len(train[len(lengths) - 1][0])


@pytest.mark.parametrize("share", [False, True])
def test_dpo_longest_batch_is_the_one_the_stage_builds(tiny_model_dir, tmp_path, share):
    from mlx_lm import load

    from mlx_persona.dpo.data import PairSet, collate, load_pairs
    from mlx_persona.train.batches import length_sorted_batches

    shapes = [(4, 3, 9), (10, 2, 2), (3, 15, 4), (20, 6, 1), (2, 2, 3), (8, 30, 2), (5, 5, 5)]
    data = write_pairs(tmp_path / "p", shapes)
    _, tok = load(str(tiny_model_dir))
    pairs, _ = load_pairs(data / "train.jsonl", tok, 512)
    batches = [[pairs[i] for i in b] for b in length_sorted_batches(PairSet(pairs), 2)]
    got = data_shape(tiny_model_dir, data, "dpo", _cfg(2, 512, share))
    if not share:  # the padded (2B, W) matrix and its reply width
        assert got.keys == max(collate(b)[0].shape[1] for b in batches)
        assert got.logits == max(collate(b)[3].shape[1] for b in batches)
    longest = max(batches, key=lambda b: max(len(p) for p in b))
    assert got.longest == max(len(p) for p in longest)
    if share:  # prompt once, both replies on top, per row
        want = sum(len(p.prompt) + 2 * max(len(p.chosen), len(p.rejected)) for p in longest) / (2 * len(longest))
        assert got.positions == pytest.approx(want)


def test_data_figure_is_below_the_worst_case_and_grows_with_the_data(tiny_model_dir, tmp_path):
    shape, dev = load_shape(tiny_model_dir), Device("big", 1e6, "test", "cpu")
    s = TrainSettings(batch_size=2, max_seq_length=1024, num_layers=2)
    short = data_shape(tiny_model_dir, write_chats(tmp_path / "a", [4] * 8), "sft", _cfg(2, 1024))
    long = data_shape(tiny_model_dir, write_chats(tmp_path / "b", [4] * 7 + [80]), "sft", _cfg(2, 1024))
    worst = estimate_shape(shape, s, dev)
    a, b = estimate_shape(shape, s, dev, short), estimate_shape(shape, s, dev, long)
    assert a.total_gb < b.total_gb < worst.total_gb
    assert a.worst_case_gb == pytest.approx(worst.total_gb)
    d = a.to_dict()
    assert d["basis"] == "data" and d["data"]["keys"] == short.keys and d["worst_case_gb"] > d["total_gb"]


def sft_settings():
    """A stage's settings as preflight_stage reads them: LoRA r8 on 2 layers, batch 4, up to 2048 tokens."""
    return types.SimpleNamespace(
        fine_tune_type="lora",
        rank=8,
        num_layers=2,
        keys=None,
        batch_size=4,
        max_seq_length=2048,
        grad_checkpoint=False,
        grad_accumulation_steps=1,
        optimizer="adam",
    )


def test_preflight_and_fit_decide_on_the_data(tiny_model_dir, tmp_path):
    """A device between the data figure and the worst case: the data says fit, the worst case
    says shrink; the fit solver proposes nothing on the data."""
    data = write_chats(tmp_path / "d", [4] * 8)
    cfg = sft_settings()
    on_data = preflight_stage(str(tiny_model_dir), cfg, "sft", memory_gb=1e6, data_dir=data)
    memory = (on_data.total_gb + on_data.worst_case_gb) / 2
    with pytest.raises(PersonaError, match="does not fit"):
        preflight_stage(str(tiny_model_dir), cfg, "sft", memory_gb=memory)
    est = preflight_stage(str(tiny_model_dir), cfg, "sft", memory_gb=memory, data_dir=data)
    assert est.verdict in ("fits", "tight") and est.data is not None
    shape, s = load_shape(tiny_model_dir), TrainSettings(batch_size=4, max_seq_length=2048, num_layers=2)
    dev = Device("d", memory / 0.85, "test", "cpu")
    assert solve(shape, s, dev, est.data).overrides() == {}
    assert solve(shape, s, dev).overrides()  # the worst case gives something up


def test_data_not_written_yet_defers_unless_nothing_fits(tiny_model_dir, tmp_path):
    cfg = sft_settings()
    worst = preflight_stage(str(tiny_model_dir), cfg, "sft", memory_gb=1e6)
    est = preflight_stage(str(tiny_model_dir), cfg, "sft", memory_gb=worst.total_gb / 2, data_dir=tmp_path / "none")
    assert est.verdict == "does not fit" and any("checked on the data" in n for n in est.notes)
    with pytest.raises(PersonaError, match="does not fit"):  # not even a 32-token batch fits
        preflight_stage(str(tiny_model_dir), cfg, "sft", memory_gb=worst.weights_gb, data_dir=tmp_path / "none")


def test_budget_command_prints_both_figures(tiny_model_dir, tmp_path):
    from click.testing import CliRunner

    from mlx_persona.budget.cli import budget_command

    data = write_chats(tmp_path / "d", [4] * 8)
    args = ["--model", str(tiny_model_dir), "--data", str(data), "--memory-gb", "100", "--num-layers", "2"]
    res = CliRunner().invoke(budget_command, [*args, "--json"])
    assert res.exit_code == 0, res.output
    d = json.loads(res.output)
    assert d["basis"] == "data" and d["total_gb"] < d["worst_case_gb"]
    res = CliRunner().invoke(budget_command, args)
    assert "on the data" in res.output and "worst case" in res.output


@pytest.mark.parametrize("reference_batch_size", [1, 7])
def test_dpo_reference_pass_batch_is_the_widest_the_stage_builds(tiny_model_dir, tmp_path, reference_batch_size):
    """The reference pass scores train and validation pairs in length-sorted batches of
    ``reference_batch_size`` (the stage's fixed_batches + collate): the predicted width and
    reply width are those of its widest batch."""
    from mlx_lm import load

    from mlx_persona.dpo.data import collate, fixed_batches, load_pairs

    shapes = [(4, 3, 9), (10, 2, 2), (3, 15, 4), (20, 6, 1), (2, 2, 3), (8, 30, 2), (5, 5, 5)]
    data = write_pairs(tmp_path / "p", shapes)
    (data / "valid.jsonl").write_text((data / "valid.jsonl").read_text().splitlines()[0] + "\n")  # shorter
    _, tok = load(str(tiny_model_dir))
    widest = []
    for split in ("train", "valid"):
        pairs, _ = load_pairs(data / f"{split}.jsonl", tok, 512)
        for b in fixed_batches(len(pairs), reference_batch_size, [len(p) for p in pairs]):
            tokens, _, _, reply_pos = collate([pairs[i] for i in b])
            widest.append((tokens.shape[1], reply_pos.shape[1]))
    cfg = types.SimpleNamespace(**vars(_cfg(2, 512)), reference_batch_size=reference_batch_size)
    got = data_shape(tiny_model_dir, data, "dpo", cfg)
    assert (got.reference_keys, got.reference_logits) == max(widest)
    simpo = data_shape(tiny_model_dir, data, "dpo", types.SimpleNamespace(**vars(cfg), loss_type="simpo"))
    assert simpo.reference_keys == 0  # no reference pass
    assert got.at(16).reference_keys == 16 and got.at(16).reference_logits == 8  # a reply keeps at most half


def test_dpo_preflight_counts_the_reference_pass_of_the_stage_settings(tiny_model_dir, tmp_path):
    data = write_pairs(tmp_path / "p", [(40, 30, 30)] * 8)

    def preflight(world_size: int = 1, **kw):
        cfg = {**vars(sft_settings()), "batch_size": 2, "num_layers": 1, "share_prompt": True, "loss_type": "sigmoid"}
        cfg = types.SimpleNamespace(**{**cfg, **kw})
        return preflight_stage(str(tiny_model_dir), cfg, "dpo", memory_gb=1e6, data_dir=data, world_size=world_size)

    one, eight = preflight(reference_batch_size=1), preflight(reference_batch_size=8)
    assert 0 < one.reference_pass_gb < eight.reference_pass_gb
    assert eight.settings.reference_batch_size == 8 and eight.data.reference_keys > 0
    none = preflight(reference_batch_size=8, loss_type="simpo")
    assert none.reference_pass_gb == 0 and none.settings.reference_batch_size == 0
    two = preflight(world_size=2, reference_batch_size=8)  # each rank scores whole batches: not divided
    assert two.settings.reference_batch_size == 8 and two.reference_pass_gb == pytest.approx(eight.reference_pass_gb)
