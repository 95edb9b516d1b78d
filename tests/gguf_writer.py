"""A small GGUF v3 writer for tests: metadata of the common types, and tensors stored as
F32, F16, Q8_0, Q4_0 or Q4_1 blocks. It also returns what a reader should dequantize each
quantized tensor to, so tests can compare exactly."""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np

# GGUF value types
U32, I32, F32, BOOL, STRING, ARRAY = 4, 5, 6, 7, 8, 9
# GGML tensor types
T_F32, T_F16, T_Q4_0, T_Q4_1, T_Q8_0 = 0, 1, 2, 3, 8
ALIGN = 32


def _str(s: str) -> bytes:
    b = s.encode("utf-8")
    return struct.pack("<Q", len(b)) + b


def _value(v) -> bytes:
    if isinstance(v, bool):
        return struct.pack("<I", BOOL) + struct.pack("<?", v)
    if isinstance(v, int):
        return struct.pack("<I", U32) + struct.pack("<I", v)
    if isinstance(v, float):
        return struct.pack("<I", F32) + struct.pack("<f", v)
    if isinstance(v, str):
        return struct.pack("<I", STRING) + _str(v)
    if isinstance(v, (list, tuple, np.ndarray)):
        items = list(v)
        if items and isinstance(items[0], str):
            body = b"".join(_str(s) for s in items)
            return struct.pack("<I", ARRAY) + struct.pack("<IQ", STRING, len(items)) + body
        if items and isinstance(items[0], float):
            return struct.pack("<I", ARRAY) + struct.pack("<IQ", F32, len(items)) + np.asarray(items, "<f4").tobytes()
        return struct.pack("<I", ARRAY) + struct.pack("<IQ", I32, len(items)) + np.asarray(items, "<i4").tobytes()
    raise TypeError(type(v))


def _q8_0(w: np.ndarray):
    blocks = w.reshape(-1, 32)
    d = (np.abs(blocks).max(axis=1) / 127.0).astype(np.float16)
    dd = d.astype(np.float32)[:, None]
    q = np.round(np.divide(blocks, dd, out=np.zeros_like(blocks), where=dd != 0)).clip(-127, 127).astype(np.int8)
    raw = b"".join(d[i].tobytes() + q[i].tobytes() for i in range(len(blocks)))
    return raw, (q.astype(np.float32) * dd).reshape(w.shape)


def _q4(w: np.ndarray, with_min: bool):
    blocks = w.reshape(-1, 32)
    if with_min:
        lo, hi = blocks.min(axis=1), blocks.max(axis=1)
        d = ((hi - lo) / 15.0).astype(np.float16)
        m = lo.astype(np.float16)
        dd, mm = d.astype(np.float32)[:, None], m.astype(np.float32)[:, None]
        q = np.round(np.divide(blocks - mm, dd, out=np.zeros_like(blocks), where=dd != 0)).clip(0, 15).astype(np.uint8)
        deq = q * dd + mm
    else:
        amax_idx = np.abs(blocks).argmax(axis=1)
        mx_ = blocks[np.arange(len(blocks)), amax_idx]
        d = (mx_ / -8.0).astype(np.float16)
        dd = d.astype(np.float32)[:, None]
        q = (np.round(np.divide(blocks, dd, out=np.zeros_like(blocks), where=dd != 0)) + 8).clip(0, 15).astype(np.uint8)
        deq = (q.astype(np.float32) - 8) * dd
    packed = (q[:, :16] | (q[:, 16:] << 4)).astype(np.uint8)
    raw = b"".join(
        d[i].tobytes() + (m[i].tobytes() if with_min else b"") + packed[i].tobytes() for i in range(len(blocks))
    )
    return raw, deq.reshape(w.shape).astype(np.float32)


def write_gguf(path: Path, metadata: dict, tensors: dict[str, tuple[np.ndarray, int]]) -> dict[str, np.ndarray]:
    """Write a GGUF file. ``tensors`` maps name -> (float32 array, ggml type).
    Returns name -> the float32 values a correct reader recovers."""
    infos, datas, recovered = [], [], {}
    offset = 0
    for name, (arr, ttype) in tensors.items():
        arr = np.ascontiguousarray(arr, dtype=np.float32)
        if ttype == T_F32:
            raw, rec = arr.astype("<f4").tobytes(), arr
        elif ttype == T_F16:
            raw, rec = arr.astype("<f2").tobytes(), arr.astype(np.float16).astype(np.float32)
        elif ttype == T_Q8_0:
            raw, rec = _q8_0(arr)
        elif ttype in (T_Q4_0, T_Q4_1):
            raw, rec = _q4(arr, with_min=ttype == T_Q4_1)
        else:
            raise ValueError(ttype)
        recovered[name] = rec
        dims = list(reversed(arr.shape))  # GGUF lists the innermost dimension first
        infos.append(
            _str(name)
            + struct.pack("<I", len(dims))
            + b"".join(struct.pack("<Q", d) for d in dims)
            + struct.pack("<IQ", ttype, offset)
        )
        pad = (-len(raw)) % ALIGN
        datas.append(raw + b"\0" * pad)
        offset += len(raw) + pad
    header = b"GGUF" + struct.pack("<IQQ", 3, len(tensors), len(metadata))
    header += b"".join(_str(k) + _value(v) for k, v in metadata.items())
    header += b"".join(infos)
    header += b"\0" * ((-len(header)) % ALIGN)
    Path(path).write_bytes(header + b"".join(datas))
    return recovered
