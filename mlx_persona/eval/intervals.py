"""The eval's numbers as resampleable statistics, and their bootstrap intervals.

Every number the report compares between models is rebuilt here from per-conversation values
(:mod:`mlx_persona.eval.bootstrap` explains the paired bootstrap), and on all conversations each
one equals the number in ``metrics.json``:

    perplexity                  exp(Σ nll_i / Σ tokens_i)          per-conversation NLL sums
    similarity_mean / _median   mean / median of cosine_i
    similarity_share_ge_threshold  mean of [cosine_i ≥ 0.7]
    twin_score                  mean of [closer to the person than to the base]_i
    style_fidelity              mean of P(person | reply_i)
    slop_per_1000_words         1000 Σ hits_i / Σ words_i
    median_words                median of words_i
    length_ratio                median(words_i) / median(real words_i)
    length_wasserstein          W1(words, real words) on the resampled pairs
    emoji_per_reply             mean of emoji_i
    share_with_emoji            mean of [emoji_i > 0]
    share_lowercase_start       Σ lower_i / Σ cased_i (replies whose first letter has a case)
    exclamations_per_100_words  100 Σ "!"_i / max(1, Σ words_i)   (and questions_per_100_words)

Deltas are ``later − earlier`` for every pair of evaluated models in their order (base→sft,
base→dpo, sft→dpo), each on the same resamples.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from mlx_persona.data import style
from mlx_persona.eval import bootstrap as bs
from mlx_persona.eval.metrics import SIM_THRESHOLD

METRICS = (
    "perplexity",
    "similarity_mean",
    "similarity_median",
    "similarity_share_ge_threshold",
    "twin_score",
    "style_fidelity",
    "slop_per_1000_words",
    "median_words",
    "length_ratio",
    "length_wasserstein",
    "emoji_per_reply",
    "share_with_emoji",
    "share_lowercase_start",
    "exclamations_per_100_words",
    "questions_per_100_words",
)


def reply_counts(texts: Sequence[str]) -> dict[str, np.ndarray]:
    """Per-reply counts behind :func:`mlx_persona.data.style.habits`, slop and length: shape (n,) each."""
    rows = {k: [] for k in ("words", "emoji", "cased", "lower", "exclamations", "questions", "slop")}
    for t in texts:
        h = style.habits([t])
        first = next((c for c in t.strip() if c.isalpha()), "")
        rows["words"].append(style.word_count(t))
        rows["emoji"].append(h["emoji_per_reply"])
        rows["cased"].append(float(bool(first) and first.lower() != first.upper()))
        rows["lower"].append(h["share_lowercase_start"])
        rows["exclamations"].append(t.count("!"))
        rows["questions"].append(t.count("?"))
        rows["slop"].append(sum(style.slop_hits(t).values()))
    return {k: np.asarray(v, float) for k, v in rows.items()}


def statistics(
    replies: Sequence[str], real: Sequence[str], sims=None, closer=None, p_person=None, nll_sum=None, tokens=None
) -> dict[str, bs.Statistic]:
    """The statistics of one model's replies that its inputs allow (``None``: not measured)."""
    g, r = reply_counts(replies), np.asarray([style.word_count(t) for t in real], float)

    def per_100(counts):  # habits() divides by max(1, words)
        def stat(idx):
            return 100.0 * counts[idx].sum(axis=-1) / np.maximum(1.0, g["words"][idx].sum(axis=-1))

        return stat

    out: dict[str, bs.Statistic] = {
        "slop_per_1000_words": bs.ratio_of_sums(g["slop"], g["words"], scale=1000.0),
        "median_words": lambda idx: np.median(g["words"][idx], axis=-1),
        "length_ratio": bs.median_ratio(g["words"], r),
        "length_wasserstein": bs.per_resample(lambda row: style.wasserstein_1d(g["words"][row], r[row])),
        "emoji_per_reply": bs.mean_of(g["emoji"]),
        "share_with_emoji": bs.mean_of(g["emoji"] > 0),
        "share_lowercase_start": bs.ratio_of_sums(g["lower"], g["cased"]),
        "exclamations_per_100_words": per_100(g["exclamations"]),
        "questions_per_100_words": per_100(g["questions"]),
    }
    if sims is not None:
        s = np.asarray(sims, float)
        out["similarity_mean"] = bs.mean_of(s)
        out["similarity_median"] = lambda idx: np.median(s[idx], axis=-1)
        out["similarity_share_ge_threshold"] = bs.mean_of(s >= SIM_THRESHOLD - 1e-6)
    if closer is not None:
        out["twin_score"] = bs.mean_of(np.asarray(closer, bool))
    if p_person is not None:
        out["style_fidelity"] = bs.mean_of(p_person)
    if nll_sum is not None and tokens is not None:
        pooled = bs.ratio_of_sums(nll_sum, tokens, empty=None)
        out["perplexity"] = lambda idx: np.exp(pooled(idx))
    return {k: out[k] for k in METRICS if k in out}


def _clean(x: float) -> float | None:
    return float(x) if np.isfinite(x) else None


def intervals(
    stats: dict[str, dict[str, bs.Statistic]],
    n: int,
    resamples: int = bs.RESAMPLES,
    seed: int = bs.SEED,
    level: float = bs.LEVEL,
    group: int = 1,
) -> dict:
    """Each model's values with intervals, and every ordered pair's deltas: the JSON block.

    ``stats`` maps model name → :func:`statistics`, in the models' order; ``n`` conversations,
    each with ``group`` replies one after another (the statistics' inputs have ``n * group``
    entries; the resamples draw conversations, :func:`bootstrap.replies_of`).
    Non-finite numbers (a resample with no cased letter, ...) are written as null.
    """
    idx = bs.replies_of(bs.resample_indices(n, resamples, seed), group)
    names = list(stats)
    out = {
        "method": "paired bootstrap over test conversations (percentile interval)",
        "resamples": resamples,
        "seed": seed,
        "level": level,
        "conversations": n,
        "replies_per_conversation": group,
        "models": {},
        "deltas": {},
    }
    for name in names:
        out["models"][name] = {
            k: {f: _clean(v) for f, v in bs.value_interval(s, idx, level).items()} for k, s in stats[name].items()
        }
    for i, a in enumerate(names):
        for b in names[i + 1 :]:
            shared = [k for k in METRICS if k in stats[a] and k in stats[b]]
            deltas = {}
            for k in shared:
                d = bs.paired_delta(stats[a][k], stats[b][k], idx, level)
                deltas[k] = {
                    "delta": _clean(d["delta"]),
                    "low": _clean(d["low"]),
                    "high": _clean(d["high"]),
                    "real": d["real"],
                }
            out["deltas"][f"{a}->{b}"] = {"from": a, "to": b, "metrics": deltas}
    return out
