"""Write an MLX model folder as one GGUF file, the format llama.cpp, Ollama and LM Studio load.

The story of an export, the converter in :mod:`mlx_persona.models.gguf` run backwards:

1. read ``config.json``: the llama family (llama, mistral) and the Qwen2 family (qwen2) are
   written; anything else is refused by name before a byte is written;
2. plan every tensor: its GGUF name (the importer's table, inverted), its shape, and the type
   it is stored as (:func:`tensor_type`);
3. write the header, the metadata (the model's shape under ``<arch>.*``, the tokenizer and the
   chat template under ``tokenizer.*``, :func:`~mlx_persona.models.gguf_tokenizer.tokenizer_metadata`)
   and the tensor table with llama.cpp's own ``gguf`` package;
4. stream the tensors one at a time, so a 7B model never sits in memory as float32: load it
   (MLX loads safetensors lazily), dequantize a quantized weight (``mx.dequantize``: MLX's
   affine 4/8-bit groups), put the q/k rows of llama models into llama.cpp's RoPE order, and
   encode it as F32, F16, Q8_0 or Q4_0 blocks (``gguf.quants``); a large matrix (Qwen's
   152k-row embedding) goes through in slices of rows;
5. the file is written under a temporary name beside its target and renamed last: a failure
   (a full disk, Ctrl-C) leaves nothing behind.

Storage types, as llama.cpp's own converter and quantizer choose them: 1-D tensors (norms,
biases) stay F32; ``f16`` stores every matrix as F16; ``q8_0`` stores matrices as Q8_0 blocks
(32 int8 values and one f16 scale: value = d * q); ``q4_0`` stores them as Q4_0 blocks (32 4-bit
values and one f16 scale: value = d * (q - 8)) but keeps the token embedding and the output
layer at Q8_0, where 4 bits cost the most. A matrix whose rows do not split into blocks of 32
falls back to F16.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from mlx_persona.core.errors import PersonaError
from mlx_persona.models.gguf import gguf_name, permute_rope_rows
from mlx_persona.models.gguf_tokenizer import tokenizer_metadata

QUANTS = ("f16", "q8_0", "q4_0")
# mlx_lm model_type -> llama.cpp architecture, and whether q/k rows take llama.cpp's RoPE order
ARCHS = {"llama": ("llama", True), "mistral": ("llama", True), "qwen2": ("qwen2", False)}
BLOCK = 32  # values per Q8_0 / Q4_0 block
EMBEDDING_NAMES = ("token_embd.weight", "output.weight")


@dataclass
class Planned:
    """One tensor of the file: where it comes from and how it is stored."""

    name: str  # GGUF name
    source: str  # mlx_lm name in the safetensors files
    shape: tuple  # logical (rows, columns), numpy order
    qtype: object  # gguf.GGMLQuantizationType
    rope_heads: int | None = None  # q/k: heads to permute by


def _config(model_dir: Path) -> dict:
    try:
        return json.loads((model_dir / "config.json").read_text())
    except (OSError, ValueError):
        raise PersonaError(f"{model_dir} is not an MLX model folder (no readable config.json)") from None


def check_exportable(model_dir: Path) -> dict:
    """The folder's config when it can be written as GGUF; else a one-line error, before any work."""
    cfg = _config(Path(model_dir))
    kind = cfg.get("model_type", "unknown")
    if kind not in ARCHS:
        raise PersonaError(f"GGUF export: not supported: {kind} (supported: {', '.join(ARCHS)})")
    scaling = cfg.get("rope_scaling") or {}
    rope_type = scaling.get("rope_type", scaling.get("type")) if isinstance(scaling, dict) else None
    if rope_type not in (None, "default", "linear"):
        raise PersonaError(f"GGUF export: RoPE scaling '{rope_type}' is not supported yet (none or linear)")
    q = cfg.get("quantization") or {}
    if q.get("mode", "affine") != "affine":
        raise PersonaError(f"GGUF export: {q.get('mode')} quantized weights cannot be dequantized here")
    return cfg


def tensor_type(name: str, shape: tuple, quant: str):
    """The GGUF storage type of one tensor (see the module docstring for the rules)."""
    from gguf import GGMLQuantizationType as T

    if len(shape) < 2:
        return T.F32
    if quant == "f16" or shape[-1] % BLOCK:
        return T.F16
    if quant == "q8_0" or name in EMBEDDING_NAMES:
        return T.Q8_0
    return T.Q4_0


def _weights(model_dir: Path) -> dict:
    """Every tensor of the folder, lazily (nothing is read until a tensor is evaluated)."""
    import mlx.core as mx

    files = sorted(model_dir.glob("*.safetensors"))
    if not files:
        raise PersonaError(f"{model_dir}: no *.safetensors weights")
    out = {}
    for f in files:
        out.update(mx.load(str(f)))
    return out


def _quant_of(cfg: dict, module: str) -> tuple[int, int]:
    q = cfg.get("quantization") or cfg.get("quantization_config") or {}
    layer = q.get(module)
    if isinstance(layer, dict):
        return int(layer.get("group_size", 64)), int(layer.get("bits", 4))
    return int(q.get("group_size", 64)), int(q.get("bits", 4))


def plan(cfg: dict, weights: dict, quant: str) -> list[Planned]:
    """The file's tensors in a stable order: embedding, blocks by layer, norm, output."""
    arch, permute = ARCHS[cfg["model_type"]]
    heads = int(cfg["num_attention_heads"])
    kv_heads = int(cfg.get("num_key_value_heads") or heads)
    out = []
    for source in weights:
        if source.endswith((".scales", ".biases")):
            continue  # a quantized weight's groups: read with their weight
        name = gguf_name(source)
        if name is None:
            if source.endswith("rotary_emb.inv_freq"):
                continue  # recomputed from the config by every reader
            raise PersonaError(f"GGUF export: no GGUF name for tensor {source} (not a plain {arch} model?)")
        shape = tuple(weights[source].shape)
        module = source.rsplit(".", 1)[0]
        if f"{module}.scales" in weights:
            _, bits = _quant_of(cfg, module)
            shape = (shape[0], shape[1] * 32 // bits)
        rope = None
        if permute and ".attn_q." in name:
            rope = heads
        elif permute and ".attn_k." in name:
            rope = kv_heads
        out.append(Planned(name, source, shape, tensor_type(name, shape, quant), rope))

    def order(p: Planned):
        parts = p.name.split(".")
        if parts[0] == "blk":
            return (1, int(parts[1]), p.name)
        return ({"token_embd": 0, "output_norm": 2, "output": 3}.get(parts[0], 4), 0, p.name)

    return sorted(out, key=order)


CHUNK_ROWS_VALUES = 1 << 24  # values per slice of a large matrix (64 MB as float32)


def _as_float32(p: Planned, cfg: dict, weights: dict, rows: slice | None = None):
    """One tensor (or a slice of its rows) as a float32 numpy array in llama.cpp's layout:
    dequantized, q/k rows permuted."""
    import mlx.core as mx
    import numpy as np

    w = weights[p.source]
    module = p.source.rsplit(".", 1)[0]
    rows = rows or slice(None)
    if f"{module}.scales" in weights:
        group, bits = _quant_of(cfg, module)
        s, b = weights[f"{module}.scales"][rows], weights[f"{module}.biases"][rows]
        w = mx.dequantize(w[rows], s.astype(mx.float32), b.astype(mx.float32), group_size=group, bits=bits)
    else:
        w = w[rows]
    arr = np.array(w.astype(mx.float32))
    if p.rope_heads:
        arr = permute_rope_rows(arr, p.rope_heads)
    return np.ascontiguousarray(arr)


def _stored(p: Planned, cfg: dict, weights: dict):
    """The bytes of one tensor as stored. A large matrix (a 150k-token embedding) is read,
    dequantized and encoded a slice of rows at a time, so only its encoded form is ever whole."""
    import numpy as np

    if len(p.shape) < 2 or p.rope_heads or p.shape[0] * p.shape[1] <= CHUNK_ROWS_VALUES:
        return _encode(_as_float32(p, cfg, weights), p.qtype)
    step = max(1, CHUNK_ROWS_VALUES // p.shape[1])
    parts = [_encode(_as_float32(p, cfg, weights, slice(i, i + step)), p.qtype) for i in range(0, p.shape[0], step)]
    return np.concatenate(parts, axis=0)


def _encode(arr, qtype):
    import numpy as np
    from gguf import GGMLQuantizationType as T
    from gguf import quants

    if qtype == T.F32:
        return arr.astype(np.float32)
    if qtype == T.F16:
        return arr.astype(np.float16)
    return quants.quantize(arr, qtype)


def _metadata(writer, cfg: dict, arch: str, name: str, n_vocab: int, quant: str, extra: dict) -> None:
    import gguf

    hidden, heads = int(cfg["hidden_size"]), int(cfg["num_attention_heads"])
    head_dim = int(cfg.get("head_dim") or hidden // heads)
    writer.add_name(name)
    writer.add_file_type(
        {
            "f16": gguf.LlamaFileType.MOSTLY_F16,
            "q8_0": gguf.LlamaFileType.MOSTLY_Q8_0,
            "q4_0": gguf.LlamaFileType.MOSTLY_Q4_0,
        }[quant]
    )
    if quant != "f16":
        writer.add_quantization_version(gguf.GGML_QUANT_VERSION)
    writer.add_context_length(int(cfg.get("max_position_embeddings", 2048)))
    writer.add_embedding_length(hidden)
    writer.add_block_count(int(cfg["num_hidden_layers"]))
    writer.add_feed_forward_length(int(cfg["intermediate_size"]))
    writer.add_head_count(heads)
    writer.add_head_count_kv(int(cfg.get("num_key_value_heads") or heads))
    writer.add_rope_dimension_count(head_dim)
    if head_dim != hidden // heads:
        writer.add_key_length(head_dim)
        writer.add_value_length(head_dim)
    writer.add_rope_freq_base(float(cfg.get("rope_theta", 10000.0)))
    writer.add_layer_norm_rms_eps(float(cfg.get("rms_norm_eps", 1e-6)))
    writer.add_vocab_size(n_vocab)
    scaling = cfg.get("rope_scaling") or {}
    if isinstance(scaling, dict) and scaling.get("rope_type", scaling.get("type")) == "linear":
        writer.add_rope_scaling_type(gguf.RopeScalingType.LINEAR)
        writer.add_rope_scaling_factor(float(scaling["factor"]))
    for key, value in extra.items():
        if isinstance(value, bool):
            writer.add_bool(key, value)
        elif isinstance(value, int):
            writer.add_uint32(key, value)
        elif isinstance(value, float):
            writer.add_float32(key, value)
        elif isinstance(value, str):
            writer.add_string(key, value)
        elif key == "tokenizer.ggml.token_type":
            writer.add_array(key, [int(v) for v in value])  # gguf stores a list of ints as INT32
        elif key == "tokenizer.ggml.scores":
            writer.add_array(key, [float(v) for v in value])
        else:
            writer.add_array(key, value)


def write_gguf(
    model_dir: Path,
    out_file: Path,
    quant: str = "f16",
    name: str | None = None,
    progress: Callable[[str], None] | None = None,
) -> Path:
    """Write the MLX model folder ``model_dir`` as the GGUF file ``out_file`` (see the module
    docstring); returns ``out_file``. It appears only when complete."""
    import gguf

    say = progress or (lambda _m: None)
    model_dir, out_file = Path(model_dir), Path(out_file)
    if quant not in QUANTS:
        raise PersonaError(f"GGUF export: unknown --quant {quant} (choose {', '.join(QUANTS)})")
    cfg = check_exportable(model_dir)
    arch = ARCHS[cfg["model_type"]][0]
    weights = _weights(model_dir)
    planned = plan(cfg, weights, quant)
    embed = next((p for p in planned if p.name == "token_embd.weight"), None)
    if embed is None:
        raise PersonaError(f"GGUF export: {model_dir} has no token embedding (model.embed_tokens.weight)")
    extra = tokenizer_metadata(model_dir, embed.shape[0])
    out_file.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{out_file.name}.", suffix=".partial", dir=out_file.parent)
    os.close(fd)
    writer = gguf.GGUFWriter(tmp, arch)
    try:
        _metadata(writer, cfg, arch, name or model_dir.name, embed.shape[0], quant, extra)
        for p in planned:
            dtype, nbytes = _planned_bytes(p)
            writer.add_tensor_info(p.name, _stored_shape(p), dtype, nbytes, raw_dtype=p.qtype)
        writer.write_header_to_file()
        writer.write_kv_data_to_file()
        writer.write_ti_data_to_file()
        for i, p in enumerate(planned):
            say(f"[{i + 1}/{len(planned)}] {p.name} {p.qtype.name}")
            writer.write_tensor_data(_stored(p, cfg, weights))
        writer.flush()
        os.fsync(writer.fout[0].fileno())
        writer.close()
        os.replace(tmp, out_file)
    except OSError as e:
        writer.close()
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        if e.errno == errno.ENOSPC:
            raise PersonaError(f"disk full while writing {out_file.name}: free some space and export again") from None
        raise PersonaError(f"could not write {out_file}: {e.strerror or e}") from None
    except BaseException:
        writer.close()
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    return out_file


def _stored_shape(p: Planned) -> tuple:
    """The shape handed to the writer: bytes per row for block types, the logical shape else."""
    from gguf import GGMLQuantizationType as T
    from gguf.quants import quant_shape_to_byte_shape

    if p.qtype in (T.F32, T.F16):
        return p.shape
    return quant_shape_to_byte_shape(p.shape, p.qtype)


def _planned_bytes(p: Planned):
    import numpy as np
    from gguf import GGMLQuantizationType as T

    shape = _stored_shape(p)
    count = int(np.prod(shape))
    if p.qtype == T.F32:
        return np.float32, count * 4
    if p.qtype == T.F16:
        return np.float16, count * 2
    return np.uint8, count
