"""Adapters on 4-bit bases, as a Mac trains them: tiny llama and Qwen2 models (tied and untied
embeddings, attention biases) quantized to 4 bits with groups of 32 and 64.

With ``dequantize_on_cpu: false`` MLX's CPU backend runs the quantized kernels Metal runs, so
these tests take the path the Mac recipe takes: LoRA/DoRA over QuantizedLinear layers, fusing into
4-bit weights (re-quantized) or into float weights (``--dequantize``), DPO's cached reference on a
quantized model, and an exact resume after a ``kill -9`` mid-DPO.
"""

from __future__ import annotations

import json
import os

import mlx.core as mx
import mlx.nn as nn
import numpy as np
import pytest
import yaml
from click.testing import CliRunner
from dpo_helpers import FAST as DPO_FAST
from dpo_helpers import write_pairs
from sft_helpers import FAST, write_chat_data

from mlx_persona.cli import cli
from mlx_persona.dpo import logps
from mlx_persona.dpo import loss as loss_fns
from mlx_persona.dpo import train as dpo
from mlx_persona.dpo.config import DPOConfig
from mlx_persona.dpo.data import collate, fixed_batches
from mlx_persona.dpo.reference import reference_logps
from mlx_persona.models.fuse import fuse_model
from mlx_persona.models.head import output_head
from mlx_persona.sft.config import SFTConfig
from mlx_persona.sft.train import run_sft
from mlx_persona.train.loop import attach_trainable, load_base

TOKENS = mx.array([[1, 5, 9, 40, 77, 120, 3, 2]])
KEEP_4BIT = {"dequantize_on_cpu": False}  # what Metal does; the CPU default trains on a float32 copy


def quiet(_):
    pass


def logits(model_dir, adapter=None) -> np.ndarray:
    from mlx_lm import load

    model, _ = load(str(model_dir), adapter_path=str(adapter) if adapter else None)
    out = model(TOKENS)
    mx.eval(out)
    return np.array(out)


def quantized_modules(model) -> set[str]:
    return {
        type(m).__name__ for _, m in model.named_modules() if isinstance(m, (nn.QuantizedLinear, nn.QuantizedEmbedding))
    }


@pytest.mark.parametrize("keep", [True, False])
def test_load_base_keeps_4bit_weights_when_asked(tiny_variant, keep):
    model, _ = load_base(
        tiny_variant("qwen2-untied", 64), SFTConfig.from_mapping({"dequantize_on_cpu": not keep}), quiet
    )
    assert bool(quantized_modules(model)) == keep
    if keep:  # the untied head and the embedding are 4-bit too, as in mlx-community's Qwen2.5-7B-4bit
        assert isinstance(model.lm_head, nn.QuantizedLinear)
        assert isinstance(model.model.embed_tokens, nn.QuantizedEmbedding)
        assert model.model.layers[0].self_attn.q_proj.bias.dtype == mx.float32  # biases stay float


def test_load_base_says_what_the_float32_copy_is_for(tiny_variant):
    logs = []
    load_base(tiny_variant("llama", 64), SFTConfig.from_mapping({}), logs.append)
    load_base(tiny_variant("llama", 64), SFTConfig.from_mapping({}), logs.append, purpose="evaluating")
    assert "training on a dequantized float32 copy" in logs[0] and "adapter still loads" in logs[0]
    assert "evaluating on a dequantized float32 copy" in logs[1] and "adapter" not in logs[1]


# every architecture, both group sizes and both adapter kinds, each at least once
CASES = [
    ("llama", 32, "dora"),
    ("llama", 64, "lora"),
    ("qwen2", 32, "lora"),
    ("qwen2", 64, "dora"),
    ("qwen2-untied", 32, "dora"),
    ("qwen2-untied", 64, "lora"),
]


@pytest.mark.parametrize("arch,group,method", CASES)
def test_adapter_on_a_4bit_base_fuses_into_4bit_and_float_weights(tiny_variant, tmp_path, arch, group, method):
    base = tiny_variant(arch, group)
    cfg = SFTConfig.from_mapping(
        {**FAST, **KEEP_4BIT, "fine_tune_type": method, "iters": 8, "save_every": 4, "grad_checkpoint": True}
    )
    sft = tmp_path / "sft"
    summary = run_sft(base, write_chat_data(tmp_path / "data"), sft, cfg, log=quiet)
    assert summary["iteration"] == 8
    adapted, plain = logits(base, sft), logits(base)
    effect = np.abs(adapted - plain).max()
    assert effect > 0.1  # the adapter learned something on top of the 4-bit weights

    fuse_model(base, sft, tmp_path / "f32", dequantize=True)
    assert "quantization" not in json.loads((tmp_path / "f32" / "config.json").read_text())
    np.testing.assert_allclose(logits(tmp_path / "f32"), adapted, rtol=1e-4, atol=1e-4)  # exact up to rounding

    fuse_model(base, sft, tmp_path / "f4")  # the adapter baked into re-quantized 4-bit weights
    quant = json.loads((tmp_path / "f4" / "config.json").read_text())["quantization"]
    assert quant["bits"] == 4 and quant["group_size"] == group
    # re-quantizing rounds every weight of an adapted layer to a new 4-bit grid (the noise of
    # quantizing, once more), yet the fused model stays nearer base + adapter than the base is
    f4 = logits(tmp_path / "f4")
    assert np.abs(f4 - adapted).max() < effect
    assert np.abs(f4 - adapted).mean() < 0.6 * np.abs(plain - adapted).mean()


@pytest.mark.parametrize("arch,method", [("qwen2", "dora"), ("qwen2-untied", "lora"), ("llama", "lora")])
def test_dpo_reference_on_a_4bit_model_equals_the_policy_at_step_0(tiny_variant, tmp_path, arch, method):
    cfg = DPOConfig.from_mapping({**DPO_FAST, **KEEP_4BIT, "fine_tune_type": method})
    model, tok = load_base(tiny_variant(arch, 32), cfg, quiet)
    assert quantized_modules(model)
    sets = dpo.read_splits(write_pairs(tmp_path / "pairs"), tok, cfg, tmp_path, quiet)
    refs, _ = reference_logps(model, sets, cfg.reference_batch_size, tmp_path, output_head(model), "fp", quiet)
    attach_trainable(model, cfg)
    head = output_head(model)
    assert head is not None  # reply-only logits through a quantized lm_head / tied quantized embedding
    assert logps.shared_prompt_ok(model, head)
    train = sets["train"]
    idx = next(iter(fixed_batches(len(train), 4, [len(p) for p in train])))
    batch = collate([train[i] for i in idx])
    sums, _ = logps.sequence_logps(model, *batch, head=head)
    np.testing.assert_allclose(np.array(sums[: len(idx)]), refs["train"][idx, 0], rtol=1e-5, atol=1e-4)
    loss, _ = loss_fns.batch_loss(model, *batch, mx.array(refs["train"][idx]), cfg, head)
    assert loss.item() == pytest.approx(loss_fns.LOG2, abs=1e-5)


def dpo_cli(*args):
    return CliRunner().invoke(cli, ["dpo", *map(str, args)])


@pytest.mark.e2e
def test_kill_9_mid_dpo_on_a_4bit_model_resumes_to_the_uninterrupted_end(tiny_variant, tmp_path, monkeypatch):
    """The DPO child SIGKILLs itself after step 5 (last checkpoint at 4); ``--resume`` ends with
    the losses and adapter weights of the run that never stopped."""
    model = tiny_variant("qwen2-untied", 64)
    pairs = write_pairs(tmp_path / "pairs")
    settings = {
        **DPO_FAST,
        **KEEP_4BIT,
        "fine_tune_type": "lora",
        "iters": 8,
        "save_every": 2,
        "steps_per_eval": 3,
        "grad_checkpoint": True,  # the recipe's DPO settings
        "rpo_alpha": 1.0,
        "dropout": 0.1,  # the PRNG key is part of what resumes
    }
    config = tmp_path / "dpo.yaml"
    config.write_text(yaml.safe_dump(settings))
    common = ("--model", model, "--pairs", pairs, "--config", config)

    res = dpo_cli(*common, "--out", tmp_path / "straight")
    assert res.exit_code == 0, res.output

    monkeypatch.setenv(dpo.KILL_AFTER_VAR, "5")
    res = dpo_cli(*common, "--out", tmp_path / "killed")
    assert res.exit_code == 1 and "Traceback" not in res.output  # the parent saw its child die
    killed = tmp_path / "killed"
    assert json.loads((killed / "checkpoint.json").read_text())["iteration"] == 4
    monkeypatch.delenv(dpo.KILL_AFTER_VAR)
    res = dpo_cli("--out", killed, "--resume")
    assert res.exit_code == 0, res.output

    want = json.loads((tmp_path / "straight" / "status.json").read_text())
    got = json.loads((killed / "status.json").read_text())
    assert got["iteration"] == want["iteration"] == 8
    assert got["best_val_loss"] == pytest.approx(want["best_val_loss"], rel=1e-5, abs=1e-6)
    curve = [json.loads(line) for line in (tmp_path / "straight" / "metrics.jsonl").read_text().splitlines()]
    again = [json.loads(line) for line in (killed / "metrics.jsonl").read_text().splitlines()]
    assert [e["iter"] for e in again] == [e["iter"] for e in curve]
    for a, b in zip(curve, again):
        for k in ("train_loss", "val_loss", "lr"):
            if k in a:
                assert b[k] == pytest.approx(a[k], rel=1e-5, abs=1e-6), (k, a, b)
    for name in ("adapters.safetensors", "last/adapters.safetensors"):
        wa, wb = mx.load(str(tmp_path / "straight" / name)), mx.load(str(killed / name))
        for k in wa:
            np.testing.assert_allclose(np.array(wa[k]), np.array(wb[k]), rtol=1e-5, atol=1e-6)
    assert os.environ.get(dpo.KILL_AFTER_VAR) is None


def test_budget_reads_the_activation_dtype_of_a_quantized_folder(tiny_variant):
    """A 4-bit folder whose config names no dtype: the norms' dtype (float32 here) is what the
    activations run in, not the float16 a bare config would suggest."""
    from mlx_persona.budget.shapes import load_shape

    shape = load_shape(tiny_variant("qwen2-untied", 32))
    assert (shape.bits, shape.group_size, shape.dtype_bytes, shape.tie_embeddings) == (4, 32, 4, False)
    assert shape.qkv_bias


LONG = " ".join(["the cache is wrong, not the query. check the ttl and ship it."] * 40)  # > 512 tokens
# DPO keeps replies of at most half max_seq_length and cuts the prompt to fit: ~230 tokens each
CHOSEN_LONG = " ".join(["the cache is wrong, not the query. check the ttl and ship it."] * 11)
REJECTED_LONG = " ".join(["check the ttl and ship it. the cache is wrong, not the query."] * 11)


def write_long_data(folder, n: int = 6):
    """Chat and pair files whose every row fills max_seq_length, as the estimate assumes."""
    folder.mkdir(parents=True, exist_ok=True)
    for split in ("train", "valid"):
        with open(folder / f"{split}.jsonl", "w") as f:
            for i in range(n):
                msgs = [{"role": "user", "content": f"q{i} {LONG}"}, {"role": "assistant", "content": LONG}]
                f.write(
                    json.dumps(
                        {"messages": msgs, "prompt": f"q{i} {LONG}", "chosen": CHOSEN_LONG, "rejected": REJECTED_LONG}
                    )
                )
                f.write("\n")
    return folder


@pytest.mark.e2e
@pytest.mark.parametrize(
    "stage,method,checkpoint,batch,reference",
    [
        ("sft", "dora", True, 2, 0),  # the Mac recipe's SFT: DoRA, gradient checkpointing
        ("sft", "lora", False, 2, 0),
        ("dpo", "lora", True, 1, 1),  # its DPO: LoRA, checkpointing, one pair a step (the step is the peak)
        ("dpo", "lora", True, 1, 8),  # the reference pass's default 8 pairs: the pass is the peak
    ],
)
def test_budget_estimate_within_15_percent_of_the_measured_4bit_peak(
    tmp_path_factory, tmp_path, stage, method, checkpoint, batch, reference
):
    """The preflight's estimate against ``mx.get_peak_memory()`` of the stage's own child.

    The test models (hidden 64) peak at a few MB, where the estimate's fixed 5 MB overhead is
    most of the figure; this 4-bit Qwen2 (hidden 256, 4 layers, 512-token rows) peaks at ~0.1 GB,
    where activations, attention and the DoRA terms dominate, as they do on a 7B."""
    import subprocess
    import sys

    from tiny import build_tiny_qwen2, quantize_model_dir

    from mlx_persona.budget.estimate import estimate
    from mlx_persona.core.blas import fast_blas_env

    root = tmp_path_factory.getbasetemp() / "budget-q4"
    model = root / "qwen2-256-q4g64"
    if not model.exists():
        quantize_model_dir(build_tiny_qwen2(root / "qwen2-256", hidden=256, layers=4, tie=False), model, 64)
    data = write_long_data(tmp_path / "data", n=max(6, reference))  # full reference batches, as the estimate assumes
    settings = {
        "fine_tune_type": method,
        "rank": 8,
        "num_layers": -1,
        "batch_size": batch,
        "max_seq_length": 512,
        "grad_checkpoint": checkpoint,
        "iters": 2,
        "steps_per_report": 1,
        "steps_per_eval": 100,
        "val_batches": 1,
        "save_every": 100,
        **KEEP_4BIT,
    }
    if stage == "dpo":  # before the first step, reference_batch_size pairs at a time, no gradients
        settings["reference_batch_size"] = reference
    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump(settings))
    out = tmp_path / stage
    cmd = [sys.executable, "-m", f"mlx_persona.{stage}", "--model", str(model), "--data", str(data)]
    proc = subprocess.run(
        cmd + ["--out", str(out), "--config", str(config)], env=fast_blas_env(), capture_output=True, text=True
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    events = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    measured = max(e.get("peak_memory_gb", 0.0) for e in events)
    keys = ("fine_tune_type", "rank", "num_layers", "batch_size", "max_seq_length", "grad_checkpoint")
    est = estimate(
        str(model), stage=stage, memory_gb=16, reference_batch_size=reference, **{k: settings[k] for k in keys}
    )
    assert est.total_gb == pytest.approx(measured, rel=0.15), (est.components(), measured)
    if stage == "dpo":  # which of the two is the stage's peak, as measured
        assert (est.reference_gb > 0) == (reference == 8), est.notes


def test_dpo_honours_grad_checkpoint_with_the_same_losses(tiny_variant, tmp_path, monkeypatch):
    """The Mac recipe's ``dpo.grad_checkpoint: true`` recomputes each block in the backward pass
    (the budget counts on it); the losses are those of the run that keeps every activation."""
    import mlx_lm.tuner.trainer as trainer

    model, pairs = tiny_variant("qwen2-untied", 64), write_pairs(tmp_path / "pairs")
    # one padded batch on both sides (checkpointing turns the shared-prompt pass off)
    settings = {**DPO_FAST, **KEEP_4BIT, "iters": 4, "save_every": 2, "rpo_alpha": 1.0, "share_prompt": False}
    dpo.run_dpo(model, pairs, tmp_path / "plain", DPOConfig.from_mapping(settings), log=quiet)
    wrapped = []
    real = trainer.grad_checkpoint
    monkeypatch.setattr(trainer, "grad_checkpoint", lambda layer: (wrapped.append(layer), real(layer)))
    cfg = DPOConfig.from_mapping({**settings, "grad_checkpoint": True})
    dpo.run_dpo(model, pairs, tmp_path / "ckpt", cfg, log=quiet)
    assert len(wrapped) == 1
    a, b = (
        [json.loads(line) for line in (tmp_path / d / "metrics.jsonl").read_text().splitlines()]
        for d in ("plain", "ckpt")
    )
    assert [e["iter"] for e in a] == [e["iter"] for e in b]
    for ea, eb in zip(a, b):
        for k in ("train_loss", "val_loss"):
            if k in ea:
                assert eb[k] == pytest.approx(ea[k], rel=1e-4, abs=1e-5)
