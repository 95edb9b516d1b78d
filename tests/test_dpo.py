"""DPO stage on the tiny model: reference == policy at step 0, bad input, exact resume."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import mlx.core as mx
import mlx.nn as nn
import numpy as np
import pytest
from dpo_helpers import CHOSEN, FAST, write_pairs

from mlx_persona.core import blas
from mlx_persona.core.errors import PersonaError
from mlx_persona.dpo import logps
from mlx_persona.dpo import loss as loss_fns
from mlx_persona.dpo import train as dpo
from mlx_persona.dpo.config import DPOConfig
from mlx_persona.dpo.data import collate, fixed_batches
from mlx_persona.dpo.reference import reference_logps
from mlx_persona.models.head import output_head
from mlx_persona.train.checkpoint import latest_checkpoint, read_state, trainable_weights
from mlx_persona.train.loop import attach_trainable, load_base


def quiet(_):
    pass


@pytest.mark.parametrize("kind", ["lora", "dora"])
def test_adapter_at_zero_policy_equals_cached_reference(tiny_model_dir, tmp_path, kind):
    cfg = DPOConfig.from_mapping({**FAST, "fine_tune_type": kind})
    pairs_dir = write_pairs(tmp_path / "pairs")
    model, tok = load_base(tiny_model_dir, cfg, quiet)
    sets = dpo.read_splits(pairs_dir, tok, cfg, tmp_path, quiet)
    refs, _ = reference_logps(model, sets, cfg.reference_batch_size, tmp_path, output_head(model), "fp", quiet)
    attach_trainable(model, cfg)
    head = output_head(model)
    assert head is not None  # llama: reply-only logits
    train = sets["train"]
    for idx in fixed_batches(len(train), 4, [len(p) for p in reversed(train)]):  # other batches, other padding
        batch = collate([train[i] for i in idx])
        b = len(idx)
        for h in (head, None):  # reply-only logits and the full forward pass agree with the cache
            sums, counts = logps.sequence_logps(model, *batch, head=h)
            np.testing.assert_allclose(np.array(sums[:b]), refs["train"][idx, 0], rtol=1e-5, atol=1e-4)
            np.testing.assert_allclose(np.array(sums[b:]), refs["train"][idx, 1], rtol=1e-5, atol=1e-4)
            assert counts.tolist() == refs["train"][idx][:, 2].tolist() + refs["train"][idx][:, 3].tolist()
        loss, _ = loss_fns.batch_loss(model, *batch, mx.array(refs["train"][idx]), cfg, head)
        assert loss.item() == pytest.approx(loss_fns.LOG2, abs=1e-5)
        loss, _ = loss_fns.shared_batch_loss(model, [train[i] for i in idx], mx.array(refs["train"][idx]), cfg, head)
        assert loss.item() == pytest.approx(loss_fns.LOG2, abs=1e-5)


def test_reference_pass_with_the_prompt_once_per_pair_matches_the_batched_one(tiny_model_dir, tmp_path):
    """The reference pass scores pairs as training does (prompt once per pair, shared=True); its
    cache holds the values of the padded batched pass, and the same token counts."""
    cfg = DPOConfig.from_mapping(FAST)
    model, tok = load_base(tiny_model_dir, cfg, quiet)
    sets = dpo.read_splits(write_pairs(tmp_path / "pairs"), tok, cfg, tmp_path, quiet)
    head = output_head(model)
    assert logps.shared_prompt_ok(model, head)
    batched, _ = reference_logps(model, sets, cfg.reference_batch_size, tmp_path / "a", head, "fp", quiet)
    shared, n = reference_logps(model, sets, cfg.reference_batch_size, tmp_path / "b", head, "fp", quiet, shared=True)
    assert n == sum(len(p) for p in sets.values())
    for split in sets:
        np.testing.assert_allclose(shared[split][:, :2], batched[split][:, :2], rtol=1e-5, atol=1e-4)
        assert shared[split][:, 2:].tolist() == batched[split][:, 2:].tolist()


@pytest.mark.parametrize(
    "loss", [{}, {"loss_type": "ipo", "rpo_alpha": 0.5}, {"length_alpha": 0.05}, {"loss_type": "simpo", "beta": 2.0}]
)
def test_shared_prompt_gives_the_batched_loss_and_gradients(tiny_model_dir, tmp_path, loss):
    from mlx.utils import tree_flatten, tree_map

    cfg = DPOConfig.from_mapping({**FAST, **loss})
    model, tok = load_base(tiny_model_dir, cfg, quiet)
    attach_trainable(model, cfg)
    model.update(tree_map(lambda p: p + 0.05 * mx.random.normal(p.shape), model.trainable_parameters()))  # B != 0
    head = output_head(model)
    assert logps.shared_prompt_ok(model, head)
    pairs = dpo.read_splits(write_pairs(tmp_path / "pairs"), tok, cfg, tmp_path, quiet)["train"][:3]
    ref = mx.array([[-30.0, -40.0, 5, 9], [-20.0, -45.0, 6, 11], [-25.0, -30.0, 4, 12]])
    batched = nn.value_and_grad(model, lambda m: loss_fns.batch_loss(m, *collate(pairs), ref, cfg, head)[0])
    shared = nn.value_and_grad(model, lambda m: loss_fns.shared_batch_loss(m, pairs, ref, cfg, head)[0])
    (la, ga), (lb, gb) = batched(model), shared(model)
    assert la.item() == pytest.approx(lb.item(), rel=1e-5)
    for (name, a), (_, b) in zip(tree_flatten(ga), tree_flatten(gb)):
        np.testing.assert_allclose(np.array(a), np.array(b), rtol=1e-3, atol=1e-5, err_msg=name)


def test_anchor_rows_score_the_real_reply_shared_and_batched(tiny_model_dir, tmp_path):
    """rpo_on real: each pair carries its ``real`` reply's tokens (its chosen one where it has
    none); the shared-prompt pass scores three continuations as the batched pass scores 3B rows,
    and the NLL is the anchor's."""
    from mlx.utils import tree_flatten, tree_map

    cfg = DPOConfig.from_mapping({**FAST, "rpo_alpha": 1.0, "rpo_on": "real"})
    folder = write_pairs(tmp_path / "pairs", n_train=4)
    lines = [json.loads(line) for line in (folder / "train.jsonl").read_text().splitlines()]
    for i, rec in enumerate(lines[:3]):
        rec.update(chosen_from="closest", real=f"what the person said, {i} times over")
    (folder / "train.jsonl").write_text("".join(json.dumps(r) + "\n" for r in lines))
    model, tok = load_base(tiny_model_dir, cfg, quiet)
    pairs = dpo.read_splits(folder, tok, cfg, tmp_path, quiet)["train"]
    assert pairs[0].anchor == list(tok.encode("what the person said, 0 times over", add_special_tokens=False)) + [
        tok.eos_token_id
    ]
    assert pairs[3].anchor == pairs[3].chosen  # no real reply carried: the chosen one
    attach_trainable(model, cfg)
    model.update(tree_map(lambda p: p + 0.05 * mx.random.normal(p.shape), model.trainable_parameters()))
    head = output_head(model)
    ref = mx.array([[-30.0, -40.0, 5, 9], [-20.0, -45.0, 6, 11], [-25.0, -30.0, 4, 12]])
    tokens, starts, lengths, reply_pos = collate(pairs[:3], anchor=True)
    assert tokens.shape[0] == 9
    sums, counts = logps.sequence_logps(model, tokens, starts, lengths, reply_pos, head)
    _, (_, _, nll, _) = loss_fns.batch_loss(model, tokens, starts, lengths, reply_pos, ref, cfg, head)
    np.testing.assert_allclose(np.array(nll), -np.array(sums[6:]) / np.array(counts[6:]), rtol=1e-6)
    batched = nn.value_and_grad(model, lambda m: loss_fns.batch_loss(m, *collate(pairs[:3], True), ref, cfg, head)[0])
    shared = nn.value_and_grad(model, lambda m: loss_fns.shared_batch_loss(m, pairs[:3], ref, cfg, head)[0])
    (la, ga), (lb, gb) = batched(model), shared(model)
    assert la.item() == pytest.approx(lb.item(), rel=1e-5)
    for (name, a), (_, b) in zip(tree_flatten(ga), tree_flatten(gb)):
        np.testing.assert_allclose(np.array(a), np.array(b), rtol=1e-3, atol=1e-5, err_msg=name)
    # the same pairs without the anchor: another loss (the NLL is the chosen reply's)
    plain = DPOConfig.from_mapping({**FAST, "rpo_alpha": 1.0})
    lc, _ = loss_fns.batch_loss(model, *collate(pairs[:3]), ref, plain, head)
    assert abs(lc.item() - la.item()) > 1e-3
    out = tmp_path / "run"  # and a whole run trains with it
    summary = dpo.run_dpo(tiny_model_dir, folder, out, cfg, log=quiet)
    assert summary["best_iter"] >= 0 and (out / "adapters.safetensors").exists()


def test_run_starts_at_log2_and_learns(tiny_model_dir, tmp_path):
    out = tmp_path / "out"
    dpo.run_dpo(tiny_model_dir, write_pairs(tmp_path / "pairs"), out, DPOConfig.from_mapping(FAST), log=quiet)
    events = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    vals = [e for e in events if "val_loss" in e]
    assert vals[0]["iter"] == 0 and vals[0]["val_loss"] == pytest.approx(loss_fns.LOG2, abs=1e-5)
    assert vals[0]["val_margin"] == pytest.approx(0.0, abs=1e-4)
    assert vals[-1]["val_margin"] > vals[0]["val_margin"] and vals[-1]["val_accuracy"] > 0.5
    train = [e for e in events if "train_loss" in e]
    for key in ("reward_chosen", "reward_rejected", "margin", "accuracy", "tokens_per_sec", "peak_memory_gb", "lr"):
        assert key in train[0]
    assert (out / "adapters.safetensors").exists() and (out / "last" / "adapter_config.json").exists()
    # the adapter loads with mlx_lm on the model it was trained on
    from mlx_lm import load

    load(str(tiny_model_dir), adapter_path=str(out))


def test_simpo_needs_no_reference_pass(tiny_model_dir, tmp_path, monkeypatch):
    def no_reference(*args, **kwargs):
        raise AssertionError("SimPO must not compute reference log-probs")

    monkeypatch.setattr(dpo, "reference_logps", no_reference)
    out = tmp_path / "out"
    cfg = DPOConfig.from_mapping({**FAST, "loss_type": "simpo", "beta": 2.0, "learning_rate": 5e-3})
    summary = dpo.run_dpo(tiny_model_dir, write_pairs(tmp_path / "pairs"), out, cfg, log=quiet)
    assert summary["state"] == "done" and not (out / "reference.json").exists()
    vals = [e for e in curve(out) if "val_loss" in e]
    # SimPO's rewards are beta x the mean log-prob of each reply: the chosen ones gain on the rejected ones
    assert vals[0]["val_reward_chosen"] < 0 and vals[-1]["val_margin"] > vals[0]["val_margin"]
    assert vals[-1]["val_loss"] < vals[0]["val_loss"]


def test_bad_pairs_are_reported_with_file_and_line(tiny_model_dir, tmp_path):
    pairs = write_pairs(tmp_path / "pairs", n_train=6)
    long_prompt = "the cache is wrong " * 60
    with open(pairs / "train.jsonl", "a") as f:
        f.write(json.dumps({"prompt": "x?", "chosen": "yes."}) + "\n")  # line 7: no rejected
        f.write("{not json\n")  # line 8
        f.write(json.dumps({"prompt": long_prompt, "chosen": "ok.", "rejected": "Sure! Happy to help."}) + "\n")  # 9
        f.write(json.dumps({"prompt": "x?", "chosen": "ok. " * 80, "rejected": "no."}) + "\n")  # 10: reply too long
        f.write(json.dumps({"prompt": "x?", "chosen": "same", "rejected": "same"}) + "\n")  # 11
    out = tmp_path / "out"
    cfg = DPOConfig.from_mapping({**FAST, "iters": 2})
    dpo.run_dpo(tiny_model_dir, pairs, out, cfg, log=quiet)
    report = {
        r["source"].rsplit(":", 1)[1]: r for r in map(json.loads, (out / "rejects.jsonl").read_text().splitlines())
    }
    assert report["7"]["action"] == "skipped" and "rejected" in report["7"]["reason"]
    assert report["8"]["action"] == "skipped" and "JSON" in report["8"]["reason"]
    assert report["9"]["action"] == "truncated" and "oldest" in report["9"]["reason"]
    assert report["10"]["action"] == "skipped" and "half of max_seq_length" in report["10"]["reason"]
    assert report["11"]["action"] == "skipped" and "equals" in report["11"]["reason"]
    assert all(r["source"].startswith(str(pairs / "train.jsonl")) for r in report.values())
    ref = json.loads((out / "reference.json").read_text())
    assert len(ref["splits"]["train"]) == 7  # 6 good + the truncated one


def test_empty_pairs_file_is_one_line_error(tiny_model_dir, tmp_path):
    pairs = write_pairs(tmp_path / "pairs")
    (pairs / "valid.jsonl").write_text("")
    cfg_file = tmp_path / "dpo.json"
    cfg_file.write_text(json.dumps(FAST))
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "mlx_persona.dpo",
            "--model",
            str(tiny_model_dir),
            "--pairs",
            str(pairs),
            "--out",
            str(tmp_path / "out"),
            "--config",
            str(cfg_file),
        ],
        env=blas.fast_blas_env(),
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    assert "valid.jsonl: no usable pairs" in proc.stderr
    assert "valid.jsonl:1: skipped: empty file" in proc.stdout


class Killed(Exception):
    pass


def curve(out):
    return [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]


def killed_at_8_then_resumed(model_dir, pairs, cut, cfg, monkeypatch, **kw) -> tuple[dict, dict]:
    """Run DPO into ``cut``, kill it after step 8 (its last checkpoint is step 6's, so steps 7-8
    are lost), resume it; returns (the checkpoint's state at the kill, the resumed run's summary)."""

    def die(pid, sig):
        raise Killed()

    monkeypatch.setenv(dpo.KILL_AFTER_VAR, "8")
    monkeypatch.setattr(os, "kill", die)
    with pytest.raises(Killed):
        dpo.run_dpo(model_dir, pairs, cut, cfg, log=quiet, **kw)
    state = read_state(latest_checkpoint(cut))
    monkeypatch.delenv(dpo.KILL_AFTER_VAR)
    return state, dpo.run_dpo(model_dir, pairs, cut, cfg, resume=True, log=quiet, **kw)


@pytest.mark.parametrize("share_prompt", [True, False])
def test_resume_equals_uninterrupted(tiny_model_dir, tmp_path, monkeypatch, share_prompt):
    pairs = write_pairs(tmp_path / "pairs")
    cfg = DPOConfig.from_mapping({**FAST, "dropout": 0.1, "share_prompt": share_prompt})  # dropout: the PRNG key too
    full = tmp_path / "full"
    dpo.run_dpo(tiny_model_dir, pairs, full, cfg, log=quiet)
    cut = tmp_path / "cut"
    state, summary = killed_at_8_then_resumed(tiny_model_dir, pairs, cut, cfg, monkeypatch)
    assert state["iteration"] == 6 and summary["iteration"] == cfg.iters

    keys = ("iter", "train_loss", "val_loss", "margin", "val_margin", "lr", "trained_tokens", "best")
    a, b = curve(full), curve(cut)
    assert len(a) == len(b)
    for ea, eb in zip(a, b):
        assert sorted(ea) == sorted(eb)
        for k in keys:
            if k in ea:
                assert eb[k] == pytest.approx(ea[k], rel=1e-5, abs=1e-6), (k, ea, eb)
    for name in ("adapters.safetensors", "last/adapters.safetensors"):
        wa, wb = mx.load(str(full / name)), mx.load(str(cut / name))
        for k in wa:
            np.testing.assert_allclose(np.array(wa[k]), np.array(wb[k]), rtol=1e-5, atol=1e-6)


def test_reference_cache_is_computed_once_and_resumable(tiny_model_dir, tmp_path):
    cfg = DPOConfig.from_mapping(FAST)
    model, tok = load_base(tiny_model_dir, cfg, quiet)
    sets = dpo.read_splits(write_pairs(tmp_path / "pairs"), tok, cfg, tmp_path, quiet)
    head, logs = output_head(model), []
    first, scored = reference_logps(model, sets, 3, tmp_path, head, "fp", logs.append)
    assert scored == len(sets["train"]) + len(sets["valid"])
    cache_file = tmp_path / "reference.json"
    cache = json.loads(cache_file.read_text())
    for i in ("0", "4", "7"):  # a run killed before these were scored
        del cache["splits"]["train"][i]
    cache_file.write_text(json.dumps(cache))
    logs.clear()
    again, scored = reference_logps(model, sets, 3, tmp_path, head, "fp", logs.append)
    assert logs[0].startswith("reference log-probs: 3 pairs to score") and scored == 3
    for split in first:
        np.testing.assert_allclose(again[split], first[split], rtol=1e-6)
    logs.clear()
    reference_logps(model, sets, 3, tmp_path, head, "fp", logs.append)
    assert logs == []  # nothing left to score
    reference_logps(model, sets, 3, tmp_path, head, "other-model", logs.append)
    assert logs[0].startswith(f"reference log-probs: {len(sets['train']) + len(sets['valid'])} pairs")


# ----------------------------------------------------------------------------- select_by: preference, margin
# validation figures by step: (preference term, NLL of the person's replies, mean reward margin).
# By the loss (term + 2 x NLL) step 0 is best. Step 8 has the lowest term and the widest margin,
# but its NLL rose 0.10 (> 0.05). Of the others, step 12 has the lowest term; step 4 the widest
# margin, with a term above step 0's (its pairs' margins spread both ways).
SCRIPT = {0: (0.693, 3.00, 0.0), 4: (0.70, 3.03, 0.02), 8: (0.50, 3.10, 0.30), 12: (0.62, 3.04, 0.01)}


def scripted_evaluate(self):
    preference, nll, margin = SCRIPT[self.iteration]
    loss = preference + self.cfg.rpo_alpha * nll
    return {
        "val_loss": loss,
        "val_reward_chosen": margin,
        "val_reward_rejected": 0.0,
        "val_margin": margin,
        "val_accuracy": 0.0,
        "val_chosen_nll": nll,
    }


@pytest.mark.parametrize(
    "select_by, kept, best",
    [
        ("loss", 0, [True, False, False, False]),
        ("preference", 12, [True, False, False, True]),
        ("margin", 4, [True, True, False, False]),
    ],
)
def test_select_by_preference_or_margin_bounds_the_nll_and_keeps_the_best(
    tiny_model_dir, tmp_path, monkeypatch, select_by, kept, best
):
    monkeypatch.setattr(dpo.DPORun, "evaluate", scripted_evaluate)
    snapshots, validate = {}, dpo.DPORun.run_validation

    def validate_and_snapshot(self, k):
        validate(self, k)
        snapshots[k] = {n: np.array(w) for n, w in trainable_weights(self.model).items()}

    monkeypatch.setattr(dpo.DPORun, "run_validation", validate_and_snapshot)
    out = tmp_path / "out"
    cfg = DPOConfig.from_mapping({**FAST, "rpo_alpha": 2.0, "select_by": select_by})
    logs = []
    summary = dpo.run_dpo(tiny_model_dir, write_pairs(tmp_path / "pairs"), out, cfg, log=logs.append)
    vals = [e for e in curve(out) if "val_loss" in e]
    assert [e["iter"] for e in vals] == [0, 4, 8, 12]
    assert summary["best_iter"] == kept
    assert [e["best"] for e in vals] == best
    for name, w in mx.load(str(out / "adapters.safetensors")).items():
        np.testing.assert_array_equal(np.array(w), snapshots[kept][name])
    if select_by == "loss":
        assert "val_preference" not in vals[0]
        return
    assert [round(e["val_preference"], 6) for e in vals] == [0.693, 0.70, 0.5, 0.62]
    assert [round(e["val_nll_rise"], 6) for e in vals] == [0.0, 0.03, 0.1, 0.04]
    assert summary["selected_by"] == select_by
    assert summary["best_val_loss"] == pytest.approx(SCRIPT[kept][0] + 2 * SCRIPT[kept][1])
    if select_by == "preference":
        assert summary["best_preference"] == pytest.approx(0.62)
        assert "best preference term 0.6200 within the NLL bound" in logs[-1]
    else:
        assert summary["best_margin"] == pytest.approx(0.02)
        assert "best validation margin 0.0200 within the NLL bound" in logs[-1]
    # a looser bound lets step 8 in
    loose = DPOConfig.from_mapping({**FAST, "rpo_alpha": 2.0, "select_by": select_by, "select_max_nll_rise": 0.2})
    assert (
        dpo.run_dpo(tiny_model_dir, write_pairs(tmp_path / "pairs"), tmp_path / "loose", loose, log=quiet)["best_iter"]
        == 8
    )


def test_select_by_preference_resume_keeps_step_0s_nll(tiny_model_dir, tmp_path, monkeypatch):
    """The bound is taken from step 0's NLL, which a resumed run gets from the checkpoint: lost,
    the first validation after the resume (step 8, NLL up 0.10) would be its own start and win."""
    monkeypatch.setattr(dpo.DPORun, "evaluate", scripted_evaluate)
    cfg = DPOConfig.from_mapping({**FAST, "rpo_alpha": 2.0, "select_by": "preference"})
    pairs = write_pairs(tmp_path / "pairs")
    cut = tmp_path / "cut"
    state, summary = killed_at_8_then_resumed(tiny_model_dir, pairs, cut, cfg, monkeypatch)
    assert state["iteration"] == 6 and state["start_nll"] == 3.0
    assert summary["best_iter"] == 12 and summary["best_preference"] == pytest.approx(0.62)
    assert [e["best"] for e in curve(cut) if "val_loss" in e] == [True, False, False, True]


# ----------------------------------------------------------------------------- select_by: last
# per validation pair, by step: (margins, NLLs of the person's replies). Step 4's margins go both
# ways around a mean just below 0; step 8's are all below 0, its NLLs step 0's; step 12's mean NLL
# rose 0.06, over the 0.05 bound as a point, with a 95% interval of 0.031..0.089: wholly above a
# bound of 0, not of 0.05.
PER_PAIR = {
    0: ([0.0, 0.0, 0.0, 0.0], [3.0, 2.0, 4.0, 3.0]),
    4: ([0.10, -0.12, 0.05, -0.06], [3.01, 2.0, 4.02, 2.99]),
    8: ([-0.20, -0.25, -0.22, -0.21], [3.0, 2.0, 4.0, 3.0]),
    12: ([0.30, -0.35, 0.02, -0.05], [3.09, 2.03, 4.08, 3.04]),
}


def per_pair_evaluate(self):
    margins, nlls = (np.array(x) for x in PER_PAIR[self.iteration])
    self.val_nlls = nlls
    margin, nll = float(margins.mean()), float(nlls.mean())
    return {
        "val_loss": 0.693 + self.cfg.rpo_alpha * nll,
        "val_reward_chosen": margin,
        "val_reward_rejected": 0.0,
        "val_margin": margin,
        "val_accuracy": 0.0,
        "val_chosen_nll": nll,
    }


def test_mean_interval_on_a_known_sample():
    # mean 2.5, sample sd sqrt(5/3), so the half width is 1.96 x 1.2910 / 2 = 1.2652
    low, high = dpo.mean_interval(np.array([1.0, 2.0, 3.0, 4.0]))
    assert (low, high) == (pytest.approx(1.23483, abs=1e-5), pytest.approx(3.76517, abs=1e-5))
    assert dpo.mean_interval(np.array([0.1, 0.1, 0.1])) == (pytest.approx(0.1), pytest.approx(0.1))
    assert dpo.mean_interval(np.array([0.3])) == (0.3, 0.3)
    assert dpo.mean_interval(np.array([])) == (0.0, 0.0)


@pytest.mark.parametrize(
    "bound, kept, best", [(0.05, 12, [True, True, True, True]), (0.0, 8, [True, True, True, False])]
)
def test_select_by_last_keeps_the_last_step_that_keeps_the_persons_replies_likely(
    tiny_model_dir, tmp_path, monkeypatch, bound, kept, best
):
    monkeypatch.setattr(dpo.DPORun, "evaluate", per_pair_evaluate)
    cfg = DPOConfig.from_mapping({**FAST, "rpo_alpha": 2.0, "select_by": "last", "select_max_nll_rise": bound})
    logs = []
    summary = dpo.run_dpo(tiny_model_dir, write_pairs(tmp_path / "pairs"), tmp_path / "out", cfg, log=logs.append)
    vals = [e for e in curve(tmp_path / "out") if "val_loss" in e]
    assert summary["best_iter"] == kept and summary["selected_by"] == "last"
    assert [e["best"] for e in vals] == best  # step 8: every pair's margin fell, which last does not read
    assert "the last step whose validation pairs do not show the person's replies less likely" in logs[-1]
    assert vals[0]["val_nll_rise_low"] == 0 and vals[2]["val_nll_rise_low"] == 0
    assert vals[3]["val_nll_rise"] == pytest.approx(0.06)
    assert vals[3]["val_nll_rise_low"] == pytest.approx(0.0312, abs=1e-4)


def test_select_by_margin_or_preference_keep_step_0_on_the_same_pairs(tiny_model_dir, tmp_path, monkeypatch):
    """Point estimates on the same validation pairs: step 4's and 8's mean margins are below 0,
    step 12's NLL rise is over the bound, and the preference term never falls below log 2."""
    monkeypatch.setattr(dpo.DPORun, "evaluate", per_pair_evaluate)
    for select_by in ("margin", "preference"):
        cfg = DPOConfig.from_mapping({**FAST, "rpo_alpha": 2.0, "select_by": select_by})
        summary = dpo.run_dpo(tiny_model_dir, write_pairs(tmp_path / "pairs"), tmp_path / select_by, cfg, log=quiet)
        assert summary["best_iter"] == 0


def test_validation_keeps_each_pairs_margin_and_nll(tiny_model_dir, tmp_path, monkeypatch):
    """The per-pair NLLs select_by last reads average to the validation's own figure, and step
    0's come back with a resumed run."""
    seen, evaluate = [], dpo.DPORun.evaluate

    def check(self):
        val = evaluate(self)
        seen.append(len(self.sets["valid"]))
        assert len(self.val_nlls) == len(self.sets["valid"])
        assert self.val_nlls.mean() == pytest.approx(val["val_chosen_nll"], abs=1e-5)
        return val

    monkeypatch.setattr(dpo.DPORun, "evaluate", check)
    cfg = DPOConfig.from_mapping({**FAST, "rpo_alpha": 1.0, "rpo_on": "real", "select_by": "last"})
    pairs = write_pairs(tmp_path / "pairs")
    state, summary = killed_at_8_then_resumed(tiny_model_dir, pairs, tmp_path / "cut", cfg, monkeypatch)
    assert len(state["start_nlls"]) == seen[0] > 1  # step 0's NLL of each validation pair
    assert state["start_nll"] == pytest.approx(np.mean(state["start_nlls"]), abs=1e-5)
    assert summary["selected_by"] == "last"


# ----------------------------------------------------------------------------- select_by: twin
TWIN = {
    **FAST,
    "select_by": "twin",
    "select_prompts": 3,
    "select_max_tokens": 6,
    "lr_schedule": "constant",
    "warmup_steps": 0,
}


def test_select_by_twin_keeps_the_best_measure_not_the_lowest_loss(tiny_model_dir, tmp_path, monkeypatch):
    calls = []

    def prefers_step_4(generated, real):  # an injected measure that disagrees with the loss
        calls.append((list(generated), list(real)))
        return {"score": 1.0 if len(calls) == 2 else 0.0, "similarity": 0.25 * len(calls)}

    snapshots, validate = {}, dpo.DPORun.run_validation

    def validate_and_snapshot(self, k):  # the adapter each validation saw
        validate(self, k)
        snapshots[k] = {n: np.array(w) for n, w in trainable_weights(self.model).items()}

    monkeypatch.setattr(dpo.DPORun, "run_validation", validate_and_snapshot)
    out = tmp_path / "out"
    pairs = write_pairs(tmp_path / "pairs", n_valid=7, twin_every=3)
    summary = dpo.run_dpo(tiny_model_dir, pairs, out, DPOConfig.from_mapping(TWIN), log=quiet, measure=prefers_step_4)

    vals = [e for e in curve(out) if "val_loss" in e]
    assert [e["iter"] for e in vals] == [0, 4, 8, 12] and len(calls) == 4
    assert vals[-1]["val_loss"] < vals[1]["val_loss"]  # by the loss, step 12 would be kept
    assert [e["best"] for e in vals] == [True, True, False, False]
    assert [e["val_twin_score"] for e in vals] == [0.0, 1.0, 0.0, 0.0]  # both measures on each line
    assert vals[2]["val_twin_similarity"] == 0.75
    assert summary["best_iter"] == 4 and summary["selected_by"] == "twin" and summary["best_twin_score"] == 1.0
    assert summary["best_val_loss"] == pytest.approx(vals[1]["val_loss"])  # the kept adapter's loss
    kept = mx.load(str(out / "adapters.safetensors"))
    assert set(kept) == set(snapshots[4])
    for name, w in kept.items():
        np.testing.assert_array_equal(np.array(w), snapshots[4][name])
    assert any(not np.allclose(snapshots[4][n], snapshots[12][n]) for n in kept)  # the adapter moved after step 4

    # the measure saw greedy replies to the same 3 prompts each time, against the person's real replies
    # (the lines whose chosen reply came from the twin are passed over)
    real = calls[0][1]
    assert len(real) == 3 and all(r in CHOSEN for r in real) and all(c[1] == real for c in calls)
    assert all(len(gen) == 3 and all(isinstance(g, str) for g in gen) for gen, _ in calls)


def test_select_by_twin_needs_real_replies(tiny_model_dir, tmp_path):
    pairs = write_pairs(tmp_path / "pairs", twin_every=1)  # every chosen reply is the twin's
    with pytest.raises(PersonaError, match="select_by: twin needs validation pairs whose chosen reply is the person's"):
        dpo.run_dpo(
            tiny_model_dir,
            pairs,
            tmp_path / "out",
            DPOConfig.from_mapping(TWIN),
            log=quiet,
            measure=lambda g, r: {"score": 0.0},
        )
    assert not (tmp_path / "out" / "reference.json").exists()  # failed before the reference pass


def test_select_by_twin_measures_closest_pairs_against_the_real_reply_they_carry(tiny_model_dir, tmp_path):
    """A ``chosen_from: closest`` pair's chosen reply is the twin's; the person's is in ``real``."""
    from mlx_persona.dpo.data import load_pairs
    from mlx_persona.models.generate import load_for_generation

    pairs = write_pairs(tmp_path / "pairs", n_valid=4)
    path = pairs / "valid.jsonl"
    lines = [json.loads(line) for line in path.read_text().splitlines()]
    for i, rec in enumerate(lines):
        rec.update(chosen_from="closest", real=f"the person's reply {i}") if i % 2 else rec.update(chosen_from="real")
    path.write_text("".join(json.dumps(r) + "\n" for r in lines))
    _, tokenizer = load_for_generation(tiny_model_dir)
    valid, _ = load_pairs(path, tokenizer, 256)
    _, real = dpo.twin_slice(pairs, valid, 4)
    assert real == [lines[0]["chosen"], "the person's reply 1", lines[2]["chosen"], "the person's reply 3"]


def test_select_by_twin_replies_get_the_pairs_stages_room(tmp_path):
    cfg = DPOConfig.from_mapping({**TWIN, "select_max_tokens": None})
    assert dpo.select_room(tmp_path, cfg)[0] == 64  # no pairs_config.json: the floor
    (tmp_path / "pairs_config.json").write_text(json.dumps({"max_tokens": 128, "chosen": "real"}))
    assert dpo.select_room(tmp_path, cfg) == (128, "as the pairs stage's replies")
    assert dpo.select_room(tmp_path, DPOConfig.from_mapping(TWIN))[0] == 6  # set: used as given
    with pytest.raises(PersonaError, match="select_max_tokens"):
        DPOConfig.from_mapping({**TWIN, "select_max_tokens": 0})


def by_length(generated, real):
    """A deterministic measure of the replies themselves: closeness of mean lengths."""
    return {"score": -abs(np.mean([len(g) for g in generated]) - np.mean([len(r) for r in real]))}


def test_select_by_twin_resume_equals_uninterrupted(tiny_model_dir, tmp_path, monkeypatch):
    pairs = write_pairs(tmp_path / "pairs", n_valid=7)
    cfg = DPOConfig.from_mapping({**TWIN, "dropout": 0.1})
    full = tmp_path / "full"
    want = dpo.run_dpo(tiny_model_dir, pairs, full, cfg, log=quiet, measure=by_length)
    cut = tmp_path / "cut"
    _, got = killed_at_8_then_resumed(tiny_model_dir, pairs, cut, cfg, monkeypatch, measure=by_length)
    for key in ("best_iter", "best_twin_score", "best_val_loss"):
        assert got[key] == pytest.approx(want[key], rel=1e-5), key
    a, b = curve(full), curve(cut)
    assert [e.get("val_twin_score") for e in a] == pytest.approx([e.get("val_twin_score") for e in b])
    assert [e.get("best") for e in a] == [e.get("best") for e in b]
    wa, wb = mx.load(str(full / "adapters.safetensors")), mx.load(str(cut / "adapters.safetensors"))
    for k in wa:
        np.testing.assert_allclose(np.array(wa[k]), np.array(wb[k]), rtol=1e-5, atol=1e-6)
