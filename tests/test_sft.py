"""The SFT stage: metrics, early stopping, adapters mlx_lm can load, parity with `mlx_lm lora`."""

from __future__ import annotations

import json
import math
import subprocess
import sys
import types

import mlx.core as mx
import numpy as np
import pytest
from mlx.utils import tree_flatten
from sft_helpers import FAST, write_chat_data

from mlx_persona.core import blas
from mlx_persona.sft.config import SFTConfig
from mlx_persona.sft.train import run_sft


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return write_chat_data(tmp_path_factory.mktemp("chat"))


@pytest.fixture(scope="module")
def trained(tiny_model_dir, data, tmp_path_factory):
    out = tmp_path_factory.mktemp("sft")
    run_sft(tiny_model_dir, data, out, SFTConfig.from_mapping(FAST), log=lambda m: None)
    return out


def events(out):
    return [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]


def test_metrics_jsonl(trained):
    ev = events(trained)
    train = [e for e in ev if "train_loss" in e]
    val = [e for e in ev if "val_loss" in e]
    assert [e["iter"] for e in train] == [3, 6, 9, 12, 15, 18, 21, 24]
    assert [e["iter"] for e in val] == [0, 4, 9, 14, 19, 24]  # mlx_lm's cadence, plus after the last step
    for e in train:
        assert {"iter", "train_loss", "lr", "tokens_per_sec", "peak_memory_gb", "elapsed"} <= set(e)
        assert math.isfinite(e["train_loss"]) and e["tokens_per_sec"] > 0 and e["peak_memory_gb"] > 0
    assert [e["elapsed"] for e in ev] == sorted(e["elapsed"] for e in ev)
    # the lr used by a window's last update: warmup 0 -> peak over 3 updates (mlx_lm's schedule:
    # the 3rd update uses 2/3 of the peak, the 4th the peak), then cosine decay towards 0
    assert train[0]["lr"] == pytest.approx(2 / 3 * FAST["learning_rate"])
    assert train[1]["lr"] < FAST["learning_rate"]
    assert train[-1]["lr"] < 0.05 * FAST["learning_rate"]
    assert val[-1]["val_loss"] < val[0]["val_loss"]
    status = json.loads((trained / "status.json").read_text())
    assert status["state"] == "done" and status["best_val_loss"] == min(e["val_loss"] for e in val)


def test_adapter_loads_in_mlx_lm(tiny_model_dir, trained):
    from mlx_lm import load

    model, _ = load(str(tiny_model_dir), adapter_path=str(trained))
    best = mx.load(str(trained / "adapters.safetensors"))
    params = dict(__import__("mlx.utils", fromlist=["tree_flatten"]).tree_flatten(model.parameters()))
    for k, v in best.items():
        assert np.array_equal(np.array(params[k]), np.array(v))
    for folder in (trained, trained / "last"):  # both load in mlx_lm's own generate command
        done = subprocess.run(
            [
                sys.executable,
                "-m",
                "mlx_lm",
                "generate",
                "--model",
                str(tiny_model_dir),
                "--adapter-path",
                str(folder),
                "--prompt",
                "hi",
                "--max-tokens",
                "3",
            ],
            env=blas.fast_blas_env(),
            capture_output=True,
            text=True,
        )
        assert done.returncode == 0, done.stderr[-500:]


def test_early_stopping_keeps_the_best(tiny_model_dir, data, tmp_path):
    # a min_delta no step can beat: the base (iter 0) stays best, two more validations end the run
    cfg = SFTConfig.from_mapping({**FAST, "early_stopping_patience": 2, "early_stopping_min_delta": 100.0})
    out = tmp_path / "es"
    summary = run_sft(tiny_model_dir, data, out, cfg, log=lambda m: None)
    assert summary["state"] == "stopped_early" and summary["iteration"] == 9 and summary["best_iter"] == 0
    best, last = mx.load(str(out / "adapters.safetensors")), mx.load(str(out / "last/adapters.safetensors"))
    assert all(not np.any(np.array(v)) for k, v in best.items() if k.endswith("lora_b"))  # untrained B = 0
    assert any(np.any(np.array(v)) for k, v in last.items() if k.endswith("lora_b"))
    assert run_sft(tiny_model_dir, data, out, cfg, resume=True, log=lambda m: None)["state"] == "stopped_early"


def test_same_losses_as_mlx_lm_lora(tiny_model_dir, data, trained, tmp_path, monkeypatch):
    """Same seed, same settings: mlx_lm's own `lora` run reports the same losses as ours."""
    from mlx_lm import lora

    seen = {"train": {}, "val": {}}

    class Record(lora.TrainingCallback):
        def on_train_loss_report(self, info):
            seen["train"][info["iteration"]] = info["train_loss"]

        def on_val_loss_report(self, info):
            seen["val"][info["iteration"]] = info["val_loss"]

    cfg = SFTConfig.from_mapping(FAST)
    args = dict(
        lora.CONFIG_DEFAULTS,
        model=str(tiny_model_dir),
        data=str(data),
        train=True,
        adapter_path=str(tmp_path),
        fine_tune_type="lora",
        num_layers=-1,
        lora_parameters=cfg.lora_parameters(),
        lr_schedule=cfg.lr_schedule_config(cfg.iters),
        **{
            k: FAST[k]
            for k in (
                "batch_size",
                "iters",
                "val_batches",
                "learning_rate",
                "steps_per_report",
                "steps_per_eval",
                "max_seq_length",
                "seed",
            )
        },
    )
    args = types.SimpleNamespace(**args)
    monkeypatch.setattr(lora, "get_reporting_callbacks", lambda *a, **k: Record())
    lora.run(args)
    ours = events(trained)
    ours_train = {e["iter"]: e["train_loss"] for e in ours if "train_loss" in e}
    ours_val = {e["iter"]: e["val_loss"] for e in ours if "val_loss" in e}
    assert ours_train == pytest.approx(seen["train"], rel=1e-5)
    common = set(ours_val) & set(seen["val"])
    assert len(common) >= 5
    assert {k: ours_val[k] for k in common} == pytest.approx({k: seen["val"][k] for k in common}, rel=1e-5)


def test_quantized_base_trains_on_a_float_copy_on_cpu(tiny_model_dir, data, tmp_path):
    import mlx.nn as nn
    from mlx_lm import load
    from mlx_lm.utils import save

    model, tok, config = load(str(tiny_model_dir), return_config=True)
    nn.quantize(model, group_size=32, bits=4)
    config["quantization"] = {"group_size": 32, "bits": 4}
    q = tmp_path / "q4"
    save(q, str(tiny_model_dir), model, tok, config, donate_model=False)
    said = []
    cfg = SFTConfig.from_mapping({**FAST, "iters": 4, "save_every": 4})
    run_sft(q, data, tmp_path / "out", cfg, log=said.append)
    if mx.default_device().type == mx.DeviceType.cpu:
        assert any("dequantized float32 copy" in s for s in said)
    qmodel, _ = load(str(q), adapter_path=str(tmp_path / "out"))  # the adapter fits the 4-bit base
    assert isinstance(qmodel.layers[0].self_attn.q_proj.linear, nn.QuantizedLinear)


@pytest.mark.parametrize("max_seq_length", [64, 20])
def test_reply_loss_equals_mlx_lm_default_loss(tiny_model_dir, max_seq_length):
    """The head on scored positions only gives mlx_lm's default_loss, value and gradients: rows
    of different lengths (a short row's first pad counts, as in mlx_lm), prompt offsets, a whole
    row scored (offset 0), and at 20 tokens rows cut at max_seq_length."""
    import mlx.nn as nn
    from mlx_lm import load
    from mlx_lm.tuner.trainer import default_loss

    from mlx_persona.models.head import output_head
    from mlx_persona.sft.train import reply_loss
    from mlx_persona.train.batches import collate

    model, _ = load(str(tiny_model_dir))
    head = output_head(model)
    assert head is not None
    rng = np.random.default_rng(0)
    examples = [(rng.integers(3, 200, n).tolist(), o) for n, o in ((30, 12), (17, 9), (24, 0), (9, 8))]
    tokens, lengths, positions = collate(examples, max_seq_length, positions=True)
    assert positions.shape[1] % 32 == 0 or positions.shape[1] == tokens.shape[1] - 1
    want, want_n = default_loss(model, tokens, lengths)
    got, got_n = reply_loss(head)(model, tokens, lengths, positions)
    assert got_n.item() == want_n.item() > 0
    assert got.item() == pytest.approx(want.item(), rel=1e-5)
    g_want = nn.value_and_grad(model, default_loss)(model, tokens, lengths)[1]
    g_got = nn.value_and_grad(model, reply_loss(head))(model, tokens, lengths, positions)[1]
    flat_want = dict(tree_flatten(g_want))
    for name, g in tree_flatten(g_got):
        assert mx.allclose(g, flat_want[name], rtol=1e-4, atol=1e-6).item(), name
