"""A model's shape, read from its config.json alone: what the memory estimate needs, no weights.

The model can be a local MLX folder, ``default`` (the embedded SmolLM2-135M-Instruct), or a hub
id. A hub id never touches the network: we use a config.json already in the Hugging Face cache,
else an architecture snapshot shipped in ``budget/model_configs.json`` (sources named there).
"""

from __future__ import annotations

import json
import re
import struct
import sys
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from mlx_persona.core.errors import PersonaError

# Bytes per element of the dtypes that appear in config.json and safetensors headers.
DTYPE_BYTES = {"float32": 4, "f32": 4, "F32": 4, "float16": 2, "f16": 2, "F16": 2, "bfloat16": 2, "bf16": 2, "BF16": 2}
DEFAULT_GROUP_SIZE = 64  # mlx_lm.convert's and mlx-community's default quantization group
REQUIRED = ("hidden_size", "num_hidden_layers", "num_attention_heads", "intermediate_size", "vocab_size")


@dataclass(frozen=True)
class ModelShape:
    """The architecture numbers a decoder-only transformer's memory depends on."""

    name: str
    hidden: int
    layers: int
    heads: int
    kv_heads: int
    head_dim: int
    intermediate: int
    vocab: int
    tie_embeddings: bool
    qkv_bias: bool
    dtype_bytes: int  # bytes of an unquantized weight and of every activation
    bits: int | None = None  # quantized weight bits; None for an unquantized model
    group_size: int = DEFAULT_GROUP_SIZE
    source: str = ""  # where the numbers came from (a path or a snapshot's reference URL)

    def linears(self) -> list[tuple[str, int, int]]:
        """Each block's linear layers as (mlx_lm key, input dims, output dims)."""
        q, kv, h, i = self.heads * self.head_dim, self.kv_heads * self.head_dim, self.hidden, self.intermediate
        return [
            ("self_attn.q_proj", h, q),
            ("self_attn.k_proj", h, kv),
            ("self_attn.v_proj", h, kv),
            ("self_attn.o_proj", q, h),
            ("mlp.gate_proj", h, i),
            ("mlp.up_proj", h, i),
            ("mlp.down_proj", i, h),
        ]

    def block_params(self) -> int:
        """Parameters in one transformer block (linears, q/k/v biases, two norms)."""
        n = sum(i * o for _, i, o in self.linears()) + 2 * self.hidden
        if self.qkv_bias:
            n += (self.heads + 2 * self.kv_heads) * self.head_dim
        return n

    def total_params(self) -> int:
        embed = self.vocab * self.hidden * (1 if self.tie_embeddings else 2)
        return self.layers * self.block_params() + embed + self.hidden


def shape_from_config(cfg: dict, name: str, source: str, dtype: str | None = None) -> ModelShape:
    """Build a :class:`ModelShape` from a config.json dict; a one-line error if a field is missing."""
    cfg = {**cfg, **cfg.get("text_config", {})}  # multimodal configs nest the language model
    missing = [k for k in REQUIRED if not isinstance(cfg.get(k), int) or cfg[k] <= 0]
    if missing:
        raise PersonaError(f"{source}: config.json lacks {', '.join(missing)}; cannot estimate memory")
    heads = cfg["num_attention_heads"]
    quant = cfg.get("quantization") or cfg.get("quantization_config") or {}
    dtype = dtype or cfg.get("torch_dtype") or cfg.get("dtype") or "float16"
    if dtype not in DTYPE_BYTES:
        raise PersonaError(f"{source}: unsupported dtype {dtype!r} (float32, float16 or bfloat16)")
    return ModelShape(
        name=name,
        hidden=cfg["hidden_size"],
        layers=cfg["num_hidden_layers"],
        heads=heads,
        kv_heads=cfg.get("num_key_value_heads") or heads,
        head_dim=cfg.get("head_dim") or cfg["hidden_size"] // heads,
        intermediate=cfg["intermediate_size"],
        vocab=cfg["vocab_size"],
        tie_embeddings=bool(cfg.get("tie_word_embeddings", False)),
        qkv_bias=bool(cfg.get("attention_bias", cfg.get("model_type") == "qwen2")),
        dtype_bytes=DTYPE_BYTES[dtype],
        bits=quant.get("bits") if isinstance(quant.get("bits"), int) else None,
        group_size=quant.get("group_size") or DEFAULT_GROUP_SIZE,
        source=source,
    )


def _safetensors_dtype(folder: Path) -> str | None:
    """The dtype of the first floating tensor in the folder's safetensors, from the header only."""
    for f in sorted(folder.glob("*.safetensors")):
        with open(f, "rb") as fh:
            (n,) = struct.unpack("<Q", fh.read(8))
            header = json.loads(fh.read(n))
        for k, v in header.items():
            if k != "__metadata__" and v.get("dtype") in DTYPE_BYTES and not k.endswith(("scales", "biases")):
                return v["dtype"]
    return None


def _read_folder(folder: Path, name: str) -> ModelShape:
    path = folder / "config.json"
    if not path.exists():
        raise PersonaError(f"{folder} is not an MLX model folder (no config.json)")
    try:
        cfg = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as e:
        raise PersonaError(f"{path}: not readable JSON ({e})") from None
    if not isinstance(cfg, dict):
        raise PersonaError(f"{path}: expected a JSON object")
    # quantized folders too: their norms and biases are in the dtype the activations run in (a
    # config without torch_dtype would otherwise be taken for float16, half a float32 model's)
    return shape_from_config(cfg, name, str(path), dtype=_safetensors_dtype(folder))


def snapshots() -> dict[str, dict]:
    """The shipped architecture snapshots: {key: {"source": url, "config": {...}}}."""
    text = resources.files("mlx_persona").joinpath("budget/model_configs.json").read_text()
    return json.loads(text)["models"]


def _from_snapshot(spec: str) -> ModelShape | None:
    """Match a hub id such as ``mlx-community/Qwen2.5-7B-Instruct-4bit`` to a snapshot."""
    name = spec.rsplit("/", 1)[-1].lower()
    keys = [k for k in snapshots() if name.startswith(k)]
    if not keys:
        return None
    key = max(keys, key=len)  # the most specific architecture wins
    snap = snapshots()[key]
    cfg = dict(snap["config"])
    m = re.search(r"-(\d+)bit", name)
    if m:  # mlx-community quantized conversion
        cfg["quantization"] = {"bits": int(m.group(1)), "group_size": DEFAULT_GROUP_SIZE}
    elif re.search(r"-(fp32|float32)\b", name):
        cfg["torch_dtype"] = "float32"
    elif re.search(r"-(fp16|float16)\b", name):
        cfg["torch_dtype"] = "float16"
    return shape_from_config(cfg, spec, f"snapshot {key} ({snap['source']})")


def _from_hf_cache(spec: str) -> ModelShape | None:
    """A config.json the user already downloaded; looked up in the local cache only."""
    try:
        from huggingface_hub import try_to_load_from_cache

        hit = try_to_load_from_cache(spec, "config.json")
    except Exception:  # no huggingface_hub, a malformed id: fall back to the snapshots
        return None
    return _read_folder(Path(hit).parent, spec) if isinstance(hit, str) else None


def _default_shape() -> ModelShape:
    """The embedded SmolLM2-135M-Instruct: its converted folder if present, else the snapshot
    in the form the converter writes (4-bit on Metal; float32 on Linux, where 4-bit is slow)."""
    try:
        from mlx_persona.models.default import default_model_dir

        folder = default_model_dir(pull=False)
        if folder and Path(folder, "config.json").exists():
            return _read_folder(Path(folder), "default")
    except Exception:  # not converted yet, or the converter module is absent
        pass
    suffix = "-4bit" if sys.platform == "darwin" else "-fp32"
    shape = _from_snapshot("SmolLM2-135M-Instruct" + suffix)
    assert shape is not None
    return shape


def load_shape(model: str | Path) -> ModelShape:
    """Resolve ``model`` to a :class:`ModelShape` without network and without loading weights."""
    spec = str(model)
    p = Path(spec).expanduser()
    if p.is_dir():
        return _read_folder(p, spec)
    if spec == "default":
        return _default_shape()
    if spec.count("/") == 1 and not p.exists():
        shape = _from_hf_cache(spec) or _from_snapshot(spec)
        if shape:
            return shape
    known = ", ".join(sorted(snapshots()))
    raise PersonaError(
        f"unknown model {spec!r} offline: give a local model folder, 'default', or a "
        f"hub id of a known architecture ({known})"
    )
