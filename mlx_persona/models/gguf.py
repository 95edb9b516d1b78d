"""Convert a llama-family GGUF file into an MLX model folder that ``mlx_lm.load`` opens.

The story of a conversion:

1. check the file is a GGUF (magic bytes) and read it with ``mx.load`` — MLX reads GGUF natively
   and hands Q4_0 / Q4_1 / Q8_0 blocks back as its own affine-quantized triplets
   (``weight`` packed uint32, ``scales``, ``biases``; group size 32), F16/F32 as plain arrays;
2. refuse anything that is not the llama architecture, with its name;
3. rename tensors to mlx_lm's llama names and undo llama.cpp's RoPE row permutation of the
   q and k projections (its converter interleaves the two rotary halves of every head);
4. keep quantized weights (Metal: fast 4-bit kernels) or dequantize them to float32 (MLX's CPU
   backend multiplies 4-bit weights very slowly);
5. write ``model.safetensors``, ``config.json`` and the tokenizer files (rebuilt from the GGUF
   vocabulary, see :mod:`mlx_persona.models.gguf_tokenizer`), all inside a temporary folder that is
   renamed into place only when everything succeeded.

The export direction (:mod:`mlx_persona.models.gguf_export`) reuses this module's name table
(:func:`gguf_name`, its inverse) and :func:`permute_rope_rows` (the inverse of the un-permute).
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from mlx_persona.core.errors import PersonaError
from mlx_persona.core.runs import atomic_dir
from mlx_persona.models.gguf_tokenizer import build_tokenizer_files

GGUF_MAGIC = b"GGUF"
SUPPORTED_ARCHS = ("llama",)
MARKER = "persona_model.json"  # provenance file written beside the weights

# GGUF tensor name -> mlx_lm llama module path.
_LAYER_NAMES = {
    "attn_q": "self_attn.q_proj",
    "attn_k": "self_attn.k_proj",
    "attn_v": "self_attn.v_proj",
    "attn_output": "self_attn.o_proj",
    "ffn_gate": "mlp.gate_proj",
    "ffn_up": "mlp.up_proj",
    "ffn_down": "mlp.down_proj",
    "attn_norm": "input_layernorm",
    "ffn_norm": "post_attention_layernorm",
}
_TOP_NAMES = {"token_embd": "model.embed_tokens", "output_norm": "model.norm", "output": "lm_head"}
# the other direction (export): mlx_lm module path -> GGUF tensor name
_GGUF_LAYER_NAMES = {v: k for k, v in _LAYER_NAMES.items()}
_GGUF_TOP_NAMES = {v: k for k, v in _TOP_NAMES.items()}
_BLOCK = re.compile(r"^blk\.(\d+)\.([a-z_]+)\.(weight|scales|biases|bias)$")
_MLX_BLOCK = re.compile(r"^model\.layers\.(\d+)\.([a-z_.]+)\.(weight|bias)$")
_MLX_TOP = re.compile(r"^([a-z_.]+)\.(weight|bias)$")
_TOP = re.compile(r"^([a-z_]+)\.(weight|scales|biases|bias)$")


def _scalar(meta: Mapping[str, Any], key: str, default=None):
    v = meta.get(key, default)
    return v.item() if hasattr(v, "item") else v


def read_gguf(path: Path) -> tuple[dict, dict]:
    """Load tensors and metadata, turning every way a file can be wrong into one clear line."""
    path = Path(path)
    if not path.is_file():
        raise PersonaError(f"{path}: no such file")
    with open(path, "rb") as f:
        magic = f.read(4)
    if magic != GGUF_MAGIC:
        raise PersonaError(f"{path}: not a GGUF file (it does not start with the GGUF magic bytes)")
    import mlx.core as mx

    try:
        tensors, meta = mx.load(str(path), return_metadata=True)
    except (RuntimeError, ValueError) as e:
        reason = str(e).replace("[load_gguf] ", "").strip()
        raise PersonaError(f"{path}: unreadable GGUF ({reason})") from None
    return tensors, meta


def model_config(meta: Mapping[str, Any], tensors: Mapping[str, Any]) -> dict:
    """mlx_lm llama ``config.json`` from GGUF metadata."""
    arch = str(_scalar(meta, "general.architecture", "unknown"))
    if arch not in SUPPORTED_ARCHS:
        raise PersonaError(f"not supported: {arch} (only llama-architecture GGUF files convert)")

    def need(key: str):
        v = _scalar(meta, f"{arch}.{key}")
        if v is None:
            raise PersonaError(f"GGUF metadata lacks {arch}.{key}; the file is incomplete")
        return v

    hidden = int(need("embedding_length"))
    heads = int(need("attention.head_count"))
    kv_heads = int(_scalar(meta, f"{arch}.attention.head_count_kv", heads))
    n_tokens = len(meta.get("tokenizer.ggml.tokens", []))
    vocab = int(_scalar(meta, f"{arch}.vocab_size", n_tokens) or n_tokens)
    head_dim = int(_scalar(meta, f"{arch}.attention.key_length", hidden // heads))
    cfg = {
        "model_type": "llama",
        "architectures": ["LlamaForCausalLM"],
        "hidden_size": hidden,
        "intermediate_size": int(need("feed_forward_length")),
        "num_hidden_layers": int(need("block_count")),
        "num_attention_heads": heads,
        "num_key_value_heads": kv_heads,
        "head_dim": head_dim,
        "rms_norm_eps": float(_scalar(meta, f"{arch}.attention.layer_norm_rms_epsilon", 1e-5)),
        "rope_theta": float(_scalar(meta, f"{arch}.rope.freq_base", 10000.0)),
        "max_position_embeddings": int(_scalar(meta, f"{arch}.context_length", 2048)),
        "vocab_size": vocab,
        "tie_word_embeddings": "output.weight" not in tensors,
        "attention_bias": "blk.0.attn_q.bias" in tensors,
        "mlp_bias": "blk.0.ffn_up.bias" in tensors,
    }
    for key in ("bos", "eos"):
        tid = _scalar(meta, f"tokenizer.ggml.{key}_token_id")
        if tid is not None:
            cfg[f"{key}_token_id"] = int(tid)
    return cfg


def unpermute_rope_rows(w, n_heads: int):
    """Undo llama.cpp's q/k row order: it stores each head's rows as (pair, half) instead of
    (half, pair). Works for plain weights and for quantized weight/scales/biases alike, because
    a quantized row keeps its own scales and biases. Shape: (n_heads * head_dim, ...) in and out."""
    rows = w.shape[0]
    half = rows // n_heads // 2
    return w.reshape(n_heads, half, 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)


def permute_rope_rows(w, n_heads: int):
    """llama.cpp's q/k row order, the inverse of :func:`unpermute_rope_rows`: each head's rows go
    from (half, pair) to (pair, half), so that its RoPE rotates adjacent pairs. Shape:
    (n_heads * head_dim, ...) in and out; numpy and MLX arrays alike."""
    rows = w.shape[0]
    half = rows // n_heads // 2
    return w.reshape(n_heads, 2, half, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)


def gguf_name(name: str) -> str | None:
    """mlx_lm llama/qwen2 tensor name -> GGUF tensor name (``model.layers.3.mlp.up_proj.weight``
    -> ``blk.3.ffn_up.weight``); None for a tensor GGUF has no name for."""
    m = _MLX_BLOCK.match(name)
    if m:
        layer, part, leaf = m.groups()
        target = _GGUF_LAYER_NAMES.get(part)
        return f"blk.{layer}.{target}.{leaf}" if target else None
    m = _MLX_TOP.match(name)
    if m:
        part, leaf = m.groups()
        target = _GGUF_TOP_NAMES.get(part)
        return f"{target}.{leaf}" if target else None
    return None


def _mlx_name(name: str) -> str | None:
    m = _BLOCK.match(name)
    if m:
        layer, part, leaf = m.groups()
        target = _LAYER_NAMES.get(part)
        return f"model.layers.{layer}.{target}.{leaf}" if target else None
    m = _TOP.match(name)
    if m:
        part, leaf = m.groups()
        target = _TOP_NAMES.get(part)
        return f"{target}.{leaf}" if target else None
    return None


def convert_tensors(tensors: Mapping[str, Any], cfg: dict, dequantize: bool) -> tuple[dict, dict | None]:
    """Rename, un-permute, and (optionally) dequantize. Returns (weights, quantization config)."""
    import mlx.core as mx

    out: dict[str, Any] = {}
    quant: dict[str, dict] = {}
    for name, arr in tensors.items():
        if name.endswith((".scales", ".biases")):
            continue  # handled with their weight
        target = _mlx_name(name)
        if target is None:
            continue  # e.g. rope_freqs: computed by mlx_lm from the config
        base = name[: -len(".weight")] if name.endswith(".weight") else None
        scales = tensors.get(f"{base}.scales") if base else None
        biases = tensors.get(f"{base}.biases") if base else None
        heads = None
        if ".attn_q." in name:
            heads = cfg["num_attention_heads"]
        elif ".attn_k." in name:
            heads = cfg["num_key_value_heads"]
        if heads is not None:
            arr = unpermute_rope_rows(arr, heads)
            if scales is not None:
                scales, biases = unpermute_rope_rows(scales, heads), unpermute_rope_rows(biases, heads)
        if scales is None:
            out[target] = arr.astype(mx.float32) if dequantize else arr
            continue
        group = 32  # every legacy GGUF block format (Q4_0, Q4_1, Q8_0) holds 32 values
        in_features = scales.shape[-1] * group
        bits = arr.shape[-1] * 32 // in_features
        if dequantize:
            # float32 scales: an exact float32 result rather than one rounded to float16
            out[target] = mx.dequantize(
                arr, scales.astype(mx.float32), biases.astype(mx.float32), group_size=group, bits=bits
            )
        else:
            prefix = target[: -len(".weight")]
            out[target], out[f"{prefix}.scales"], out[f"{prefix}.biases"] = arr, scales, biases
            quant[prefix] = {"group_size": group, "bits": bits}
    if not quant:
        return out, None
    # one global setting for the common case, per-layer entries where a layer differs
    settings = [tuple(v.values()) for v in quant.values()]
    common = max(set(settings), key=settings.count)
    qcfg: dict = {"group_size": common[0], "bits": common[1]}
    for prefix, v in quant.items():
        if (v["group_size"], v["bits"]) != common:
            qcfg[prefix] = v
    return out, qcfg


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def dequantize_by_default() -> bool:
    """Float32 weights on MLX's CPU backend (4-bit matmul is slow there), quantized on the GPU."""
    import mlx.core as mx

    return mx.default_device() == mx.cpu


def convert_gguf(
    gguf_path: Path,
    out_dir: Path,
    dequantize: bool | None = None,
    overwrite: bool = False,
    progress: Callable[[str], None] | None = None,
) -> Path:
    """Convert ``gguf_path`` into the MLX model folder ``out_dir`` (created atomically).

    ``dequantize=None`` picks for the machine: float32 when MLX's default device is the CPU,
    quantized weights kept on the GPU.
    """
    import mlx.core as mx

    say = progress or (lambda _msg: None)
    gguf_path, out_dir = Path(gguf_path), Path(out_dir)
    if out_dir.exists() and not overwrite:
        raise PersonaError(f"{out_dir} already exists (pass --force to replace it)")
    if dequantize is None:
        dequantize = dequantize_by_default()
    say(f"reading {gguf_path.name}")
    tensors, meta = read_gguf(gguf_path)
    cfg = model_config(meta, tensors)
    tok_files = build_tokenizer_files(meta)
    say("converting weights" + (" (dequantizing to float32)" if dequantize else ""))
    weights, qcfg = convert_tensors(tensors, cfg, dequantize)
    expected = f"model.layers.{cfg['num_hidden_layers'] - 1}.self_attn.q_proj.weight"
    if expected not in weights or "model.embed_tokens.weight" not in weights:
        raise PersonaError(f"{gguf_path}: tensors missing for a llama model ({expected})")
    if qcfg:
        cfg["quantization"] = qcfg
        cfg["quantization_config"] = qcfg
    with atomic_dir(out_dir, overwrite=overwrite) as tmp:
        mx.save_safetensors(str(tmp / "model.safetensors"), weights, metadata={"format": "mlx"})
        (tmp / "config.json").write_text(json.dumps(cfg, indent=2) + "\n")
        for name, text in tok_files.items():
            (tmp / name).write_text(text, encoding="utf-8")
        marker = {
            "source": str(gguf_path.resolve()),
            "source_sha256": _sha256(gguf_path),
            "file_type": _scalar(meta, "general.file_type"),
            "name": _scalar(meta, "general.name"),
            "dequantized": bool(dequantize),
            "quantization": qcfg,
        }
        (tmp / MARKER).write_text(json.dumps(marker, indent=2) + "\n")
    say(f"wrote {out_dir}")
    return out_dir
