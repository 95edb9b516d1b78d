"""Metrics on generated replies: semantic similarity to the real reply, twin score, style.

Inputs are plain lists (prompts, real replies, one model's replies) and unit-length embeddings
from :mod:`mlx_persona.models.embed`; nothing here loads a model, so every function is tested on
hand-made cases (tests/test_eval_metrics.py).

- **Similarity**: cosine of all-MiniLM-L6-v2 embeddings of the generated and the real reply to
  the same prompt. Reported as mean, median, share ≥ 0.7 (a paraphrase, roughly), and the five
  best and worst prompts.
- **Twin score**: the share of prompts where the model's reply is closer (cosine) to the
  person's real reply than to the base model's reply to the same prompt. The base itself scores
  0 by construction, so it is not reported for the base; 0.5 means "as much the person as the
  base", 1.0 means every reply moved toward the person.
  It rewards any move away from the base, a caricature included: read it beside the
  style-fidelity score (:mod:`mlx_persona.data.fidelity`), which needs no base model.

Bootstrap intervals for these numbers and their differences: :mod:`mlx_persona.eval.intervals`.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from mlx_persona.data import style as eval_style
from mlx_persona.models.embed import pair_similarity

SIM_THRESHOLD = 0.7  # cosine at or above which a reply counts as saying the same thing
TOP_K = 5


def similarity_summary(
    sims: Sequence[float], prompts: Sequence[str], real: Sequence[str], replies: Sequence[str], k: int = TOP_K
) -> dict:
    """Mean, median, share ≥ :data:`SIM_THRESHOLD`, and the ``k`` best and worst examples."""
    s = np.asarray(sims, float)
    if s.size == 0:
        return {"n": 0}
    order = np.argsort(-s, kind="stable")

    def row(i: int) -> dict:
        return {
            "index": int(i),
            "similarity": round(float(s[i]), 4),
            "prompt": prompts[i],
            "real": real[i],
            "reply": replies[i],
        }

    return {
        "n": int(s.size),
        "mean": float(s.mean()),
        "median": float(np.median(s)),
        "share_ge_threshold": float(np.mean(s >= SIM_THRESHOLD - 1e-6)),
        "threshold": SIM_THRESHOLD,
        "top": [row(i) for i in order[:k]],
        "bottom": [row(i) for i in order[::-1][:k]],
    }


def closer_to_real(reply_emb: np.ndarray, real_emb: np.ndarray, base_emb: np.ndarray) -> np.ndarray:
    """Per prompt: is the reply strictly closer to the real reply than to the base's? Shape (n,), bool."""
    return pair_similarity(reply_emb, real_emb) > pair_similarity(reply_emb, base_emb) + 1e-6


def twin_score(reply_emb: np.ndarray, real_emb: np.ndarray, base_emb: np.ndarray) -> dict:
    """Share of prompts whose reply is strictly closer to the real reply than to the base's reply."""
    if len(reply_emb) == 0:
        return {"n": 0}
    to_real = pair_similarity(reply_emb, real_emb)
    to_base = pair_similarity(reply_emb, base_emb)
    closer = closer_to_real(reply_emb, real_emb, base_emb)
    return {
        "n": int(len(closer)),
        "share": float(closer.mean()),
        "mean_sim_to_real": float(to_real.mean()),
        "mean_sim_to_base": float(to_base.mean()),
    }


def style_metrics(replies: Sequence[str], real: Sequence[str]) -> dict:
    return {
        "slop": eval_style.slop_rate(replies),
        "length": eval_style.length_stats(replies, real),
        "habits": eval_style.habits(replies),
    }


def model_metrics(
    prompts: Sequence[str],
    real: Sequence[str],
    replies: Sequence[str],
    reply_emb: np.ndarray,
    real_emb: np.ndarray,
    base_emb: np.ndarray | None,
) -> dict:
    """Every text metric for one model's replies (``base_emb`` None: no twin score)."""
    sims = pair_similarity(reply_emb, real_emb)
    out = {"similarity": similarity_summary(sims, prompts, real, replies), "style": style_metrics(replies, real)}
    if base_emb is not None:
        out["twin_score"] = twin_score(reply_emb, real_emb, base_emb)
    return out


def real_style(real: Sequence[str]) -> dict:
    """The person's own numbers, the yardstick for every model's style."""
    return {
        "slop": eval_style.slop_rate(real),
        "habits": eval_style.habits(real),
        "median_words": eval_style.length_stats(real, real).get("median_words"),
    }
