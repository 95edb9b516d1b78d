"""Paired bootstrap intervals: is a difference between two models real or noise?

An evaluation has ``n`` test conversations and, for each model, a statistic of them (a mean
similarity, a perplexity, a median length ratio, ...). We resample the *conversations* with
replacement ``R`` times and recompute every model's statistic on the same resample, so that two
models are always compared on the same conversations (paired):

    I            shape (R, n)   row r: the conversation indices of resample r (with replacement)
    s_a(I)       shape (R,)     model a's statistic on each resample
    d = s_b(I) - s_a(I)         the difference on each resample
    interval  = (q_{(1-level)/2}(d), q_{(1+level)/2}(d))     percentile interval of d

A difference is *real* when its interval excludes 0 and *noise* otherwise. With a fixed seed the
intervals are the same on every run. A statistic here is any function that maps an index array
of shape ``(..., n)`` to values of shape ``(...)``; :func:`mean_of`, :func:`ratio_of_sums` and
:func:`median_ratio` build the vectorised ones the evaluation needs, :func:`per_resample` wraps a
plain function of index rows. Nothing here knows about models: numpy only.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

RESAMPLES = 1000  # enough for stable 2.5% / 97.5% percentiles on a few dozen conversations
SEED = 0  # the same resamples on every run: an interval never moves by chance
LEVEL = 0.95

Statistic = Callable[[np.ndarray], np.ndarray]  # index array (..., n) -> values (...)


def resample_indices(n: int, resamples: int = RESAMPLES, seed: int = SEED) -> np.ndarray:
    """Conversation indices of ``resamples`` bootstrap samples: shape (resamples, n), int."""
    if n < 1:
        raise ValueError("resample_indices needs at least one conversation")
    return np.random.default_rng(seed).integers(0, n, size=(resamples, n))


def replies_of(idx: np.ndarray, group: int) -> np.ndarray:
    """Conversation indices (R, n) → the indices of their replies (R, n * group), when each
    conversation has ``group`` replies stored one after another (reply ``i * group + j`` is
    conversation ``i``'s ``j``-th). A resample draws whole conversations with all their replies,
    so several sampled replies to one prompt never pass for independent conversations."""
    if group == 1:
        return idx
    return (idx[..., :, None] * group + np.arange(group)).reshape(*idx.shape[:-1], idx.shape[-1] * group)


def percentile_interval(values: np.ndarray, level: float = LEVEL) -> tuple[float, float]:
    """Central ``level`` interval of ``values`` (shape (R,)); NaN resamples are left out."""
    v = np.asarray(values, float)
    v = v[np.isfinite(v)]
    if v.size == 0:
        return float("nan"), float("nan")
    tail = 100.0 * (1.0 - level) / 2.0
    lo, hi = np.percentile(v, [tail, 100.0 - tail])
    return float(lo), float(hi)


def value_interval(stat: Statistic, idx: np.ndarray, level: float = LEVEL) -> dict:
    """One model's statistic on all conversations, and its bootstrap interval."""
    n = idx.shape[1]
    low, high = percentile_interval(stat(idx), level)
    return {"value": float(stat(np.arange(n))), "low": low, "high": high}


def paired_delta(stat_a: Statistic, stat_b: Statistic, idx: np.ndarray, level: float = LEVEL) -> dict:
    """``b - a`` on all conversations, its interval, and ``real``: the interval excludes 0.

    A tolerance of 1e-12 keeps a zero difference with a degenerate interval at 0 from counting
    as real through rounding.
    """
    n = idx.shape[1]
    full = np.arange(n)
    delta = float(stat_b(full) - stat_a(full))
    low, high = percentile_interval(stat_b(idx) - stat_a(idx), level)
    real = bool(np.isfinite(low) and np.isfinite(high) and (low > 1e-12 or high < -1e-12))
    return {"delta": delta, "low": low, "high": high, "real": real}


# -- statistics -----------------------------------------------------------------------------------


def mean_of(x) -> Statistic:
    """The mean of per-conversation values ``x`` (shape (n,))."""
    x = np.asarray(x, float)
    return lambda idx: x[idx].mean(axis=-1)


def ratio_of_sums(num, den, scale: float = 1.0, empty: float | None = 0.0) -> Statistic:
    """``scale * sum(num) / sum(den)`` over the resampled conversations (a pooled rate, e.g.
    exclamation marks per 100 words); ``empty`` where the resampled ``den`` sums to 0."""
    num, den = np.asarray(num, float), np.asarray(den, float)
    fill = np.nan if empty is None else empty

    def stat(idx):
        top, bottom = num[idx].sum(axis=-1), den[idx].sum(axis=-1)
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.where(bottom > 0, scale * top / np.where(bottom > 0, bottom, 1.0), fill)

    return stat


def median_ratio(x, y) -> Statistic:
    """``median(x) / median(y)`` over the resampled conversations (NaN where median(y) is 0)."""
    x, y = np.asarray(x, float), np.asarray(y, float)

    def stat(idx):
        top, bottom = np.median(x[idx], axis=-1), np.median(y[idx], axis=-1)
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.where(bottom != 0, top / np.where(bottom != 0, bottom, 1.0), np.nan)

    return stat


def per_resample(fn: Callable[[np.ndarray], float]) -> Statistic:
    """A statistic from a plain function of one index row (for what does not vectorise)."""

    def stat(idx):
        idx = np.asarray(idx)
        if idx.ndim == 1:
            return np.float64(fn(idx))
        return np.array([fn(row) for row in idx.reshape(-1, idx.shape[-1])]).reshape(idx.shape[:-1])

    return stat
