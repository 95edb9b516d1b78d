"""Fusing: the fused model computes what base + adapter computes; bad input changes nothing."""

from __future__ import annotations

import json
import shutil

import mlx.core as mx
import numpy as np
import pytest
from click.testing import CliRunner
from sft_helpers import FAST, write_chat_data

from mlx_persona.cli import cli
from mlx_persona.models.fuse import GGUF_NAME
from mlx_persona.sft.config import SFTConfig
from mlx_persona.sft.train import run_sft

TOKENS = mx.array([[1, 5, 9, 40, 77, 120, 3, 2]])


def logits(model_dir, adapter=None):
    from mlx_lm import load

    model, _ = load(str(model_dir), adapter_path=str(adapter) if adapter else None)
    out = model(TOKENS)
    mx.eval(out)
    return np.array(out)


def fuse(*args):
    return CliRunner().invoke(cli, ["fuse", *map(str, args)])


@pytest.fixture(scope="module", params=["lora", "dora"])
def adapter(request, tiny_model_dir, tmp_path_factory):
    root = tmp_path_factory.mktemp(request.param)
    cfg = SFTConfig.from_mapping({**FAST, "fine_tune_type": request.param, "iters": 8, "save_every": 4})
    run_sft(tiny_model_dir, write_chat_data(root / "data"), root / "sft", cfg, log=lambda m: None)
    return root / "sft"


def test_fused_forward_equals_base_plus_adapter(tiny_model_dir, adapter, tmp_path):
    out = tmp_path / "fused"
    result = fuse("--model", tiny_model_dir, "--adapter-path", adapter, "--out", out, "--gguf")
    assert result.exit_code == 0, result.output
    with_adapter, fused, base = logits(tiny_model_dir, adapter), logits(out), logits(tiny_model_dir)
    np.testing.assert_allclose(fused, with_adapter, rtol=1e-4, atol=1e-4)
    assert not np.allclose(fused, base, atol=1e-3)  # the adapter did change something
    assert (out / GGUF_NAME).stat().st_size > 0 and (out / "tokenizer.json").is_file()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no partial folders left


def test_adapter_from_another_model_is_one_line(tiny_model_dir, adapter, tmp_path):
    import sys

    sys.path.insert(0, str(__import__("pathlib").Path(__file__).parent))
    from tiny import build_tiny_llama

    other = build_tiny_llama(tmp_path / "other", hidden=32)
    result = fuse("--model", other, "--adapter-path", adapter, "--out", tmp_path / "fused")
    assert result.exit_code == 1
    assert result.output.count("\n") == 1 and "does not fit" in result.output and "shape" in result.output
    assert not (tmp_path / "fused").exists()


def test_gguf_needs_a_supported_architecture(tiny_model_dir, adapter, tmp_path):
    other = tmp_path / "gemma"
    shutil.copytree(tiny_model_dir, other)
    config = json.loads((other / "config.json").read_text())
    (other / "config.json").write_text(json.dumps({**config, "model_type": "gemma2"}))
    result = fuse("--model", other, "--adapter-path", adapter, "--out", tmp_path / "fused", "--gguf")
    assert result.exit_code == 1 and "GGUF export" in result.output and "gemma2" in result.output
    existing = tmp_path / "existing"
    existing.mkdir()
    result = fuse("--model", tiny_model_dir, "--adapter-path", adapter, "--out", existing)
    assert result.exit_code == 1 and "--overwrite" in result.output


def test_dequantize_a_quantized_base(tiny_model_dir, tmp_path):
    import mlx.nn as nn
    from mlx_lm import load
    from mlx_lm.utils import save

    model, tok, config = load(str(tiny_model_dir), return_config=True)
    nn.quantize(model, group_size=32, bits=4)
    q = tmp_path / "q4"
    save(
        q,
        str(tiny_model_dir),
        model,
        tok,
        {**config, "quantization": {"group_size": 32, "bits": 4}},
        donate_model=False,
    )
    cfg = SFTConfig.from_mapping({**FAST, "iters": 4, "save_every": 4})
    run_sft(q, write_chat_data(tmp_path / "data"), tmp_path / "sft", cfg, log=lambda m: None)
    # the GGUF writer dequantizes a quantized model itself (test_export_gguf.py checks its values)
    result = fuse("--model", q, "--adapter-path", tmp_path / "sft", "--out", tmp_path / "fused-q", "--gguf")
    assert result.exit_code == 0, result.output
    assert (tmp_path / "fused-q" / GGUF_NAME).stat().st_size > 0
    result = fuse(
        "--model", q, "--adapter-path", tmp_path / "sft", "--out", tmp_path / "fused", "--dequantize", "--gguf"
    )
    assert result.exit_code == 0, result.output
    assert "quantization" not in json.loads((tmp_path / "fused" / "config.json").read_text())
    np.testing.assert_allclose(logits(tmp_path / "fused"), logits(q, tmp_path / "sft"), rtol=1e-3, atol=1e-3)
