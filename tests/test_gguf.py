"""GGUF -> MLX conversion, on GGUF files written from the tiny fixture model."""

import json
import re
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from gguf_writer import T_F16, T_F32, T_Q4_0, T_Q4_1, T_Q8_0, write_gguf

from mlx_persona.cli import cli
from mlx_persona.core.errors import PersonaError
from mlx_persona.models.gguf import convert_gguf, unpermute_rope_rows

MIXED_CORPUS = [
    "Hello, world! It's 2026-11-27 and the build is green.",
    "def f(x):\n\treturn {'a': [1, 2, 3]}  # tabs\tand  spaces",
    "café naïve façade — “quotes” and ‘single’ · Ω ≈ π",
    "日本語のテキスト、中文文本，한국어 텍스트",
    "emoji 🙂👍🏽🚀 family 👨‍👩‍👧 flags 🇫🇷",
    "   leading and trailing spaces   \n\n",
]

_TO_GGUF = {
    "self_attn.q_proj": "attn_q",
    "self_attn.k_proj": "attn_k",
    "self_attn.v_proj": "attn_v",
    "self_attn.o_proj": "attn_output",
    "mlp.gate_proj": "ffn_gate",
    "mlp.up_proj": "ffn_up",
    "mlp.down_proj": "ffn_down",
    "input_layernorm": "attn_norm",
    "post_attention_layernorm": "ffn_norm",
}


def permute_like_llama_cpp(w: np.ndarray, n_heads: int) -> np.ndarray:
    """What llama.cpp's converter does to q/k rows (the inverse of what we must undo)."""
    return w.reshape(n_heads, 2, w.shape[0] // n_heads // 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)


def tiny_to_gguf(model_dir: Path, out: Path, qtype: int = T_F32, arch: str = "llama") -> dict:
    """Write the tiny fixture model as a llama.cpp-style GGUF; return recovered values by mlx name."""
    import mlx.core as mx

    cfg = json.loads((model_dir / "config.json").read_text())
    weights = {k: np.array(v.astype(mx.float32)) for k, v in mx.load(str(model_dir / "model.safetensors")).items()}
    tok = json.loads((model_dir / "tokenizer.json").read_text())
    vocab = tok["model"]["vocab"]
    for added in tok["added_tokens"]:
        vocab[added["content"]] = added["id"]
    tokens = [t for t, _ in sorted(vocab.items(), key=lambda kv: kv[1])]
    merges = [m if isinstance(m, str) else " ".join(m) for m in tok["model"]["merges"]]
    specials = {a["content"] for a in tok["added_tokens"]}
    tcfg = json.loads((model_dir / "tokenizer_config.json").read_text())
    meta = {
        "general.architecture": arch,
        "general.name": "tiny",
        f"{arch}.embedding_length": cfg["hidden_size"],
        f"{arch}.feed_forward_length": cfg["intermediate_size"],
        f"{arch}.block_count": cfg["num_hidden_layers"],
        f"{arch}.attention.head_count": cfg["num_attention_heads"],
        f"{arch}.attention.head_count_kv": cfg["num_key_value_heads"],
        f"{arch}.attention.layer_norm_rms_epsilon": 1e-5,
        f"{arch}.rope.freq_base": float(cfg["rope_theta"]),
        f"{arch}.context_length": 512,
        "tokenizer.ggml.model": "gpt2",
        "tokenizer.ggml.pre": "gpt2",
        "tokenizer.ggml.tokens": tokens,
        "tokenizer.ggml.token_type": [3 if t in specials else 1 for t in tokens],
        "tokenizer.ggml.merges": merges,
        "tokenizer.ggml.eos_token_id": vocab["<|im_end|>"],
        "tokenizer.ggml.padding_token_id": vocab["<|endoftext|>"],
        "tokenizer.ggml.add_bos_token": False,
        "tokenizer.chat_template": tcfg["chat_template"],
    }
    tensors, names = {}, {}
    for name, w in weights.items():
        if name == "model.embed_tokens.weight":
            g = "token_embd.weight"
        elif name == "model.norm.weight":
            g = "output_norm.weight"
        else:
            m = re.match(r"model\.layers\.(\d+)\.(.+)\.weight$", name)
            g = f"blk.{m.group(1)}.{_TO_GGUF[m.group(2)]}.weight"
        if ".attn_q." in g:
            w = permute_like_llama_cpp(w, cfg["num_attention_heads"])
        elif ".attn_k." in g:
            w = permute_like_llama_cpp(w, cfg["num_key_value_heads"])
        tensors[g] = (w, qtype if w.ndim == 2 else T_F32)
        names[g] = name
    recovered = write_gguf(out, meta, tensors)
    result = {}
    for g, v in recovered.items():
        if ".attn_q." in g:
            v = np.array(unpermute_rope_rows(v, cfg["num_attention_heads"]))
        elif ".attn_k." in g:
            v = np.array(unpermute_rope_rows(v, cfg["num_key_value_heads"]))
        result[names[g]] = v
    return result


def _logits(model_dir, ids):
    import mlx.core as mx
    from mlx_lm import load

    model, _ = load(str(model_dir))
    return np.array(model(mx.array([ids])).astype(mx.float32))


def test_unpermute_inverts_llama_cpp_permutation():
    w = np.arange(8 * 2 * 3, dtype=np.float32).reshape(16, 3)  # 2 heads, head_dim 8
    assert np.array_equal(np.array(unpermute_rope_rows(permute_like_llama_cpp(w, 2), 2)), w)
    assert not np.array_equal(permute_like_llama_cpp(w, 2), w)


def test_f32_gguf_converts_to_identical_model(tiny_model_dir, tmp_path):
    tiny_to_gguf(tiny_model_dir, tmp_path / "tiny.gguf", T_F32)
    out = convert_gguf(tmp_path / "tiny.gguf", tmp_path / "converted", dequantize=True)
    ids = [5, 17, 42, 99, 3, 250]
    np.testing.assert_allclose(_logits(out, ids), _logits(tiny_model_dir, ids), rtol=1e-5, atol=1e-5)
    cfg = json.loads((out / "config.json").read_text())
    assert cfg["tie_word_embeddings"] is True and "quantization" not in cfg


@pytest.mark.parametrize("qtype,bits", [(T_Q8_0, 8), (T_Q4_0, 4), (T_Q4_1, 4), (T_F16, None)])
def test_quantized_gguf_dequantizes_exactly(tiny_model_dir, tmp_path, qtype, bits):
    import mlx.core as mx

    expected = tiny_to_gguf(tiny_model_dir, tmp_path / "tiny.gguf", qtype)
    out = convert_gguf(tmp_path / "tiny.gguf", tmp_path / "f32", dequantize=True)
    got = mx.load(str(out / "model.safetensors"))
    for name, ref in expected.items():
        assert got[name].dtype == mx.float32
        np.testing.assert_allclose(np.array(got[name]), ref, rtol=0, atol=1e-6, err_msg=name)

    if bits is None:
        return
    kept = convert_gguf(tmp_path / "tiny.gguf", tmp_path / "quant", dequantize=False)
    cfg = json.loads((kept / "config.json").read_text())
    assert cfg["quantization"]["bits"] == bits and cfg["quantization"]["group_size"] == 32
    ids = [7, 8, 9, 10]
    # the quantized model computes in float16: agreement to ~1e-3, far below what a wrong
    # row order or scale would give (differences of order 1)
    np.testing.assert_allclose(_logits(kept, ids), _logits(out, ids), rtol=0, atol=1e-2)


def test_converted_tokenizer_matches_and_round_trips(tiny_model_dir, tmp_path):
    from mlx_lm import load

    tiny_to_gguf(tiny_model_dir, tmp_path / "tiny.gguf")
    out = convert_gguf(tmp_path / "tiny.gguf", tmp_path / "converted")
    _, original = load(str(tiny_model_dir))
    _, converted = load(str(out))
    for text in MIXED_CORPUS:
        ids = converted.encode(text, add_special_tokens=False)
        assert ids == original.encode(text, add_special_tokens=False)
        assert converted.decode(ids) == text
    prompt = converted.apply_chat_template(
        [{"role": "user", "content": "hi"}], add_generation_prompt=True, tokenize=False
    )
    assert prompt.endswith("<|im_start|>assistant\n")
    assert converted.eos_token == "<|im_end|>"


def test_spm_tokenizer_round_trips(tmp_path):
    from tokenizers import Tokenizer

    from mlx_persona.models.gguf_tokenizer import build_tokenizer_files

    pieces = ["<unk>", "<s>", "</s>"] + [f"<0x{b:02X}>" for b in range(256)]
    words = [
        "▁",
        "h",
        "e",
        "l",
        "o",
        "w",
        "r",
        "d",
        "▁h",
        "he",
        "ll",
        "lo",
        "▁he",
        "llo",
        "▁hello",
        "▁w",
        "or",
        "▁wor",
        "ld",
        "▁world",
    ]
    tokens = pieces + words
    types = [2, 3, 3] + [6] * 256 + [1] * len(words)
    scores = [0.0] * len(pieces) + [-float(i) for i in range(len(words))]
    meta = {
        "tokenizer.ggml.model": "llama",
        "tokenizer.ggml.tokens": tokens,
        "tokenizer.ggml.token_type": types,
        "tokenizer.ggml.scores": scores,
        "tokenizer.ggml.bos_token_id": 1,
        "tokenizer.ggml.eos_token_id": 2,
        "tokenizer.ggml.unknown_token_id": 0,
        "tokenizer.ggml.add_bos_token": True,
    }
    files = build_tokenizer_files(meta)
    tok = Tokenizer.from_str(files["tokenizer.json"])
    enc = tok.encode("hello world")
    assert enc.tokens == ["<s>", "▁hello", "▁world"]
    assert tok.decode(tok.encode("hello world! ☃").ids, skip_special_tokens=True) == "hello world! ☃"
    assert json.loads(files["tokenizer_config.json"])["bos_token"] == "<s>"


def _no_partial(folder: Path) -> bool:
    return not folder.exists() or not any(folder.iterdir())


def test_import_rejects_truncated_file_cleanly(tiny_model_dir, tmp_path, monkeypatch):
    monkeypatch.setenv("MLX_PERSONA_HOME", str(tmp_path / "home"))
    tiny_to_gguf(tiny_model_dir, tmp_path / "tiny.gguf")
    data = (tmp_path / "tiny.gguf").read_bytes()
    (tmp_path / "cut.gguf").write_bytes(data[: len(data) // 2])
    res = CliRunner().invoke(cli, ["models", "import", str(tmp_path / "cut.gguf")])
    assert res.exit_code == 1
    assert "unreadable GGUF" in res.output and "Traceback" not in res.output
    assert len(res.output.strip().splitlines()[-1]) < 300
    assert _no_partial(tmp_path / "home" / "models")


def test_import_rejects_non_gguf_and_other_architectures(tiny_model_dir, tmp_path, monkeypatch):
    monkeypatch.setenv("MLX_PERSONA_HOME", str(tmp_path / "home"))
    (tmp_path / "notes.gguf").write_text("just some text, not a model\n")
    res = CliRunner().invoke(cli, ["models", "import", str(tmp_path / "notes.gguf")])
    assert res.exit_code == 1 and "not a GGUF file" in res.output

    tiny_to_gguf(tiny_model_dir, tmp_path / "q.gguf", arch="qwen2")
    res = CliRunner().invoke(cli, ["models", "import", str(tmp_path / "q.gguf")])
    assert res.exit_code == 1 and "not supported: qwen2" in res.output
    assert _no_partial(tmp_path / "home" / "models")

    res = CliRunner().invoke(cli, ["models", "import", str(tmp_path / "missing.gguf")])
    assert res.exit_code == 1 and "no such file" in res.output


def test_import_then_list(tiny_model_dir, tmp_path, monkeypatch):
    monkeypatch.setenv("MLX_PERSONA_HOME", str(tmp_path / "home"))
    tiny_to_gguf(tiny_model_dir, tmp_path / "Tiny-Chat.gguf", T_Q8_0)
    res = CliRunner().invoke(cli, ["models", "import", str(tmp_path / "Tiny-Chat.gguf"), "--dequantize", "no"])
    assert res.exit_code == 0, res.output
    folder = Path(res.output.strip().splitlines()[-1])
    assert folder == tmp_path / "home" / "models" / "tiny-chat"
    res = CliRunner().invoke(cli, ["models", "import", str(tmp_path / "Tiny-Chat.gguf")])
    assert res.exit_code == 1 and "already exists" in res.output
    res = CliRunner().invoke(cli, ["models", "list"])
    assert res.exit_code == 0 and "tiny-chat" in res.output and "quantized" in res.output


def test_convert_refuses_incomplete_metadata(tiny_model_dir, tmp_path):
    tiny_to_gguf(tiny_model_dir, tmp_path / "tiny.gguf")
    with pytest.raises(PersonaError):
        convert_gguf(tmp_path / "nope.gguf", tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_pull_default_takes_the_folder_another_run_converted_meanwhile(tiny_model_dir, tmp_path, monkeypatch):
    """Two runs on a fresh machine convert the default model at once: the one that finishes
    second finds the folder in place. It uses that folder, and leaves it as the first one wrote it."""
    import contextlib

    from mlx_persona.models import default, gguf

    tiny_to_gguf(tiny_model_dir, tmp_path / "tiny.gguf", T_F32)
    target = default.default_model_path(dequantize=True)
    real_atomic_dir = gguf.atomic_dir
    other = {}

    @contextlib.contextmanager
    def other_run_finishes_first(final, overwrite=False):
        monkeypatch.setattr(gguf, "atomic_dir", real_atomic_dir)
        other["dir"] = convert_gguf(tmp_path / "tiny.gguf", final, dequantize=True)  # the other run
        other["marker"] = (final / gguf.MARKER).read_text()
        with real_atomic_dir(final, overwrite) as tmp:
            yield tmp

    monkeypatch.setattr(gguf, "atomic_dir", other_run_finishes_first)
    said = []
    got = default.pull_default(gguf=tmp_path / "tiny.gguf", dequantize=True, progress=said.append)
    assert got == target == other["dir"]
    assert (target / gguf.MARKER).read_text() == other["marker"]
    assert said[-1] == f"converted meanwhile by another run: {target}"
    assert not [p for p in target.parent.iterdir() if p.name.endswith(".partial")]  # ours was removed


def test_pull_default_still_fails_on_a_bad_file_when_nothing_was_converted(tmp_path):
    from mlx_persona.core.errors import PersonaError
    from mlx_persona.models import default

    (tmp_path / "bad.gguf").write_bytes(b"not a gguf")
    with pytest.raises(PersonaError):
        default.pull_default(gguf=tmp_path / "bad.gguf", dequantize=True)
    assert not default.default_model_path(dequantize=True).exists()
