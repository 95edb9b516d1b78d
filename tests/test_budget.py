"""The memory estimator, fit solver, device profiles, snapshots and the `budget` command."""

import json

import pytest
from click.testing import CliRunner

from mlx_persona.budget.devices import PROFILES, Device, get_device
from mlx_persona.budget.estimate import Estimate, TrainSettings, estimate, estimate_shape
from mlx_persona.budget.fit import GIVE_UP_ORDER, fit, preflight
from mlx_persona.budget.shapes import ModelShape, load_shape, shape_from_config, snapshots
from mlx_persona.cli import cli
from mlx_persona.core.errors import PersonaError

BIG = Device("big", 1e6, "test")


def small_shape(**kw) -> ModelShape:
    """2 blocks of hidden 64, intermediate 128, 4 heads of 16, 2 kv heads, vocab 256, tied."""
    cfg = dict(
        hidden_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        intermediate_size=128,
        vocab_size=256,
        tie_word_embeddings=True,
        torch_dtype="float32",
    )
    cfg.update(kw)
    return shape_from_config(cfg, "small", "test")


def test_param_count_by_hand():
    s = small_shape()
    # per block: q 64x64 + k,v 64x32 each + o 64x64 + 3 x 64x128 + 2 norms of 64
    block = 4096 + 2 * 2048 + 4096 + 3 * 8192 + 128
    assert s.block_params() == block
    assert s.total_params() == 2 * block + 256 * 64 + 64


def test_weight_bytes_16_and_4_bits():
    s16 = small_shape(torch_dtype="bfloat16")
    e16 = estimate_shape(s16, TrainSettings(), BIG)
    assert e16.weights_gb * 1e9 == pytest.approx(s16.total_params() * 2)
    s4 = small_shape(torch_dtype="bfloat16", quantization={"bits": 4, "group_size": 64})
    e4 = estimate_shape(s4, TrainSettings(), BIG)
    matrices = 2 * (4096 + 2 * 2048 + 4096 + 3 * 8192) + 256 * 64
    rest = s4.total_params() - matrices  # norms stay bf16
    # 4 bits per weight + a bf16 scale and a bf16 bias per group of 64
    assert e4.weights_gb * 1e9 == pytest.approx(matrices * (0.5 + 4 / 64) + rest * 2)


def test_known_model_sizes_match_published_counts():
    assert load_shape("Qwen/Qwen2.5-7B-Instruct").total_params() == pytest.approx(7.62e9, rel=0.01)
    assert load_shape("HuggingFaceTB/SmolLM2-135M-Instruct").total_params() == pytest.approx(134.5e6, rel=0.01)
    assert load_shape("meta-llama/Llama-3.2-1B-Instruct").total_params() == pytest.approx(1.24e9, rel=0.01)
    # 7.6e9 weights x (0.5 + 4/64) bytes ~= 4.3 GB, the size of the mlx-community 4-bit folder
    w = estimate("mlx-community/Qwen2.5-7B-Instruct-4bit", device="cpu").weights_gb
    assert 4.0 < w < 4.5


def test_adapter_gradients_optimizer_arithmetic():
    s = small_shape()
    e = estimate_shape(s, TrainSettings(rank=8, num_layers=2, grad_accumulation_steps=1), BIG)
    per_block = 8 * ((64 + 64) + (64 + 32) * 2 + (64 + 64) + 3 * (64 + 128))
    assert e.adapter_gb * 1e9 == pytest.approx(2 * per_block * 4)  # float32 A and B
    assert e.gradients_gb == pytest.approx(e.adapter_gb)
    assert e.optimizer_gb == pytest.approx(2 * e.adapter_gb)  # Adam: two moments
    acc = estimate_shape(s, TrainSettings(rank=8, num_layers=2, grad_accumulation_steps=4), BIG)
    assert acc.gradients_gb == pytest.approx(2 * e.gradients_gb)  # accumulated + new
    dora = estimate_shape(s, TrainSettings(fine_tune_type="dora", rank=8, num_layers=2), BIG)
    assert dora.adapter_gb > e.adapter_gb  # plus one magnitude per output row
    full = estimate_shape(s, TrainSettings(fine_tune_type="full", num_layers=2), BIG)
    assert full.adapter_gb == 0 and full.gradients_gb * 1e9 == pytest.approx(2 * s.block_params() * 4)


def test_keys_restrict_adapter():
    s = small_shape()
    qv = estimate_shape(s, TrainSettings(keys=("self_attn.q_proj", "self_attn.v_proj")), BIG)
    assert qv.adapter_gb * 1e9 == pytest.approx(2 * 8 * ((64 + 64) + (64 + 32)) * 4)


@pytest.mark.parametrize(
    "knob,lo,hi", [("batch_size", 1, 8), ("max_seq_length", 256, 2048), ("num_layers", 1, 24), ("rank", 4, 64)]
)
def test_monotone_in_each_knob(knob, lo, hi):
    small = estimate("Qwen/Qwen2.5-0.5B-Instruct", device="cpu", **{knob: lo}).total_gb
    big = estimate("Qwen/Qwen2.5-0.5B-Instruct", device="cpu", **{knob: hi}).total_gb
    assert big > small


def test_checkpointing_lowers_memory_and_attention_is_quadratic():
    kw = dict(device="cpu", num_layers=-1, batch_size=4, max_seq_length=2048)
    off = estimate("mlx-community/Llama-3.2-1B-Instruct-4bit", **kw)
    on = estimate("mlx-community/Llama-3.2-1B-Instruct-4bit", grad_checkpoint=True, **kw)
    assert on.total_gb < off.total_gb
    half = estimate("mlx-community/Llama-3.2-1B-Instruct-4bit", **{**kw, "max_seq_length": 1024})
    assert off.attention_gb == pytest.approx(4 * half.attention_gb)


def test_dpo_doubles_sequences_and_reference_costs_a_model():
    sft = estimate("default", device="cpu", batch_size=2, max_seq_length=512)
    dpo = estimate("default", device="cpu", stage="dpo", batch_size=2, max_seq_length=512)
    assert dpo.logits_gb == pytest.approx(2 * sft.logits_gb)
    ref = estimate("default", device="cpu", stage="dpo", batch_size=2, max_seq_length=512, reference_in_memory=True)
    assert ref.reference_gb > ref.weights_gb and ref.total_gb > dpo.total_gb
    # rpo_on real: a third row per pair (the anchor reply)
    three = estimate("default", device="cpu", stage="dpo", batch_size=2, max_seq_length=512, rows_per_pair=3)
    assert three.logits_gb == pytest.approx(3 * sft.logits_gb) and three.total_gb > dpo.total_gb


def test_verdicts():
    e = estimate("default", memory_gb=1000)
    assert e.verdict == "fits"
    assert estimate("default", memory_gb=e.total_gb * 1.05).verdict == "tight"
    assert estimate("default", memory_gb=e.total_gb * 0.5).verdict == "does not fit"


def test_fit_solver_fits_and_follows_the_order():
    kw = dict(device="m-series-16gb", fine_tune_type="dora", rank=64, num_layers=-1, batch_size=4, max_seq_length=2048)
    res = fit("mlx-community/Qwen2.5-7B-Instruct-4bit", **kw)
    assert res.ok and res.estimate.verdict == "fits"
    order = ["reference", "batch", "checkpoint", "method", "sequence", "rank", "layers"]
    assert [n.split(":")[0] for n in GIVE_UP_ORDER] == order
    assert res.steps == sorted(res.steps, key=order.index)
    s = res.settings
    assert s.batch_size * s.grad_accumulation_steps == 4  # effective batch kept
    assert s.grad_checkpoint and s.fine_tune_type == "lora"
    assert res.overrides()["grad_checkpoint"] is True and "--grad-checkpoint" in res.flags()
    # the solver's answer re-estimates as fitting when fed back as plain settings
    again = estimate(
        "mlx-community/Qwen2.5-7B-Instruct-4bit",
        device="m-series-16gb",
        **{k: v for k, v in vars(s).items() if k != "keys"},
    )
    assert again.verdict == "fits"


def test_fit_gives_up_when_weights_alone_do_not_fit():
    res = fit("mlx-community/Mistral-7B-Instruct-v0.3-8bit", device="m-series-8gb")
    assert not res.ok and "weights alone" in res.advice()


def test_preflight_raises_with_overrides_unless_forced(tiny_model_dir):
    assert isinstance(preflight(tiny_model_dir, device="cpu"), Estimate)
    with pytest.raises(PersonaError, match="--batch-size|--grad-checkpoint|--max-seq-length"):
        preflight(
            "mlx-community/Qwen2.5-7B-Instruct-4bit", device="m-series-16gb", batch_size=8, num_layers=28, rank=64
        )
    est = preflight(
        "mlx-community/Qwen2.5-7B-Instruct-4bit",
        device="m-series-16gb",
        batch_size=8,
        num_layers=28,
        rank=64,
        force=True,
    )
    assert est.verdict == "does not fit"


def test_local_folder_reads_dtype_from_safetensors(tiny_model_dir):
    shape = load_shape(tiny_model_dir)
    assert shape.dtype_bytes == 4 and shape.bits is None and shape.hidden == 64


def test_hub_ids_resolve_offline_from_snapshots(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    s = load_shape("mlx-community/Qwen2.5-7B-Instruct-4bit")
    assert (s.hidden, s.layers, s.kv_heads, s.bits, s.group_size) == (3584, 28, 4, 4, 64)
    assert "qwen2.5-7b" in s.source and s.qkv_bias and not s.tie_embeddings
    assert load_shape("mlx-community/SmolLM2-360M-Instruct-8bit").bits == 8
    assert load_shape("HuggingFaceTB/SmolLM2-1.7B-Instruct").bits is None
    assert len(snapshots()) == 11


def test_devices():
    assert PROFILES["m-series-16gb"].usable_gb == pytest.approx(11.45, abs=0.01)
    assert get_device(memory_gb=12).usable_gb == 12
    assert get_device("cpu").usable_gb > 1
    with pytest.raises(PersonaError):
        get_device("m-series-99gb")


def test_json_output_shape(tiny_model_dir):
    r = CliRunner().invoke(cli, ["budget", "--model", str(tiny_model_dir), "--device", "m-series-8gb", "--json"])
    assert r.exit_code == 0, r.output
    d = json.loads(r.output)
    assert set(d) >= {"model", "device", "settings", "components", "total_gb", "usable_gb", "verdict"}
    assert all(k.endswith("_gb") for k in d["components"])
    assert d["total_gb"] == pytest.approx(sum(d["components"].values()), abs=1e-3)
    assert d["verdict"] == "fits"


def test_cli_fit_prints_overrides():
    r = CliRunner().invoke(
        cli,
        [
            "budget",
            "-m",
            "mlx-community/Qwen2.5-7B-Instruct-4bit",
            "--device",
            "m-series-16gb",
            "--num-layers",
            "-1",
            "--fit",
        ],
    )
    assert r.exit_code == 0, r.output
    assert "batch_size: 1" in r.output and "grad_checkpoint: true" in r.output


def test_cli_recipe_settings(tmp_path, tiny_model_dir):
    recipe = tmp_path / "r.yaml"
    recipe.write_text(f"model: {tiny_model_dir}\nsft:\n  batch_size: 3\n  lora_parameters:\n    rank: 32\n")
    r = CliRunner().invoke(cli, ["budget", "--recipe", str(recipe), "--json", "--device", "cpu", "--rank", "16"])
    s = json.loads(r.output)["settings"]
    assert (s["batch_size"], s["rank"]) == (3, 16)  # command line beats recipe beats default


@pytest.mark.parametrize(
    "args,msg",
    [
        (["-m", "nobody/NoSuchModel-7B"], "unknown model"),
        (["-m", "default", "--device", "m-series-99gb"], "unknown device"),
        (["-m", "default", "--rank", "-2"], "rank must be at least 1"),
        (["-m", "default", "--memory-gb", "-1"], "must be positive"),
    ],
)
def test_cli_bad_input_one_line_exit_1(args, msg):
    r = CliRunner().invoke(cli, ["budget", *args])
    assert r.exit_code == 1
    assert msg in r.output and len(r.output.strip().splitlines()) == 1 and "Traceback" not in r.output


def test_config_missing_fields_is_one_line_error(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "llama", "hidden_size": 64}))
    r = CliRunner().invoke(cli, ["budget", "-m", str(tmp_path)])
    assert r.exit_code == 1 and "lacks num_hidden_layers" in r.output
    assert len(r.output.strip().splitlines()) == 1


# ----------------------------------------------------------------------------- DPO's reference pass
def dpo_settings(**kw) -> TrainSettings:
    """DPO, LoRA r8 on 1 of the 2 blocks with checkpointing, one pair a step, 512 tokens: a small
    training step beside a reference pass of ``reference_batch_size`` pairs."""
    base = dict(stage="dpo", num_layers=1, batch_size=1, max_seq_length=512, grad_checkpoint=True)
    return TrainSettings(**{**base, **kw})


def test_the_dpo_estimate_is_the_larger_of_the_step_and_the_reference_pass():
    shape = small_shape()
    step = estimate_shape(shape, dpo_settings(reference_batch_size=0), BIG)  # SimPO: no pass
    assert step.reference_gb == 0 and step.reference_pass_gb == 0
    big = estimate_shape(shape, dpo_settings(reference_batch_size=16), BIG)
    # the pass (32 rows of 511 tokens through a block, no gradients) dominates: it is the stage's peak
    assert big.reference_pass_gb > step.total_gb
    assert big.total_gb == pytest.approx(big.reference_pass_gb)
    assert big.reference_gb == pytest.approx(big.reference_pass_gb - step.total_gb)
    assert any("reference pass (16 pairs of up to 512 tokens" in n for n in big.notes)
    # by hand: weights + overhead + 32 rows x 511 positions x 4 bytes x (a base block's linear
    # elements + 4 heads x 511 keys) + 32 rows x 256 reply positions x vocab 256 x float32
    linear = 8.1 * 64 + 5.3 * 128 + 1.6 * 32
    by_hand = 32 * 511 * 4 * (linear + 4 * 511) + 32 * 256 * 256 * 4
    assert big.reference_pass_gb == pytest.approx(step.weights_gb + step.overhead_gb + by_hand / 1e9)
    small = estimate_shape(shape, dpo_settings(reference_batch_size=1), BIG)
    assert 0 < small.reference_pass_gb < step.total_gb  # one pair at a time: the step is the peak
    assert small.total_gb == pytest.approx(step.total_gb) and small.reference_gb == 0
    sft = estimate_shape(shape, dpo_settings(stage="sft", reference_batch_size=16), BIG)
    assert sft.reference_pass_gb == 0  # SFT has no reference


def test_fit_first_shrinks_the_reference_batch_when_the_pass_is_the_peak():
    shape, s = small_shape(), dpo_settings(reference_batch_size=16)
    step = estimate_shape(shape, dpo_settings(reference_batch_size=0), BIG).total_gb
    big = estimate_shape(shape, s, BIG).total_gb
    from mlx_persona.budget.fit import solve

    res = solve(shape, s, Device("d", (step + big) / 2 / 0.85, "test", "cpu"))
    assert res.ok and res.steps == ["reference"]
    assert set(res.overrides()) == {"reference_batch_size"} and res.settings.reference_batch_size < 16
    assert "--reference-batch-size" in res.flags()
