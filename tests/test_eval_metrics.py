"""Metric functions on hand-made cases: no model, no embedder unless a test says so."""

import json

import numpy as np
import pytest
from eval_helpers import OTHERS, PERSON, hashed_embedder, write_chat_split

from mlx_persona.data import fidelity
from mlx_persona.data import style as eval_style
from mlx_persona.eval import bootstrap as bs
from mlx_persona.eval import intervals as ev_intervals
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
    s = eval_metrics.similarity_summary(
        sims, [f"p{i}" for i in range(n)], [f"r{i}" for i in range(n)], [f"g{i}" for i in range(n)], k=3
    )
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


# -- bootstrap intervals ------------------------------------------------------------------------


def test_a_constant_shift_gives_a_degenerate_interval_at_the_shift():
    rng = np.random.default_rng(1)
    a = rng.normal(size=30)
    idx = bs.resample_indices(30)
    d = bs.paired_delta(bs.mean_of(a), bs.mean_of(a + 0.25), idx)
    assert d["delta"] == pytest.approx(0.25)
    assert d["low"] == pytest.approx(0.25) and d["high"] == pytest.approx(0.25)
    assert d["real"] is True
    same = bs.paired_delta(bs.mean_of(a), bs.mean_of(a), idx)
    assert (same["low"], same["high"], same["real"]) == (0.0, 0.0, False)


def test_a_symmetric_zero_mean_difference_is_noise():
    a = np.zeros(40)
    b = np.tile([1.0, -1.0], 20)  # each conversation moves by ±1, on average not at all
    d = bs.paired_delta(bs.mean_of(a), bs.mean_of(b), bs.resample_indices(40))
    assert d["delta"] == 0.0
    assert d["low"] < 0 < d["high"] and d["real"] is False
    assert d["low"] == pytest.approx(-d["high"], abs=0.1)  # about symmetric around 0


def test_the_interval_narrows_with_n_like_one_over_root_n():
    rng = np.random.default_rng(2)
    widths = {}
    for n in (25, 400):
        x = rng.normal(0.0, 1.0, size=n)
        v = bs.value_interval(bs.mean_of(x), bs.resample_indices(n))
        widths[n] = v["high"] - v["low"]
        se = x.std() / np.sqrt(n)  # a normal interval's width is 2 * 1.96 * se
        assert widths[n] == pytest.approx(2 * 1.96 * se, rel=0.15)
        assert v["value"] == pytest.approx(x.mean()) and v["low"] < v["value"] < v["high"]
    assert widths[400] < widths[25] / 3  # sqrt(400 / 25) = 4


def test_resamples_are_fixed_by_the_seed_and_paired_across_models():
    assert np.array_equal(bs.resample_indices(10, 50, seed=3), bs.resample_indices(10, 50, seed=3))
    assert not np.array_equal(bs.resample_indices(10, 50, seed=3), bs.resample_indices(10, 50, seed=4))
    assert bs.resample_indices(7).shape == (bs.RESAMPLES, 7)
    # pairing: a model that is better on every conversation by a varying amount is real, even when
    # its own values spread far wider than the difference
    rng = np.random.default_rng(5)
    a = rng.normal(0, 10, size=20)
    d = bs.paired_delta(bs.mean_of(a), bs.mean_of(a + rng.uniform(0.1, 0.3, size=20)), bs.resample_indices(20))
    assert d["real"] and 0.1 <= d["low"] < d["high"] <= 0.3


def test_percentile_interval_and_vectorised_statistics():
    lo, hi = bs.percentile_interval(np.arange(1001) / 1000)
    assert (lo, hi) == (pytest.approx(0.025), pytest.approx(0.975))
    assert bs.percentile_interval([np.nan, 1.0, 1.0]) == (1.0, 1.0)
    num, den = np.array([1.0, 2, 0, 4]), np.array([2.0, 0, 0, 4])
    idx = bs.resample_indices(4, 20, seed=1)
    for stat in (
        bs.ratio_of_sums(num, den, scale=100),
        bs.median_ratio(num + 1, den + 1),
        bs.mean_of(num),
        bs.per_resample(lambda row: float(num[row].max())),
    ):
        assert np.allclose(stat(idx), [stat(row) for row in idx])
    assert bs.ratio_of_sums(num, den)(np.array([1, 2])) == 0.0  # nothing to divide by: the empty value
    assert float(bs.ratio_of_sums(num, den)(np.arange(4))) == pytest.approx(7 / 6)


def test_replies_of_a_resample_are_its_conversations_replies_one_after_another():
    idx = np.array([[2, 0, 2]])
    assert bs.replies_of(idx, 3).tolist() == [[6, 7, 8, 0, 1, 2, 6, 7, 8]]
    assert bs.replies_of(idx, 1) is idx
    assert bs.replies_of(bs.resample_indices(5, 40), 4).shape == (40, 20)


def test_several_replies_per_conversation_do_not_count_as_more_conversations():
    """k sampled replies to each of n prompts: the interval resamples the n conversations, so k
    copies of the same values give the same interval as one, not one 1/sqrt(k) as wide."""
    rng = np.random.default_rng(7)
    n, k = 30, 4
    a, b = rng.normal(0.3, 0.1, n), rng.normal(0.3, 0.1, n) + 0.02
    one = ev_intervals.intervals(
        {m: ev_intervals.statistics(REPLIES[:1] * n, REAL[:1] * n, sims=x) for m, x in (("sft", a), ("dpo", b))},
        n,
        resamples=300,
    )
    many = ev_intervals.intervals(
        {
            m: ev_intervals.statistics(REPLIES[:1] * n * k, REAL[:1] * n * k, sims=np.repeat(x, k))
            for m, x in (("sft", a), ("dpo", b))
        },
        n,
        resamples=300,
        group=k,
    )
    assert (many["conversations"], many["replies_per_conversation"]) == (n, k)
    d1, dk = (blk["deltas"]["sft->dpo"]["metrics"]["similarity_mean"] for blk in (one, many))
    assert [dk["delta"], dk["low"], dk["high"]] == pytest.approx([d1["delta"], d1["low"], d1["high"]])
    flat = ev_intervals.intervals(  # the mistake this prevents: 120 "conversations", a narrower interval
        {
            m: ev_intervals.statistics(REPLIES[:1] * n * k, REAL[:1] * n * k, sims=np.repeat(x, k))
            for m, x in (("sft", a), ("dpo", b))
        },
        n * k,
        resamples=300,
    )["deltas"]["sft->dpo"]["metrics"]["similarity_mean"]
    assert flat["high"] - flat["low"] < 0.7 * (d1["high"] - d1["low"])


REPLIES = ["lol ok 🙂", "Sure thing! I'd be happy to help.", "what?...", "no.", "👍👍", "", "Great question! Really!"]
REAL = ["ok", "yeah ship it. tests pass", "why", "no. monday.", "👍", "on it", "lunch at 12"]


def test_interval_statistics_equal_the_reported_numbers_on_all_conversations():
    n = len(REPLIES)
    full = np.arange(n)
    sims = np.linspace(0.2, 0.9, n)
    nll, toks = np.array([3.0, 1.0, 2.0, 4.0, 0.5, 1.5, 2.0]), np.array([2, 1, 3, 2, 1, 1, 4])
    stats = ev_intervals.statistics(
        REPLIES, REAL, sims=sims, closer=sims > 0.5, p_person=sims / 2, nll_sum=nll, tokens=toks
    )
    assert list(stats) == list(ev_intervals.METRICS)
    v = {k: float(s(full)) for k, s in stats.items()}
    h, length, slop = eval_style.habits(REPLIES), eval_style.length_stats(REPLIES, REAL), eval_style.slop_rate(REPLIES)
    for k in (
        "emoji_per_reply",
        "share_with_emoji",
        "share_lowercase_start",
        "exclamations_per_100_words",
        "questions_per_100_words",
    ):
        assert v[k] == pytest.approx(h[k]), k
    assert v["median_words"] == length["median_words"] and v["length_ratio"] == pytest.approx(length["median_ratio"])
    assert v["length_wasserstein"] == pytest.approx(length["wasserstein_words"])
    assert v["slop_per_1000_words"] == pytest.approx(slop["per_1000_words"])
    summary = eval_metrics.similarity_summary(sims, REAL, REAL, REPLIES)
    assert v["similarity_mean"] == pytest.approx(summary["mean"]) and v["similarity_median"] == pytest.approx(
        summary["median"]
    )
    assert v["similarity_share_ge_threshold"] == pytest.approx(summary["share_ge_threshold"])
    assert v["perplexity"] == pytest.approx(np.exp(nll.sum() / toks.sum()))
    assert v["twin_score"] == pytest.approx(np.mean(sims > 0.5)) and v["style_fidelity"] == pytest.approx(
        sims.mean() / 2
    )
    # what a model's inputs do not give is not a statistic
    assert set(ev_intervals.statistics(REPLIES, REAL)) == set(ev_intervals.METRICS) - {
        "perplexity",
        "similarity_mean",
        "similarity_median",
        "similarity_share_ge_threshold",
        "twin_score",
        "style_fidelity",
    }


def test_intervals_block_compares_every_ordered_pair_on_the_same_resamples():
    n = len(REAL)
    sims = {"base": np.full(n, 0.2), "sft": np.linspace(0.3, 0.6, n), "dpo": np.linspace(0.3, 0.6, n) + 0.1}
    stats = {
        m: ev_intervals.statistics(
            REPLIES if m != "dpo" else [r.upper() for r in REPLIES],
            REAL,
            sims=sims[m],
            closer=None if m == "base" else sims[m] > 0.4,
        )
        for m in ("base", "sft", "dpo")
    }
    block = ev_intervals.intervals(stats, n, resamples=200, seed=0)
    assert (block["resamples"], block["seed"], block["conversations"]) == (200, 0, n)
    assert list(block["deltas"]) == ["base->sft", "base->dpo", "sft->dpo"]
    sft_dpo = block["deltas"]["sft->dpo"]
    assert (sft_dpo["from"], sft_dpo["to"]) == ("sft", "dpo")
    sim = sft_dpo["metrics"]["similarity_mean"]
    assert [sim["delta"], sim["low"], sim["high"]] == pytest.approx([0.1] * 3) and sim["real"]  # a constant shift
    assert sft_dpo["metrics"]["median_words"]["real"] is False  # upper-casing keeps every length
    assert "twin_score" in sft_dpo["metrics"] and "twin_score" not in block["deltas"]["base->sft"]["metrics"]
    ms = block["models"]["sft"]["similarity_mean"]
    assert ms["value"] == pytest.approx(sims["sft"].mean()) and ms["low"] < ms["value"] < ms["high"]
    # lower-case starts of the upper-cased replies: the share is 0 on every resample with a cased reply
    assert block["models"]["dpo"]["share_lowercase_start"]["value"] == 0.0
    assert json.loads(json.dumps(block)) == block  # plain JSON (NaN written as null)


# -- style-fidelity classifier -----------------------------------------------------------------


def test_balanced_class_weights_put_an_uninformative_feature_at_p_one_half():
    # no information in X: the unweighted fit would say P = 3/4 (the share of 1s); balanced, 1/2
    X, y = np.zeros((4, 1)), np.array([1, 1, 1, 0])
    w, b = fidelity.fit_logistic(X, y, l2=1.0)
    assert b == pytest.approx(0.0, abs=1e-9) and w == pytest.approx([0.0])


def test_fit_logistic_reaches_the_minimum_of_its_objective():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(60, 3))
    y = (X[:, 0] - 0.5 * X[:, 1] + rng.normal(0, 0.7, 60) > 0.3).astype(float)
    l2 = 2.0
    w, b = fidelity.fit_logistic(X, y, l2=l2)
    c = 60 / (2 * np.array([np.sum(y == 0), np.sum(y == 1)]))[y.astype(int)]

    def J(theta):
        z = X @ theta[:3] + theta[3]
        return (np.sum(c * (np.logaddexp(0, z) - y * z)) + l2 / 2 * np.sum(theta[:3] ** 2)) / 60

    theta, eps = np.r_[w, b], 1e-5
    grad = [(J(theta + eps * e) - J(theta - eps * e)) / (2 * eps) for e in np.eye(4)]
    assert grad == pytest.approx(np.zeros(4), abs=1e-6)  # stationary: the minimum of a convex J
    assert w[0] > 0 > w[1]
    assert np.linalg.norm(fidelity.fit_logistic(X, y, l2=1e4)[0]) < 0.05 * np.linalg.norm(w)  # L2 shrinks


def test_speaker_messages_count_each_text_once_and_skip_system_and_torn_lines(tmp_path):
    path = write_chat_split(tmp_path / "train.jsonl", n=2, turns=3)
    with open(path, "a") as f:
        f.write('{"messages": [{"role": "user", "content": "Hi!"}, {"role": "assis')
    person, others = fidelity.speaker_messages([path])
    assert len(person) == len(others) == 6  # 2 conversations x 3 turns, though 6 samples repeat them
    assert person[0] == f"{PERSON[0]} (0.0)" and others[-1] == f"{OTHERS[5]} (1.2)"


def test_classifier_trained_on_train_tells_the_person_from_others_on_held_out_messages(tmp_path):
    train = write_chat_split(tmp_path / "train.jsonl", start=0, n=8)
    valid = write_chat_split(tmp_path / "valid.jsonl", start=8, n=3)
    clf, record, why = fidelity.build(train, [valid, tmp_path / "missing.jsonl"], hashed_embedder())
    assert why is None
    assert record["train"]["person_messages"] == record["train"]["other_messages"] == 24
    held = record["held_out"]
    assert held["paths"] == [str(valid)] and held["person_messages"] == 9
    assert held["accuracy"] >= 0.9 and held["balanced_accuracy"] >= 0.9
    assert held["person_mean_p"] > 0.5 > held["other_mean_p"]
    p = clf.p_person(["merge it. tuesday", "Hello there! Could you please send me the slides?"])
    assert p[0] > 0.5 > p[1]
    assert fidelity.summary(p) == {
        "mean": pytest.approx(p.mean()),
        "median": pytest.approx(np.median(p)),
        "share_ge_half": 0.5,
        "n": 2,
    }
    # same data, same classifier: nothing random is left
    again, _, _ = fidelity.build(train, [valid], hashed_embedder())
    assert np.array_equal(again.p_person(OTHERS), clf.p_person(OTHERS))


def test_too_few_messages_of_one_speaker_is_a_reason_not_a_crash(tmp_path):
    train = write_chat_split(tmp_path / "train.jsonl", n=1, turns=2)
    clf, record, why = fidelity.build(train, [], hashed_embedder())
    assert clf is None and "at least 5" in why and record["train"]["person_messages"] == 2
