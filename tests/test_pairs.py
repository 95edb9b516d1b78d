"""Pair generator: prompts from cleaned data, the filters and their counts, resumable children."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest
from sft_helpers import write_chat_data
from tiny import build_tiny_llama

from mlx_persona.core.errors import PersonaError
from mlx_persona.pairs import build as pairs
from mlx_persona.pairs.build import PairsConfig, assemble, read_prompts


def prompt(i, split="train", real="yeah ship it."):
    return {
        "id": f"p{i}",
        "split": split,
        "source": f"train.jsonl:{i}",
        "system": "You are Sam.",
        "messages": [{"role": "user", "content": f"question {i}?"}],
        "real": real,
    }


def reply(text, reason="stop"):
    return {"text": text, "finish_reason": reason}


def test_filters_are_counted_and_pairs_use_mlx_lm_lora_layout():
    ps = [prompt(0), prompt(1), prompt(2), prompt(3), prompt(4, "valid"), prompt(5, real=None), prompt(6)]
    base = {
        "p0": reply("Great question! Let me help."),
        "p1": reply("   "),
        "p2": reply("Sure, here is a long answer", "length"),
        "p3": reply("yeah ship it."),
        "p4": reply("I'd be happy to help!"),
        "p5": reply("Certainly!"),
        "p6": reply("yeah, ship it"),
    }
    twin = {"p5": reply("nah.")}

    def fake_similarity(a, b):  # p6 is a paraphrase of the chosen reply
        return [0.97 if "ship it" in y else 0.1 for y in b]

    out, rejects, counts = assemble(ps, base, twin, PairsConfig(), fake_similarity)
    assert counts == {
        "empty": 1,
        "truncated": 1,
        "identical": 1,
        "too_similar": 1,
        "trimmed": 0,
        "length_ratio": 0,
        "twin_close": 0,
        "small_gap": 0,
    }  # off by default / no twin pairs under rejected_from=base
    assert {r["rejected_from"] for r in out["train"] + out["valid"]} == {"base"}
    assert {r["id"]: r["reason"] for r in rejects} == {
        "p1": "empty",
        "p2": "truncated",
        "p3": "identical",
        "p6": "too_similar",
    }
    assert [r["id"] for r in out["train"]] == ["p0", "p5"] and [r["id"] for r in out["valid"]] == ["p4"]
    first = out["train"][0]
    assert (first["prompt"], first["chosen"], first["rejected"], first["system"]) == (
        "question 0?",
        "yeah ship it.",
        "Great question! Let me help.",
        "You are Sam.",
    )
    assert first["messages"] == ps[0]["messages"] and first["chosen_from"] == "real"
    assert out["train"][1]["chosen"] == "nah." and out["train"][1]["chosen_from"] == "twin"  # no real reply: the twin's


def test_cut_replies_are_trimmed_to_a_full_sentence():
    base = {
        "p0": reply("Great question! Let me explain. The cache is", "length"),
        "p1": reply("Sure, so the thing", "length"),
    }
    out, rejects, counts = assemble([prompt(0), prompt(1)], base, {}, PairsConfig(), None)
    assert out["train"][0]["rejected"] == "Great question! Let me explain."
    assert counts["trimmed"] == 1 and counts["truncated"] == 1 and rejects[0]["id"] == "p1"
    out, _, counts = assemble(
        [prompt(0), prompt(1)], base, {}, PairsConfig(trim_truncated=False, allow_truncated=True), None
    )
    assert out["train"][0]["rejected"] == "Great question! Let me explain. The cache is" and len(out["train"]) == 2


def test_chosen_twin_uses_the_twin_everywhere():
    out, _, _ = assemble([prompt(0)], {"p0": reply("Sure!")}, {"p0": reply("nope.")}, PairsConfig(chosen="twin"), None)
    assert out["train"][0]["chosen"] == "nope."


def test_read_prompts_contexts_and_bad_lines(tmp_path):
    data = write_chat_data(tmp_path / "data", n_train=5, n_valid=2)
    with open(data / "train.jsonl", "a") as f:
        f.write("{broken\n")
        f.write(json.dumps({"messages": [{"role": "assistant", "content": "hi"}]}) + "\n")
    ps, bad = read_prompts(data)
    assert len(ps) == 7 and [p["split"] for p in ps].count("valid") == 2
    assert all(p["messages"][-1]["role"] == "user" and p["real"] for p in ps)
    assert [b["source"].rsplit(":", 1)[1] for b in bad] == ["6", "7"]


def test_similarity_is_minilm_offline(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    sims = pairs._similarity(
        ["yeah ship it, tests pass", "no. check the ttl."],
        ["ship it, the tests are passing", "Great question! Let's break it down step by step."],
    )
    assert sims[0] > 0.7 and sims[1] < 0.3


def test_config_checks():
    with pytest.raises(PersonaError, match="chosen"):
        PairsConfig(chosen="both").validate()
    with pytest.raises(PersonaError, match="top_p"):
        PairsConfig(top_p=0).validate()


def test_children_generate_and_rerun_resumes(tiny_model_dir, tmp_path):
    data = write_chat_data(tmp_path / "data", n_train=6, n_valid=3)
    out = tmp_path / "pairs"
    twin = build_tiny_llama(tmp_path / "twin", seed=1)  # other weights: its replies differ from the base's
    cfg = PairsConfig(max_tokens=6, batch_size=4, chosen="twin", similarity_threshold=1.0, allow_truncated=True)
    logs = []
    stats = pairs.run_pairs(tiny_model_dir, twin, data, out, cfg, log=logs.append)
    n = stats["prompts"]
    assert stats["generation"]["base"]["generated"] == n and stats["generation"]["twin"]["generated"] == n
    assert sum(stats["filtered"].values()) + sum(stats["pairs"].values()) == n
    base = (out / "base.jsonl").read_text().splitlines()
    assert len(base) == n and all(json.loads(line)["finish_reason"] in ("stop", "length") for line in base)

    # a killed child: two replies lost, the last line torn in half
    (out / "base.jsonl").write_text("\n".join(base[:-3]) + "\n" + base[-3][:10])
    stats = pairs.run_pairs(tiny_model_dir, twin, data, out, cfg, log=logs.append)
    assert stats["generation"]["base"]["generated"] == 3 and stats["generation"]["twin"]["generated"] == 0
    assert len((out / "base.jsonl").read_text().splitlines()) == n

    with pytest.raises(PersonaError, match="max_tokens"):  # settings changed: not a resume
        pairs.run_pairs(tiny_model_dir, twin, data, out, PairsConfig(max_tokens=7, chosen="twin"), log=logs.append)


def test_chosen_real_needs_no_twin(tiny_model_dir, tmp_path):
    data = write_chat_data(tmp_path / "data", n_train=3, n_valid=2)
    stats = pairs.run_pairs(
        tiny_model_dir,
        None,
        data,
        tmp_path / "out",
        PairsConfig(max_tokens=4, similarity_threshold=1.0, allow_truncated=True),
        log=lambda m: None,
    )
    assert "twin" not in stats["generation"] and not (tmp_path / "out" / "twin.jsonl").exists()


# ----------------------------------------------------------------------------- rejected_from, lengths
def test_rejected_from_twin_keeps_only_twin_replies_far_from_the_real_one():
    ps = [prompt(0, real="no. ship monday"), prompt(1, real="yes, black"), prompt(2, real=None)]
    twin = {"p0": reply("sure, friday is fine"), "p1": reply("yes. black please"), "p2": reply("maybe")}
    base = {"p0": reply("Great question! Releases are a team decision.")}

    def fake_similarity(a, b):  # the twin's p1 says what the person said
        return [0.8 if "black" in y else 0.2 for y in b]

    cfg = PairsConfig(rejected_from="twin", twin_max_similarity=0.5)
    out, rejects, counts = assemble(ps, base, twin, cfg, fake_similarity)
    assert [(r["id"], r["chosen"], r["rejected"], r["rejected_from"]) for r in out["train"]] == [
        ("p0", "no. ship monday", "sure, friday is fine", "twin")
    ]  # p2 has no real reply: no twin pair
    assert counts["twin_close"] == 1 and counts["too_similar"] == 0
    assert [(r["id"], r["reason"], r["similarity"]) for r in rejects] == [("p1", "twin_close", 0.8)]
    # the bar is the setting: at 0.9 the close twin reply stays, and a cosine equal to it is dropped
    out, _, _ = assemble(ps, base, twin, PairsConfig(rejected_from="twin", twin_max_similarity=0.9), fake_similarity)
    assert [r["id"] for r in out["train"]] == ["p0", "p1"]
    out, _, counts = assemble(
        ps, base, twin, PairsConfig(rejected_from="twin", twin_max_similarity=0.2), fake_similarity
    )
    assert out["train"] == [] and counts["twin_close"] == 2


def test_rejected_from_both_filters_each_pair_on_its_own():
    ps = [prompt(0, real="no. ship monday"), prompt(1, "valid", real="yes, black"), prompt(2, real=None)]
    base = {
        "p0": reply("Great question! Releases are a team decision."),
        "p1": reply("Coffee is a popular drink."),
        "p2": reply("Sure!"),
    }
    twin = {"p0": reply("sure, friday is fine"), "p1": reply("yes. black please"), "p2": reply("nah.")}

    def fake_similarity(a, b):
        return [0.8 if "black" in y else 0.1 for y in b]

    out, rejects, counts = assemble(ps, base, twin, PairsConfig(rejected_from="both"), fake_similarity)
    assert [(r["id"], r["rejected_from"], r["rejected"]) for r in out["train"]] == [
        ("p0", "base", "Great question! Releases are a team decision."),
        ("p0", "twin", "sure, friday is fine"),
        ("p2", "base", "Sure!"),
    ]  # p2: the twin writes the chosen reply, so only the base one is rejected
    assert out["train"][2]["chosen"] == "nah." and out["train"][2]["chosen_from"] == "twin"
    assert [(r["id"], r["rejected_from"]) for r in out["valid"]] == [("p1", "base")]
    assert [(r["id"], r["rejected_from"], r["reason"]) for r in rejects] == [("p1", "twin", "twin_close")]
    # base pairs never face the twin bar: only similarity_threshold (0.9 here) drops them
    base["p1"] = reply("black coffee, yes")
    out, _, counts = assemble(ps, base, twin, PairsConfig(rejected_from="both"), fake_similarity)
    assert ("p1", "base") in [(r["id"], r["rejected_from"]) for r in out["valid"]] and counts["twin_close"] == 1


def test_max_length_ratio_drops_pairs_length_alone_separates():
    ps = [prompt(i, real="one two three four") for i in range(4)]
    base = {
        "p0": reply("a b c d e f g h i"),  # 9/4 = 2.25 > 2: too long
        "p1": reply("a b c d e f g h"),  # 8/4 = 2: kept (the bound is inclusive)
        "p2": reply("a"),  # 1/4 = 0.25 < 1/2: too short
        "p3": reply("a b"),
    }  # 2/4 = 0.5: kept
    out, rejects, counts = assemble(ps, base, {}, PairsConfig(max_length_ratio=2), None)
    assert [r["id"] for r in out["train"]] == ["p1", "p3"]
    assert counts["length_ratio"] == 2 and {r["id"] for r in rejects} == {"p0", "p2"}
    out, _, counts = assemble(ps, base, {}, PairsConfig(), None)  # off by default
    assert len(out["train"]) == 4 and counts["length_ratio"] == 0


def test_length_stats_percentiles_mean_and_longer_share():
    pairs_ = [
        {"chosen": " ".join("w" * c), "rejected": " ".join("w" * r)}
        for c, r in ((1, 10), (2, 20), (3, 1), (4, 40), (10, 50))
    ]
    stats = pairs.length_stats(pairs_)
    # chosen words 1,2,3,4,10: mean 4; p25 at position 1 -> 2; p90 at position 3.6 -> 4 + 0.6 * 6
    assert stats["chosen"] == {"mean": 4.0, "p10": 1.4, "p25": 2.0, "p50": 3.0, "p75": 4.0, "p90": 7.6}
    assert stats["rejected"]["mean"] == 24.2 and stats["rejected"]["p50"] == 20.0
    assert stats["rejected_longer"] == 0.8 and stats["pairs"] == 5
    assert stats["ratio_p50"] == 10.0  # ratios 10, 10, 1/3, 10, 5
    assert "rejected longer in 80% of pairs" in pairs.length_summary(stats)
    assert pairs.length_stats([]) == {"pairs": 0} and pairs.length_summary({"pairs": 0}) == "no pairs kept"


def test_rejected_from_checks():
    with pytest.raises(PersonaError, match="rejected_from"):
        PairsConfig(rejected_from="real").validate()
    with pytest.raises(PersonaError, match="chosen=real"):
        PairsConfig(rejected_from="twin", chosen="twin").validate()
    with pytest.raises(PersonaError, match="max_length_ratio"):
        PairsConfig(max_length_ratio=0.5).validate()
    with pytest.raises(PersonaError, match="twin_max_similarity"):
        PairsConfig(twin_max_similarity=1.5).validate()


def test_children_rejected_from_twin_and_both(tiny_model_dir, tmp_path, monkeypatch):
    data = write_chat_data(tmp_path / "data", n_train=6, n_valid=3)
    # every other candidate pair is "close" to the real reply; MiniLM itself is tested above
    monkeypatch.setattr(pairs, "_similarity", lambda a, b: [0.7 if i % 2 else 0.1 for i in range(len(b))])
    with pytest.raises(PersonaError, match="--twin"):
        pairs.run_pairs(
            tiny_model_dir, None, data, tmp_path / "none", PairsConfig(rejected_from="twin"), log=lambda m: None
        )

    cfg = PairsConfig(max_tokens=6, batch_size=4, rejected_from="twin", allow_truncated=True, twin_max_similarity=0.5)
    logs = []
    stats = pairs.run_pairs(tiny_model_dir, tiny_model_dir, data, tmp_path / "twin", cfg, log=logs.append)
    n = stats["prompts"]
    assert "base" not in stats["generation"] and not (tmp_path / "twin" / "base.jsonl").exists()
    assert stats["generation"]["twin"]["generated"] == n
    assert sum(stats["filtered"].values()) + sum(stats["pairs"].values()) == n
    candidates = n - sum(v for k, v in stats["filtered"].items() if k not in ("twin_close", "too_similar"))
    assert stats["filtered"]["twin_close"] == candidates // 2  # the odd ones
    kept = [
        json.loads(line)
        for s in ("train", "valid")
        for line in (tmp_path / "twin" / f"{s}.jsonl").read_text().splitlines()
    ]
    twin_text = {
        r["id"]: r["text"].strip() for r in map(json.loads, (tmp_path / "twin" / "twin.jsonl").read_text().splitlines())
    }
    assert kept and all(r["rejected_from"] == "twin" and r["rejected"] == twin_text[r["id"]] for r in kept)
    assert stats["rejected_from"] == {"base": 0, "twin": len(kept)} and stats["lengths"]["all"]["pairs"] == len(kept)
    assert stats["lengths"]["base"] == {"pairs": 0}
    assert "(rejected from twin)" in logs[-1] and "rejected longer in" in logs[-1]
    saved = json.loads((tmp_path / "twin" / "stats.json").read_text())
    assert saved["lengths"] == stats["lengths"] and saved["filtered"] == stats["filtered"]

    cfg = PairsConfig(
        max_tokens=6,
        batch_size=4,
        rejected_from="both",
        allow_truncated=True,
        twin_max_similarity=1.0,
        similarity_threshold=1.0,
        max_length_ratio=3,
    )
    stats = pairs.run_pairs(tiny_model_dir, tiny_model_dir, data, tmp_path / "both", cfg, log=logs.append)
    assert stats["generation"]["base"]["generated"] == n and stats["generation"]["twin"]["generated"] == n
    assert sum(stats["filtered"].values()) + sum(stats["pairs"].values()) == 2 * n  # two candidates per prompt
    kept = [
        json.loads(line)
        for s in ("train", "valid")
        for line in (tmp_path / "both" / f"{s}.jsonl").read_text().splitlines()
    ]
    ratio = lambda r: len(r["rejected"].split()) / len(r["chosen"].split())  # noqa: E731
    assert all(1 / 3 <= ratio(r) <= 3 for r in kept)
    dropped = [
        r
        for r in map(json.loads, (tmp_path / "both" / "rejects.jsonl").read_text().splitlines())
        if r["reason"] == "length_ratio"
    ]
    assert len(dropped) == stats["filtered"]["length_ratio"] and all(not 1 / 3 <= ratio(r) <= 3 for r in dropped)
    assert stats["rejected_from"]["base"] + stats["rejected_from"]["twin"] == len(kept)
    assert stats["lengths"]["base"]["pairs"] == stats["rejected_from"]["base"]


def test_no_training_pair_stops_with_the_filter_that_took_them(tiny_model_dir, tmp_path):
    data = write_chat_data(tmp_path / "data", n_train=3, n_valid=2)
    out = tmp_path / "out"
    # max_tokens 1: every base reply is cut (or empty): no full sentence is left to keep
    cfg = PairsConfig(max_tokens=1, similarity_threshold=1.0)
    with pytest.raises(PersonaError, match=r"no training pair from \d+ prompts \(filtered: ") as err:
        pairs.run_pairs(tiny_model_dir, None, data, out, cfg, log=lambda m: None)
    assert not (out / "train.jsonl").exists() and not (out / "valid.jsonl").exists()
    rejects = [json.loads(line) for line in (out / "rejects.jsonl").read_text().splitlines()]
    reasons = [r["reason"] for r in rejects]
    assert reasons and set(reasons) <= {"truncated", "empty"}
    worst = max(("empty", "truncated"), key=reasons.count)  # a tie goes to the first, as in the message
    assert str(err.value).endswith(pairs.FILTER_FIXES[worst])

    # the message names the biggest filter; nothing filtered at all says the prompts are missing
    msg = pairs.no_pairs_message(9, {"truncated": 2, "too_similar": 5, "trimmed": 3}, out / "rejects.jsonl")
    assert "too_similar 5, truncated 2" in msg and msg.endswith(
        "raise pairs.similarity_threshold (1 turns the filter off)"
    )
    assert "no usable prompt" in pairs.no_pairs_message(0, {"truncated": 0}, out / "rejects.jsonl")


def test_max_tokens_unset_gives_room_for_the_persons_longest_replies(tiny_model_dir, tmp_path):
    """Left empty, ``max_tokens`` is sized on the train split's replies (1.5x their p99 in the
    model's tokens, at least 64): a long-winded person's twin is not cut mid-reply."""
    from mlx_lm.utils import load_tokenizer

    from mlx_persona.data.stats import ROOM_FLOOR, percentiles, reply_room

    data = write_chat_data(tmp_path / "data", n_train=4, n_valid=2)
    lines = (data / "train.jsonl").read_text().splitlines()
    long = "Oh that is wonderful news, I am so happy for you! Tell me everything about it please! " * 3
    rows = [json.loads(line) for line in lines]
    rows[0]["messages"][-1]["content"] = long
    (data / "train.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    tok = load_tokenizer(tiny_model_dir)
    p99 = percentiles(len(tok.encode(r["messages"][-1]["content"], add_special_tokens=False)) for r in rows)["p99"]
    assert p99 * 1.5 > ROOM_FLOOR  # this persona needs more room than the floor
    logs = []
    cfg = PairsConfig(batch_size=4, chosen="twin", similarity_threshold=1.0, allow_truncated=True, max_prompts=1)
    twin = build_tiny_llama(tmp_path / "twin", seed=1)  # other weights: its replies differ from the base's
    stats = pairs.run_pairs(tiny_model_dir, twin, data, tmp_path / "out", cfg, log=logs.append)
    assert stats["config"]["max_tokens"] == reply_room(p99) >= p99 * 1.5
    assert json.loads((tmp_path / "out" / "pairs_config.json").read_text())["max_tokens"] == reply_room(p99)
    assert any(f"replies up to {reply_room(p99)} tokens" in m and f"reply of {p99} tokens" in m for m in logs)
    # unset again: the same size, so the stage resumes instead of refusing changed settings
    again = pairs.run_pairs(tiny_model_dir, twin, data, tmp_path / "out", cfg, log=logs.append)
    assert again["generation"]["twin"]["generated"] == 0


# ----------------------------------------------------------------------------- chosen: closest
CLOSEST = PairsConfig(chosen="closest", rejected_from="twin", twin_samples=3)


def closeness_to_real(a, b):
    """A stand-in for MiniLM: a reply's cosine with the real reply is the number it starts with."""
    return [float(y.split()[0]) if y.split()[0].replace(".", "").isdigit() else 0.0 for y in b]


def test_closest_ranks_the_twins_own_replies_by_the_real_one():
    ps = [prompt(0), prompt(1), prompt(2), prompt(3), prompt(4, "valid"), prompt(5, real=None)]
    samples = {
        "p0": [reply("0.2 far off."), reply("0.45 near it."), reply("0.3 between.")],
        "p1": [reply("0.3 one."), reply("0.35 two.")],  # nearest beats farthest by less than 0.1
        "p2": [reply("0.6 close."), reply("0.7 closer.")],  # even the farthest says what the person said
        "p3": [reply("0.1 cut off and", "length"), reply("   "), reply("0.4 fine.")],  # one usable reply
        "p4": [reply("0.05 no."), reply("0.25 sure, friday.")],
        "p5": [reply("0.1 a."), reply("0.9 b.")],  # no real reply: nothing to rank by
    }
    cfg = replace(CLOSEST, similarity_threshold=1.0)
    out, rejects, counts = assemble(ps, {}, {}, cfg, closeness_to_real, samples)
    first = out["train"][0]
    assert (first["id"], first["chosen"], first["rejected"]) == ("p0", "0.45 near it.", "0.2 far off.")
    assert first["chosen_from"] == "closest" and first["rejected_from"] == "twin"
    assert (first["real"], first["chosen_to_real"], first["rejected_to_real"]) == ("yeah ship it.", 0.45, 0.2)
    assert [r["id"] for r in out["valid"]] == ["p4"] and len(out["train"]) == 1
    assert {r["id"]: r["reason"] for r in rejects} == {"p1": "small_gap", "p2": "twin_close", "p3": "truncated"}
    assert counts["small_gap"] == counts["twin_close"] == counts["truncated"] == 1
    # a wider margin drops p0 too; none at all keeps p1
    out, _, _ = assemble(ps, {}, {}, replace(cfg, closest_margin=0.3), closeness_to_real, samples)
    assert [r["id"] for r in out["train"] + out["valid"]] == []
    out, _, _ = assemble(ps, {}, {}, replace(cfg, closest_margin=0.0), closeness_to_real, samples)
    assert [r["id"] for r in out["train"]] == ["p0", "p1"]
    same = {"p0": [reply("0.3 one way."), reply("0.3 another way.")]}  # equally far: nothing to prefer
    out, rejects, _ = assemble(ps[:1], {}, {}, replace(cfg, closest_margin=0.0), closeness_to_real, same)
    assert not out["train"] and rejects[0]["reason"] == "small_gap"


def test_closest_pairs_the_nearest_with_each_far_reply():
    ps = [prompt(0), prompt(1), prompt(2, "valid")]
    samples = {
        "p0": [reply("0.2 far off."), reply("0.5 near it."), reply("0.35 between."), reply("0.1 farthest.")],
        # 0.45 is within closest_margin of the nearest; 0.05 is kept
        "p1": [reply("0.45 almost."), reply("0.5 nearest."), reply("0.05 nothing like it.")],
        "p2": [reply("0.6 the person's words."), reply("0.3 far."), reply("0.7 nearest.")],  # 0.6: no negative
    }
    cfg = replace(CLOSEST, twin_samples=4, rejected_per_prompt=3, similarity_threshold=1.0)
    out, rejects, counts = assemble(ps, {}, {}, cfg, closeness_to_real, samples)
    got = [(r["id"], r["chosen"], r["rejected"], r["rejected_to_real"]) for r in out["train"] + out["valid"]]
    assert got == [
        ("p0", "0.5 near it.", "0.1 farthest.", 0.1),  # farthest first
        ("p0", "0.5 near it.", "0.2 far off.", 0.2),
        ("p0", "0.5 near it.", "0.35 between.", 0.35),
        ("p1", "0.5 nearest.", "0.05 nothing like it.", 0.05),
        ("p2", "0.7 nearest.", "0.3 far.", 0.3),
    ]
    assert all(r["chosen_to_real"] == float(r["chosen"].split()[0]) for r in out["train"] + out["valid"])
    assert sorted((r["id"], r["reason"]) for r in rejects) == [("p1", "small_gap"), ("p2", "twin_close")]
    assert counts["small_gap"] == counts["twin_close"] == 1
    # one per prompt: the farthest only, as before
    out, rejects, _ = assemble(ps, {}, {}, replace(cfg, rejected_per_prompt=1), closeness_to_real, samples)
    assert [(r["id"], r["rejected"]) for r in out["train"] + out["valid"]] == [
        ("p0", "0.1 farthest."),
        ("p1", "0.05 nothing like it."),
        ("p2", "0.3 far."),
    ]
    assert not rejects
    # two: the nearest against the two farthest
    out, _, _ = assemble(ps[:1], {}, {}, replace(cfg, rejected_per_prompt=2), closeness_to_real, samples)
    assert [r["rejected"] for r in out["train"]] == ["0.1 farthest.", "0.2 far off."]


def test_closest_style_weight_ranks_by_cosine_plus_p_person():
    ps = [prompt(0), prompt(1)]
    # p0: "b" says a little more of what the person said, but drops their habits (P 0.1)
    samples = {
        "p0": [reply("0.40 a!"), reply("0.45 b."), reply("0.20 c!")],
        "p1": [reply("0.30 d."), reply("0.32 e!")],
    }
    p_person = {"0.40 a!": 0.9, "0.45 b.": 0.1, "0.20 c!": 0.8, "0.30 d.": 0.2, "0.32 e!": 0.6}
    calls = []

    def style(texts):
        calls.append(list(texts))
        return [p_person[t] for t in texts]

    cfg = replace(CLOSEST, similarity_threshold=1.0)
    out, _, _ = assemble(ps, {}, {}, cfg, closeness_to_real, samples, style)
    assert not calls  # style_weight 0: cosine alone, the classifier is never asked
    assert (out["train"][0]["chosen"], out["train"][0]["rejected"]) == ("0.45 b.", "0.20 c!")
    assert "chosen_style" not in out["train"][0]

    out, rejects, _ = assemble(ps, {}, {}, replace(cfg, style_weight=0.5), closeness_to_real, samples, style)
    # p0 scores: a 0.40 + 0.45 = 0.85, b 0.45 + 0.05 = 0.50, c 0.20 + 0.40 = 0.60 -> a against b
    first = out["train"][0]
    assert (first["chosen"], first["rejected"]) == ("0.40 a!", "0.45 b.")
    assert (first["chosen_to_real"], first["rejected_to_real"]) == (0.40, 0.45)
    assert (first["chosen_style"], first["rejected_style"]) == (0.9, 0.1)
    # p1: e 0.32 + 0.30 against d 0.30 + 0.10: a gap of 0.22 on the score, 0.02 on the cosine alone
    assert [r["id"] for r in out["train"]] == ["p0", "p1"] and not rejects
    assert len(calls) == 1 and sorted(calls[0]) == sorted(p_person)  # every usable reply, in one call
    assert pairs.closeness(out["train"]) == {
        "chosen_to_real": 0.36,
        "rejected_to_real": 0.375,
        "chosen_style": 0.75,
        "rejected_style": 0.15,
    }


def test_run_pairs_style_weight_uses_the_classifier_of_the_train_split(tiny_model_dir, tmp_path, monkeypatch):
    from eval_helpers import hashed_embedder

    from mlx_persona.data import fidelity
    from mlx_persona.models import embed as embed_module

    data = write_chat_data(tmp_path / "data", n_train=30, n_valid=3)  # every reply and prompt of the helper
    twin = build_tiny_llama(tmp_path / "twin", seed=1)
    monkeypatch.setattr(embed_module, "embed", hashed_embedder())
    monkeypatch.setattr(pairs, "_similarity", lambda a, b: [0.2] * len(b))  # every reply as near: style decides
    fitted = []
    build = fidelity.build
    monkeypatch.setattr(fidelity, "build", lambda *a, **k: fitted.append(a[0]) or build(*a, **k))
    cfg = replace(CLOSEST, max_tokens=6, batch_size=4, allow_truncated=True, similarity_threshold=1.0)
    logs = []
    with pytest.raises(PersonaError, match=r"filtered: small_gap \d+;"):  # by cosine alone: no nearest
        pairs.run_pairs(tiny_model_dir, twin, data, tmp_path / "plain", cfg, log=logs.append)
    assert not fitted  # style_weight 0: no classifier

    cfg = replace(cfg, style_weight=1.0, closest_margin=0.001)
    out = tmp_path / "styled"
    stats = pairs.run_pairs(tiny_model_dir, twin, data, out, cfg, log=logs.append)
    assert fitted == [data / "train.jsonl"]  # the train split only
    kept = [json.loads(line) for s in ("train", "valid") for line in (out / f"{s}.jsonl").read_text().splitlines()]
    assert kept and all(r["chosen_style"] - r["rejected_style"] >= 0.001 - 1e-4 for r in kept)
    assert stats["closest"]["chosen_style"] > stats["closest"]["rejected_style"]

    # a train split too small for a classifier: ranked by cosine alone, and the log says so
    small = write_chat_data(tmp_path / "small", n_train=3, n_valid=3)
    with pytest.raises(PersonaError, match="small_gap"):
        pairs.run_pairs(tiny_model_dir, twin, small, tmp_path / "small_out", cfg, log=logs.append)
    assert any("style_weight ignored" in m and "needs at least 5" in m for m in logs)


def test_closest_checks():
    CLOSEST.validate()
    with pytest.raises(PersonaError, match="rejected_from: twin"):
        replace(CLOSEST, rejected_from="base").validate()
    with pytest.raises(PersonaError, match="at least 2 twin replies"):
        replace(CLOSEST, twin_samples=1).validate()
    with pytest.raises(PersonaError, match="chosen=closest only"):
        PairsConfig(rejected_from="twin", twin_samples=4).validate()
    with pytest.raises(PersonaError, match="closest_margin"):
        replace(CLOSEST, closest_margin=1.0).validate()
    replace(CLOSEST, rejected_per_prompt=2).validate()
    with pytest.raises(PersonaError, match=r"rejected_per_prompt: must be below twin_samples \(3\)"):
        replace(CLOSEST, rejected_per_prompt=3).validate()
    with pytest.raises(PersonaError, match="rejected_per_prompt: must be at least 1"):
        replace(CLOSEST, rejected_per_prompt=0).validate()
    with pytest.raises(PersonaError, match="rejected_per_prompt: more than one pair per prompt"):
        PairsConfig(rejected_per_prompt=2).validate()
    with pytest.raises(PersonaError, match="style_weight: must not be negative"):
        replace(CLOSEST, style_weight=-0.5).validate()
    with pytest.raises(PersonaError, match="style_weight: ranks the twin's replies"):
        PairsConfig(style_weight=0.5).validate()


def test_children_closest_samples_each_prompt_and_resumes(tiny_model_dir, tmp_path, monkeypatch):
    data = write_chat_data(tmp_path / "data", n_train=6, n_valid=3)
    twin = build_tiny_llama(tmp_path / "twin", seed=1)
    # the i-th reply's cosine with the real reply: spread so each prompt has a near and a far one
    monkeypatch.setattr(pairs, "_similarity", lambda a, b: [0.1 * (i % 4) for i in range(len(b))])
    cfg = replace(CLOSEST, max_tokens=6, batch_size=4, allow_truncated=True, similarity_threshold=1.0)
    out = tmp_path / "pairs"
    stats = pairs.run_pairs(tiny_model_dir, twin, data, out, cfg, log=lambda m: None)
    n = stats["prompts"]
    lines = [json.loads(line) for line in (out / "twin.jsonl").read_text().splitlines()]
    assert len(lines) == 3 * n and stats["generation"]["twin"]["generated"] == 3 * n
    assert "base" not in stats["generation"]
    per_id = {}
    for r in lines:
        per_id.setdefault(r["id"], []).append(r["sample"])
    assert all(sorted(s) == sorted([0, 1, 2] * (len(s) // 3)) for s in per_id.values())  # a repeated prompt: twice
    kept = [json.loads(line) for s in ("train", "valid") for line in (out / f"{s}.jsonl").read_text().splitlines()]
    assert kept and stats["chosen_from"]["closest"] == len(kept) == sum(stats["pairs"].values())
    texts = {r["text"].strip() for r in lines}
    assert all(r["chosen"] in texts and r["rejected"] in texts and r["chosen"] != r["rejected"] for r in kept)
    assert all(r["chosen_to_real"] - r["rejected_to_real"] >= cfg.closest_margin - 1e-9 for r in kept)
    assert stats["closest"]["chosen_to_real"] > stats["closest"]["rejected_to_real"]

    # a killed child lost its last reply: a re-run draws just that one
    (out / "twin.jsonl").write_text("".join(json.dumps(r) + "\n" for r in lines[:-1]))
    stats = pairs.run_pairs(tiny_model_dir, twin, data, out, cfg, log=lambda m: None)
    assert stats["generation"]["twin"]["generated"] == 1
    assert len((out / "twin.jsonl").read_text().splitlines()) == 3 * n
