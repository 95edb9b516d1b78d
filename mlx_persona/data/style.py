"""Style measures: does the model write like the person, or like an assistant?

Everything here is plain text statistics on lists of replies, no model involved, so each
function is tested on hand-made cases (tests/test_eval_metrics.py).

- **Slop rate**: hits of :data:`SLOP_PHRASES` per 1,000 words. The list holds the stock phrases
  of instruction-tuned assistants that a person almost never types in a chat: openers
  ("Great question"), service formulas ("I'd be happy to"), self-description ("As an AI"),
  lecture scaffolding ("Let's break down", "In conclusion") and closers ("I hope this helps").
  Matching is case-insensitive on whole words, curly apostrophes count as straight ones,
  overlapping matches count once.
- **Length**: words per reply; the generated distribution against the real one as the ratio of
  medians and the 1-D Wasserstein (earth mover's) distance, in words.
- **Habits**: emoji per reply and share of replies with one, how replies end (., !, ?, ..., no
  mark), share that start in lower case, exclamation and question marks per 100 words.
"""

from __future__ import annotations

import re
import statistics
from collections.abc import Sequence

import numpy as np

# Stock assistant phrases, lower case. Add to it, never reorder (reports quote hit counts by phrase).
SLOP_PHRASES = (
    "great question",
    "good question",
    "excellent question",
    "i'd be happy to",
    "i would be happy to",
    "i'd be glad to",
    "happy to help",
    "as an ai",
    "as a language model",
    "as an ai language model",
    "i'm just an ai",
    "let's break down",
    "let's break it down",
    "let's dive in",
    "let's dive into",
    "let's explore",
    "here's a breakdown",
    "here are some",
    "step by step",
    "it's important to note",
    "it is important to note",
    "it's worth noting",
    "keep in mind that",
    "i hope this helps",
    "hope this helps",
    "feel free to",
    "don't hesitate to",
    "let me know if you have any",
    "if you have any other questions",
    "i'm here to help",
    "in conclusion",
    "in summary",
    "certainly!",
    "absolutely!",
    "of course!",
    "delve",
    "tapestry",
    "navigate the complexities",
)

_WORD = re.compile(r"\S+")
_EMOJI = re.compile(
    "[\U0001f300-\U0001faff\U00002600-\U000027bf\U0001f000-\U0001f02f\U0001f0a0-\U0001f0ff"
    "\U0001f100-\U0001f1ff\U0001f200-\U0001f2ff\U00002b00-\U00002bff\U0000fe0f]"
)


def _phrase_pattern(phrase: str) -> re.Pattern:
    # whole words at both ends (a phrase that ends in punctuation just needs that mark)
    head = r"(?<!\w)"
    tail = r"(?!\w)" if phrase[-1].isalnum() else ""
    return re.compile(head + re.escape(phrase) + tail)


_PATTERNS = [(p, _phrase_pattern(p)) for p in SLOP_PHRASES]


def normalize(text: str) -> str:
    return text.replace("\u2019", "'").replace("\u2018", "'").lower()


def word_count(text: str) -> int:
    return len(_WORD.findall(text))


def slop_hits(text: str) -> dict[str, int]:
    """``{phrase: count}`` for the listed phrases in ``text``.

    Overlapping matches count once, for the earliest and then longest phrase: "I'd be happy to
    help" is one hit ("i'd be happy to"), not two.
    """
    t = normalize(text)
    spans = sorted(((m.start(), -len(phrase), m.end(), phrase) for phrase, pat in _PATTERNS for m in pat.finditer(t)))
    hits: dict[str, int] = {}
    end = -1
    for start, _, stop, phrase in spans:
        if start >= end:
            hits[phrase] = hits.get(phrase, 0) + 1
            end = stop
    return hits


def slop_rate(replies: Sequence[str]) -> dict:
    """Listed-phrase hits per 1,000 words over all ``replies``, and the most frequent phrases."""
    words = sum(word_count(r) for r in replies)
    total: dict[str, int] = {}
    for r in replies:
        for phrase, n in slop_hits(r).items():
            total[phrase] = total.get(phrase, 0) + n
    hits = sum(total.values())
    top = sorted(total.items(), key=lambda kv: (-kv[1], kv[0]))[:5]
    return {
        "per_1000_words": 1000.0 * hits / words if words else 0.0,
        "hits": hits,
        "words": words,
        "top_phrases": [{"phrase": p, "count": n} for p, n in top],
    }


def wasserstein_1d(a: Sequence[float], b: Sequence[float]) -> float:
    """Earth mover's distance between two empirical 1-D distributions (equal weight per value).

    The area between the two cumulative distribution functions: 0 for equal distributions,
    and ``|c|`` when every value of ``b`` is the matching value of ``a`` shifted by ``c``.
    """
    a, b = np.sort(np.asarray(a, float)), np.sort(np.asarray(b, float))
    if a.size == 0 or b.size == 0:
        raise ValueError("wasserstein_1d needs two non-empty samples")
    points = np.sort(np.concatenate([a, b]))
    widths = np.diff(points)
    cdf_a = np.searchsorted(a, points[:-1], side="right") / a.size
    cdf_b = np.searchsorted(b, points[:-1], side="right") / b.size
    return float(np.sum(np.abs(cdf_a - cdf_b) * widths))


def length_stats(generated: Sequence[str], real: Sequence[str]) -> dict:
    """Words per reply, generated against real: medians, their ratio, Wasserstein distance."""
    g = [word_count(t) for t in generated]
    r = [word_count(t) for t in real]
    if not g or not r:
        return {}
    med_g, med_r = statistics.median(g), statistics.median(r)
    return {
        "median_words": med_g,
        "real_median_words": med_r,
        "median_ratio": med_g / med_r if med_r else None,
        "mean_words": sum(g) / len(g),
        "real_mean_words": sum(r) / len(r),
        "wasserstein_words": wasserstein_1d(g, r),
    }


def _ending(text: str) -> str:
    t = _EMOJI.sub("", text).rstrip()
    if t.endswith("...") or t.endswith("\u2026"):
        return "ellipsis"
    if not t:
        return "none"
    return {".": "period", "!": "exclamation", "?": "question"}.get(t[-1], "none")


def habits(replies: Sequence[str]) -> dict:
    """Emoji and punctuation habits of a list of replies (shares are 0..1)."""
    n = len(replies)
    if n == 0:
        return {}
    words = max(1, sum(word_count(r) for r in replies))
    emoji = [len(_EMOJI.findall(r.replace("\ufe0f", ""))) for r in replies]
    endings = [_ending(r) for r in replies]
    letters = [next((c for c in r.strip() if c.isalpha()), "") for r in replies]
    cased = [c for c in letters if c and c.lower() != c.upper()]
    return {
        "emoji_per_reply": sum(emoji) / n,
        "share_with_emoji": sum(1 for e in emoji if e) / n,
        "ends_with": {k: endings.count(k) / n for k in ("period", "exclamation", "question", "ellipsis", "none")},
        "share_lowercase_start": sum(1 for c in cased if c.islower()) / len(cased) if cased else 0.0,
        "exclamations_per_100_words": 100.0 * sum(r.count("!") for r in replies) / words,
        "questions_per_100_words": 100.0 * sum(r.count("?") for r in replies) / words,
    }
