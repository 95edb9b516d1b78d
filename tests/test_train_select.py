"""The twin measure (mlx_persona.train.select.twin_score): a copy of the person beats a shortened,
blank version of their replies, which beats a caricature; each part moves the way it should.

Embeddings come from a bag-of-words stand-in (hashed word counts), so MiniLM is never loaded."""

from __future__ import annotations

import math
import re
import zlib

import numpy as np
import pytest

from mlx_persona.train.select import relative_gap, twin_score

REAL = [
    "yeah ship it friday, the tests are green.",
    "no. check the ttl on the cache first.",
    "tests pass, merge after lunch.",
    "the cache is wrong, not the query.",
    "can't today, tomorrow morning works for me.",
    "sure, send me the link and i'll look.",
]


def bag_of_words(texts):
    """(n, 64) hashed word counts: texts that share words point the same way."""
    out = np.zeros((len(texts), 64))
    for i, t in enumerate(texts):
        for w in re.findall(r"[a-z']+", t.lower()):
            out[i, zlib.crc32(w.encode()) % 64] += 1
    return out


def shortened(text: str) -> str:  # the person's first words, the rest dropped: "be short"
    return " ".join(text.split()[:2]).rstrip(",.")


def caricature(text: str) -> str:  # the person's words, buried in exaggerated habits
    return f"OMG!!! {text.capitalize()} 😂😂 Honestly the best, love it so much!!! 🎉"


def score(generated):
    return twin_score(generated, REAL, embed=bag_of_words)


def test_copy_beats_blank_beats_caricature():
    copy, blank, cartoon = score(list(REAL)), score([shortened(t) for t in REAL]), score([caricature(t) for t in REAL])
    assert copy["score"] == pytest.approx(1.0)
    assert copy["score"] > blank["score"] > cartoon["score"]
    # the blank loses on length (and similarity), not on habits; the caricature on habits above all
    assert blank["length_distance"] > 0.9 and blank["habit_distance"] == pytest.approx(0.0)
    assert blank["length_ratio"] < 0.4
    assert cartoon["habit_distance"] > 0.9 and cartoon["length_ratio"] > 1.5
    assert cartoon["emoji_distance"] == 1.0 and cartoon["exclamation_distance"] == 1.0
    assert cartoon["lowercase_distance"] == 1.0


def test_parts_by_hand():
    real = ["hi there friend", "ok"]  # medians: 2 words; no emoji, no '!', both lower case
    gen = ["Hi there friend!", "ok ok ok"]  # median 3 words; one '!' in 4 words; half lower case
    got = twin_score(gen, real, embed=bag_of_words)
    assert got["length_distance"] == pytest.approx(abs(math.log((3 + 1) / (2 + 1))))
    assert got["length_ratio"] == pytest.approx(3 / 2)
    assert got["emoji_distance"] == 0.0
    assert got["exclamation_distance"] == pytest.approx(1.0)  # 25 per 100 words against 0: gap 25 / 25
    assert got["lowercase_distance"] == pytest.approx(0.5)  # (1 - 0.5) / 1
    cos = [1.0, 1.0]  # bag of words ignores case, punctuation and counts of 'ok' point the same way
    assert got["similarity"] == pytest.approx(sum(cos) / 2)
    want = 1.0 - abs(math.log(4 / 3)) - (0.0 + 1.0 + 0.5) / 3
    assert got["score"] == pytest.approx(want)


def test_relative_gap_and_bad_input():
    assert relative_gap(0.0, 0.0, 0.1) == 0.0
    assert relative_gap(0.05, 0.0, 0.1) == pytest.approx(0.5)  # a trace of a habit the person lacks
    assert relative_gap(26.8, 18.7, 1.0) == pytest.approx(8.1 / 26.8)  # the caricature: 30% off
    with pytest.raises(ValueError):
        twin_score(["a"], ["a", "b"], embed=bag_of_words)
    with pytest.raises(ValueError):
        twin_score([], [], embed=bag_of_words)
