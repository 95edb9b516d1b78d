"""Pair generator: prompts from cleaned data, the filters and their counts, resumable children."""

from __future__ import annotations

import json

import pytest
from sft_helpers import write_chat_data

from mlx_persona.pairs import build as pairs
from mlx_persona.core.errors import PersonaError
from mlx_persona.pairs.build import PairsConfig, assemble, read_prompts


def prompt(i, split="train", real="yeah ship it."):
    return {"id": f"p{i}", "split": split, "source": f"train.jsonl:{i}", "system": "You are Sam.",
            "messages": [{"role": "user", "content": f"question {i}?"}], "real": real}


def reply(text, reason="stop"):
    return {"text": text, "finish_reason": reason}


def test_filters_are_counted_and_pairs_use_mlx_lm_lora_layout():
    ps = [prompt(0), prompt(1), prompt(2), prompt(3), prompt(4, "valid"), prompt(5, real=None), prompt(6)]
    base = {"p0": reply("Great question! Let me help."), "p1": reply("   "), "p2": reply("Sure, here is a long answer", "length"),
            "p3": reply("yeah ship it."), "p4": reply("I'd be happy to help!"), "p5": reply("Certainly!"),
            "p6": reply("yeah, ship it")}
    twin = {"p5": reply("nah.")}

    def fake_similarity(a, b):  # p6 is a paraphrase of the chosen reply
        return [0.97 if "ship it" in y else 0.1 for y in b]

    out, rejects, counts = assemble(ps, base, twin, PairsConfig(), fake_similarity)
    assert counts == {"empty": 1, "truncated": 1, "identical": 1, "too_similar": 1, "trimmed": 0}
    assert {r["id"]: r["reason"] for r in rejects} == {"p1": "empty", "p2": "truncated", "p3": "identical", "p6": "too_similar"}
    assert [r["id"] for r in out["train"]] == ["p0", "p5"] and [r["id"] for r in out["valid"]] == ["p4"]
    first = out["train"][0]
    assert (first["prompt"], first["chosen"], first["rejected"], first["system"]) == \
        ("question 0?", "yeah ship it.", "Great question! Let me help.", "You are Sam.")
    assert first["messages"] == ps[0]["messages"] and first["chosen_from"] == "real"
    assert out["train"][1]["chosen"] == "nah." and out["train"][1]["chosen_from"] == "twin"  # no real reply: the twin's


def test_cut_replies_are_trimmed_to_a_full_sentence():
    base = {"p0": reply("Great question! Let me explain. The cache is", "length"), "p1": reply("Sure, so the thing", "length")}
    out, rejects, counts = assemble([prompt(0), prompt(1)], base, {}, PairsConfig(), None)
    assert out["train"][0]["rejected"] == "Great question! Let me explain."
    assert counts["trimmed"] == 1 and counts["truncated"] == 1 and rejects[0]["id"] == "p1"
    out, _, counts = assemble([prompt(0), prompt(1)], base, {}, PairsConfig(trim_truncated=False, allow_truncated=True), None)
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
    sims = pairs._similarity(["yeah ship it, tests pass", "no. check the ttl."],
                             ["ship it, the tests are passing", "Great question! Let's break it down step by step."])
    assert sims[0] > 0.7 and sims[1] < 0.3


def test_config_checks():
    with pytest.raises(PersonaError, match="chosen"):
        PairsConfig(chosen="both").validate()
    with pytest.raises(PersonaError, match="top_p"):
        PairsConfig(top_p=0).validate()


def test_children_generate_and_rerun_resumes(tiny_model_dir, tmp_path):
    data = write_chat_data(tmp_path / "data", n_train=6, n_valid=3)
    out = tmp_path / "pairs"
    cfg = PairsConfig(max_tokens=6, batch_size=4, chosen="twin", similarity_threshold=1.0)
    logs = []
    stats = pairs.run_pairs(tiny_model_dir, tiny_model_dir, data, out, cfg, log=logs.append)
    n = stats["prompts"]
    assert stats["generation"]["base"]["generated"] == n and stats["generation"]["twin"]["generated"] == n
    assert sum(stats["filtered"].values()) + sum(stats["pairs"].values()) == n
    base = (out / "base.jsonl").read_text().splitlines()
    assert len(base) == n and all(json.loads(l)["finish_reason"] in ("stop", "length") for l in base)

    # a killed child: two replies lost, the last line torn in half
    (out / "base.jsonl").write_text("\n".join(base[:-3]) + "\n" + base[-3][:10])
    stats = pairs.run_pairs(tiny_model_dir, tiny_model_dir, data, out, cfg, log=logs.append)
    assert stats["generation"]["base"]["generated"] == 3 and stats["generation"]["twin"]["generated"] == 0
    assert len((out / "base.jsonl").read_text().splitlines()) == n

    with pytest.raises(PersonaError, match="max_tokens"):  # settings changed: not a resume
        pairs.run_pairs(tiny_model_dir, tiny_model_dir, data, out, PairsConfig(max_tokens=7, chosen="twin"), log=logs.append)


def test_chosen_real_needs_no_twin(tiny_model_dir, tmp_path):
    data = write_chat_data(tmp_path / "data", n_train=3, n_valid=2)
    stats = pairs.run_pairs(tiny_model_dir, None, data, tmp_path / "out", PairsConfig(max_tokens=4, similarity_threshold=1.0),
                            log=lambda m: None)
    assert "twin" not in stats["generation"] and not (tmp_path / "out" / "twin.jsonl").exists()
