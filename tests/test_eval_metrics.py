"""Metric functions on hand-made cases: no model, no embedder unless a test says so."""

import numpy as np
import pytest

from mlx_persona.data import style as eval_style
from mlx_persona.eval import metrics as eval_metrics


def unit(rows):
    a = np.asarray(rows, np.float32)
    return a / np.linalg.norm(a, axis=1, keepdims=True)


def test_identical_replies_have_similarity_one_with_the_real_embedder():
    from mlx_persona.models.embed import embed, pair_similarity

    texts = ["yeah ship it. tests pass, merge after lunch.", "the cache is wrong, not the query"]
    sims = pair_similarity(embed(texts), embed(list(texts)))
    assert sims == pytest.approx([1.0, 1.0], abs=1e-5)
    other = pair_similarity(embed(texts[:1]), embed(["I'd be happy to help you plan a wedding!"]))
    assert other[0] < 0.5


def test_similarity_summary_mean_median_share_and_tables():
    sims = [1.0, 0.7, 0.2, 0.9, 0.1, 0.5, 0.65]
    n = len(sims)
    s = eval_metrics.similarity_summary(sims, [f"p{i}" for i in range(n)], [f"r{i}" for i in range(n)],
                                        [f"g{i}" for i in range(n)], k=3)
    assert s["mean"] == pytest.approx(np.mean(sims))
    assert s["median"] == pytest.approx(0.65)
    assert s["share_ge_threshold"] == pytest.approx(3 / 7)  # 1.0, 0.7 (inclusive), 0.9
    assert [r["index"] for r in s["top"]] == [0, 3, 1]
    assert [r["index"] for r in s["bottom"]] == [4, 2, 5]
    assert s["top"][0] == {"index": 0, "similarity": 1.0, "prompt": "p0", "real": "r0", "reply": "g0"}
    assert eval_metrics.similarity_summary([], [], [], []) == {"n": 0}


def test_twin_score_counts_replies_closer_to_the_person_than_to_the_base():
    real = unit([[1, 0, 0], [1, 0, 0], [1, 0, 0], [1, 0, 0]])
    base = unit([[0, 1, 0], [0, 1, 0], [0, 1, 0], [0, 1, 0]])
    reply = unit([[1, 0.1, 0], [0.1, 1, 0], [1, 1, 0], [1, 0, 0]])  # closer, not, tie, identical to real
    t = eval_metrics.twin_score(reply, real, base)
    assert t["share"] == pytest.approx(0.5)
    assert eval_metrics.twin_score(base, real, base)["share"] == 0.0  # the base is never closer than itself


def test_slop_rate_of_a_reply_full_of_listed_phrases():
    reply = "Great question! I'd be happy to help. As an AI language model, let's break down the options."
    # 17 words, 4 listed phrases ("as an ai language model" once, not also "as an ai")
    assert eval_style.word_count(reply) == 17
    hits = eval_style.slop_hits(reply)
    assert hits == {"great question": 1, "i'd be happy to": 1, "as an ai language model": 1, "let's break down": 1}
    rate = eval_style.slop_rate([reply, "no. monday."])
    assert rate["hits"] == 4 and rate["words"] == 19
    assert rate["per_1000_words"] == pytest.approx(1000 * 4 / 19)


def test_slop_matching_is_case_and_apostrophe_insensitive_on_whole_words():
    assert eval_style.slop_hits("GREAT QUESTION. I\u2019d be happy to") == {"great question": 1, "i'd be happy to": 1}
    assert eval_style.slop_hits("let's dive into it") == {"let's dive into": 1}
    assert eval_style.slop_hits("delved") == {}  # whole words only
    assert eval_style.slop_rate(["yeah ship it", "no"])["per_1000_words"] == 0.0
    assert eval_style.slop_rate([])["per_1000_words"] == 0.0


def test_wasserstein_is_zero_for_equal_distributions_and_the_shift_otherwise():
    assert eval_style.wasserstein_1d([3, 1, 2, 2], [2, 1, 2, 3]) == 0.0
    assert eval_style.wasserstein_1d([1, 2, 3], [4, 5, 6]) == pytest.approx(3.0)
    assert eval_style.wasserstein_1d([0], [0, 10]) == pytest.approx(5.0)
    with pytest.raises(ValueError):
        eval_style.wasserstein_1d([], [1])


def test_length_stats_against_the_real_replies():
    real = ["a b", "a b c d", "a b c d e f"]  # 2, 4, 6 words
    same = eval_style.length_stats(real, real)
    assert same["median_ratio"] == 1.0 and same["wasserstein_words"] == 0.0
    longer = eval_style.length_stats(["a b c d"] * 3, real)  # median 4 vs 4; distance (2+0+2)/3
    assert longer["median_ratio"] == 1.0
    assert longer["wasserstein_words"] == pytest.approx(4 / 3)
    assert eval_style.length_stats([], real) == {}


def test_emoji_and_punctuation_habits():
    h = eval_style.habits(["lol ok 🙂", "Sure thing!", "what?...", "no.", "👍👍"])
    assert h["emoji_per_reply"] == pytest.approx(3 / 5)
    assert h["share_with_emoji"] == pytest.approx(2 / 5)
    assert h["ends_with"] == {"period": 0.2, "exclamation": 0.2, "question": 0.0, "ellipsis": 0.2, "none": 0.4}
    assert h["share_lowercase_start"] == pytest.approx(3 / 4)  # the emoji-only reply has no letter
    assert eval_style.habits([]) == {}
