"""The Mac recipe end to end on a tiny 4-bit Qwen2: every stage, on quantized weights.

``recipes/mac-mini-16gb-qwen2.5-7b.yaml`` runs as shipped, with ``--set`` changing sizes only
(:data:`SIZES`: iterations, ranks, lengths, counts) plus the few overrides in :data:`HERE_ONLY`
that this machine needs; :func:`test_the_test_keeps_every_recipe_setting` checks that nothing
else of the recipe is changed, so each of its settings (DoRA on every layer, gradient
checkpointing and accumulation, prompt masking, cosine warmup, early stopping, DPO with RPO on
the fused 4-bit model, the m-series-16gb budget) runs here at small scale.

MLX's CPU backend runs the same quantized kernels as Metal (slowly), so with
``dequantize_on_cpu: false`` the training stages see what a Mac sees: QuantizedLinear layers
under the adapters, a quantized embedding, DoRA re-forming dequantized weights, fusing into
4-bit weights.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from mlx_persona.cli import cli
from mlx_persona.core.blas import fast_blas_env

RECIPE = Path(__file__).parent.parent / "recipes" / "mac-mini-16gb-qwen2.5-7b.yaml"
STAGES = ("clean", "sft", "sft_fuse", "pairs", "dpo", "dpo_fuse", "twin", "eval", "report")

# The recipe's sizes, scaled down; every other recipe setting runs as written.
SIZES = {
    "clean.max_tokens": 64,  # ~4 characters a token: fits max_seq_length in the tiny byte-level tokenizer
    "sft.rank": 4,
    "sft.alpha": 8,  # keeps the recipe's scale, alpha / rank = 2
    "sft.iters": 16,  # 4 updates of 4 accumulated steps
    "sft.warmup_steps": 2,
    "sft.steps_per_eval": 8,
    "sft.save_every": 8,
    "sft.max_seq_length": 256,
    "sft.val_batches": 2,
    "pairs.max_tokens": 8,
    "pairs.max_prompts": 6,
    "dpo.rank": 4,
    "dpo.iters": 6,
    "dpo.steps_per_eval": 3,
    "dpo.save_every": 2,
    "dpo.max_seq_length": 256,
    "eval.limit": 4,
    "eval.max_tokens": 8,
}
# What this machine needs and a Mac does not.
HERE_ONLY = {
    "sft.dequantize_on_cpu": False,  # keep the 4-bit weights on MLX's CPU backend, as Metal does
    "dpo.dequantize_on_cpu": False,
    "pairs.allow_truncated": True,  # a random model never ends a reply within max_tokens
    "pairs.closest_margin": 0.0,  # a random model's replies are all about equally far from the person's
}


def overrides(model: Path, extra: dict) -> list[str]:
    settings = {"model": str(model), **SIZES, **HERE_ONLY, **extra}
    out = []
    for k, v in settings.items():
        out += ["--set", f"{k}={str(v).lower() if isinstance(v, bool) else v}"]
    return out


def run_recipe(runs: Path, model: Path, extra: dict, *more: str):
    args = ["run", str(RECIPE), "--runs", str(runs), "--plain", *overrides(model, extra), *more]
    return CliRunner().invoke(cli, args, catch_exceptions=False)


def recipe_leaves(data, prefix=""):
    """{dotted.key: value} for every setting in the recipe's blocks."""
    if isinstance(data, dict):
        out = {}
        for k, v in data.items():
            out.update(recipe_leaves(v, f"{prefix}{k}."))
        return out
    return {prefix[:-1]: data}


def test_the_test_keeps_every_recipe_setting():
    """The e2e test changes sizes only: no recipe setting is left out or replaced by another kind."""
    recipe = recipe_leaves({k: v for k, v in yaml.safe_load(RECIPE.read_text()).items() if k not in ("data", "name")})
    size_words = ("iters", "rank", "alpha", "steps", "every", "length", "max_tokens", "batches", "prompts", "limit")
    for key in SIZES:
        assert any(w in key.split(".")[-1] for w in size_words), f"{key} is not a size"
    for key in HERE_ONLY:
        assert key not in recipe, f"{key} is in the recipe: the test must not change it"
    kept = [k for k in recipe if k not in SIZES]
    for must in ("sft.fine_tune_type", "sft.grad_checkpoint", "sft.grad_accumulation_steps", "dpo.rpo_alpha"):
        assert must in kept
    assert yaml.safe_load(RECIPE.read_text())["model"].endswith("-4bit")


def generate_with_mlx_lm(model: Path) -> str:
    """``mlx_lm generate`` in its own process: the twin is an ordinary MLX model folder."""
    cmd = [sys.executable, "-m", "mlx_lm", "generate", "--model", str(model), "--prompt", "hi", "--max-tokens", "4"]
    proc = subprocess.run(cmd, env=fast_blas_env(), capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return proc.stdout


@pytest.mark.e2e
@pytest.mark.parametrize(
    "method,arch,group,fuse",
    [
        ("dora", "qwen2-untied", 64, {"fuse.dequantize": True}),  # the recipe, its twin exported as float weights
        ("lora", "qwen2", 32, {}),  # the same with LoRA, the twin kept at 4 bits
    ],
)
def test_mac_recipe_end_to_end_on_a_4bit_model(tiny_variant, tmp_path, method, arch, group, fuse):
    from mlx_lm import load

    model = tiny_variant(arch, group)
    runs = tmp_path / "runs"
    res = run_recipe(runs, model, {"sft.fine_tune_type": method, **fuse})
    assert res.exit_code == 0, res.output
    run_dir = runs / "qwen7b-persona"
    m = json.loads((run_dir / "manifest.json").read_text())
    assert {s: m["stages"][s]["status"] for s in STAGES} == {s: "done" for s in STAGES}

    sft_cfg = json.loads((run_dir / "sft" / "adapter_config.json").read_text())
    assert sft_cfg["fine_tune_type"] == method and sft_cfg["num_layers"] == -1
    s = sft_cfg["persona_sft"]
    assert (
        s["grad_checkpoint"] and s["grad_accumulation_steps"] == 4 and s["mask_prompt"] and not s["dequantize_on_cpu"]
    )
    assert sft_cfg["lora_parameters"]["scale"] == 2.0
    dpo_cfg = json.loads((run_dir / "dpo" / "adapter_config.json").read_text())["persona_dpo"]
    shipped = yaml.safe_load(RECIPE.read_text())
    assert dpo_cfg["rpo_alpha"] == shipped["dpo"]["rpo_alpha"] and dpo_cfg["grad_checkpoint"]
    pairs = json.loads((run_dir / "pairs" / "stats.json").read_text())
    assert pairs["config"]["rejected_from"] == shipped["pairs"]["rejected_from"]
    assert pairs["rejected_from"]["twin"] == sum(pairs["pairs"].values()) > 0  # on-policy negatives only

    # SFT and DPO trained on the 4-bit weights: the fused SFT model DPO trained on keeps them
    # (even when the final export is dequantized), and the budget planned for them
    quant = json.loads((run_dir / "sft_fused" / "config.json").read_text()).get("quantization")
    assert quant and quant["bits"] == 4 and quant["group_size"] == group
    twin_cfg = json.loads((run_dir / "dpo_fused" / "config.json").read_text())
    assert ("quantization" in twin_cfg) == (not fuse.get("fuse.dequantize", False))
    for stage in ("sft", "dpo"):
        assert "dequantized float32 copy" not in (run_dir / stage / f"{stage}.log").read_text()
    budget = m["budget"]
    assert budget["sft"]["settings"]["fine_tune_type"] == method
    assert ("DoRA on a quantized model" in " ".join(budget["sft"]["notes"])) == (method == "dora")

    # the last adapters moved from their zero start on the quantized base (the kept best one may
    # be the untouched step-0 adapter: the recipe's learning rates barely move a random model in 4 updates)
    import mlx.core as mx

    for stage in ("sft", "dpo"):
        weights = mx.load(str(run_dir / stage / "last" / "adapters.safetensors"))
        assert any(mx.abs(w).max().item() > 0 for k, w in weights.items() if k.endswith("lora_b"))

    twin = json.loads((run_dir / "twin" / "twin.json").read_text())
    twin_dir = run_dir / twin["folder"]
    load(str(twin_dir))  # mlx_lm's loader, in process
    assert "Generation:" in generate_with_mlx_lm(twin_dir)

    chat = CliRunner().invoke(cli, ["chat", str(run_dir), "-m", "should we ship?", "--max-tokens", "4"])
    assert chat.exit_code == 0, chat.output
    assert "report.html" in res.output and (run_dir / "report.html").read_text().startswith("<!doctype html>")
