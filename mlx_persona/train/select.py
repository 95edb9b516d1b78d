"""Which model is more the person? One measure of generated replies against the person's real ones.

A twin is good when its replies read like the person's: about the same things, about as long,
with the same habits. A measure that rewards only one of these is easy to fool: a lower DPO loss
rewards "be short" (the twin ends up answering ``no``), and a closeness-to-the-person-only score
rewards a caricature (every habit of the person, exaggerated). :func:`twin_score` puts three parts
on one scale so that a blank and a caricature both lose to a faithful reply:

- **similarity**: mean MiniLM cosine between each generated reply and the real reply to the same
  prompt (:func:`mlx_persona.models.embed.embed`), in [-1, 1]; higher is closer.
- **length distance**: ``|log((median words generated + 1) / (median words real + 1))|``: 0 when
  the medians match, log 2 = 0.69 for twice or half as long; the +1 keeps a blank reply finite
  (and far: a blank twin of a 9-word person scores log 10 = 2.3).
- **habit distance**: the mean of three relative gaps, each
  ``|g - r| / max(g, r, floor)`` in [0, 1] (0: same habit; 1: one side has it and the other
  not), for the habits of :func:`mlx_persona.data.style.habits`: share of replies with an emoji
  (floor 0.1), exclamation marks per 100 words (floor 1), share of replies that start in lower
  case (floor 0.1). The floors keep a trace of a habit that the person lacks from counting as
  a total mismatch.

    score = similarity - length_distance - habit_distance      (higher is better; 1 = a copy)

It depends on no training stage: the DPO stage keeps the checkpoint with the best score on a
slice of its validation prompts (``dpo.select_by: twin``), and the same function can pick the run's
twin among SFT and DPO. ``embed`` is injectable, so tests need not load MiniLM.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Callable, Sequence

import numpy as np

from mlx_persona.data.style import habits, word_count

# habit key in data.style.habits -> (name of its gap in the result, floor of the relative gap)
HABITS = {
    "share_with_emoji": ("emoji_distance", 0.1),
    "exclamations_per_100_words": ("exclamation_distance", 1.0),
    "share_lowercase_start": ("lowercase_distance", 0.1),
}


def relative_gap(generated: float, real: float, floor: float) -> float:
    """``|g - r| / max(g, r, floor)`` for two non-negative rates: 0 when equal, at most 1."""
    return abs(generated - real) / max(generated, real, floor)


def mean_similarity(generated: Sequence[str], real: Sequence[str], embed: Callable) -> float:
    """Mean cosine of each generated reply with its real reply; ``embed(texts) -> (n, d)`` array."""
    vecs = np.asarray(embed(list(generated) + list(real)), np.float64)
    norms = np.linalg.norm(vecs, axis=1, keepdims=True)
    vecs = vecs / np.where(norms > 0, norms, 1.0)  # a zero vector stays zero: similarity 0
    n = len(generated)
    return float(np.mean(np.sum(vecs[:n] * vecs[n:], axis=1)))


def twin_score(generated: Sequence[str], real: Sequence[str], embed: Callable | None = None) -> dict:
    """How close ``generated`` replies are to the person's ``real`` replies to the same prompts.

    Args: two lists of the same non-zero length, ``generated[i]`` and ``real[i]`` answering one
    prompt; ``embed``: texts -> array (n, d) of sentence embeddings (default: MiniLM).
    Returns ``{"score": ..., "similarity", "length_distance", "length_ratio", "habit_distance",
    "emoji_distance", "exclamation_distance", "lowercase_distance"}`` (formulas in the module
    docstring; ``length_ratio`` is the plain median ratio, None when the real median is 0).
    """
    if len(generated) != len(real) or not real:
        raise ValueError(
            f"twin_score needs as many generated as real replies, at least one (got {len(generated)} and {len(real)})"
        )
    if embed is None:
        from mlx_persona.models.embed import embed
    similarity = mean_similarity(generated, real, embed)
    med_g = statistics.median(word_count(t) for t in generated)
    med_r = statistics.median(word_count(t) for t in real)
    length_distance = abs(math.log((med_g + 1) / (med_r + 1)))
    hg, hr = habits(generated), habits(real)
    gaps = {name: relative_gap(hg[key], hr[key], floor) for key, (name, floor) in HABITS.items()}
    habit_distance = sum(gaps.values()) / len(gaps)
    return {
        "score": similarity - length_distance - habit_distance,
        "similarity": similarity,
        "length_distance": length_distance,
        "length_ratio": med_g / med_r if med_r else None,
        "habit_distance": habit_distance,
        **gaps,
    }
