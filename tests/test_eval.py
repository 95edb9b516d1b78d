"""`mlx-persona eval` end to end on the tiny model: a run folder, explicit options, bad input."""

import json
import shutil

import pytest
from click.testing import CliRunner
from eval_helpers import write_chat_split, write_random_adapter, write_test_split

from mlx_persona.cli import cli


@pytest.fixture(scope="module")
def tiny_run(tiny_model_dir, tmp_path_factory):
    """A run folder: recipe naming the tiny base, clean/{train,valid,test}.jsonl, an SFT adapter, a DPO adapter."""
    run = tmp_path_factory.mktemp("runs") / "tiny"
    write_test_split(run / "clean" / "test.jsonl")
    write_chat_split(run / "clean" / "train.jsonl", start=0, n=8)
    write_chat_split(run / "clean" / "valid.jsonl", start=8, n=2)
    (run / "recipe.yaml").write_text(f"name: tiny\nmodel: {tiny_model_dir}\n")
    write_random_adapter(tiny_model_dir, run / "sft", seed=1)
    write_random_adapter(tiny_model_dir, run / "dpo", seed=2)
    return run


def invoke(*args):
    result = CliRunner().invoke(cli, ["eval", *map(str, args)])
    assert result.exception is None or isinstance(result.exception, SystemExit), result.output
    return result


def test_eval_on_a_run_folder_measures_three_models(tiny_run):
    r = invoke(tiny_run, "--max-tokens", 8, "--batch-size", 4)
    assert r.exit_code == 0, r.output
    m = json.loads((tiny_run / "eval" / "metrics.json").read_text())
    assert list(m["models"]) == ["base", "sft", "dpo"]
    assert m["skipped"] == []
    assert m["test"]["conversations"] == 8
    for name, model in m["models"].items():
        assert model["perplexity"]["perplexity"] > 1 and model["perplexity"]["tokens"] > 0
        assert model["similarity"]["n"] == 8 and -1 <= model["similarity"]["mean"] <= 1
        assert len(model["similarity"]["top"]) == 5
        assert "per_1000_words" in model["style"]["slop"]
        assert model["speed"]["generated_tokens"] > 0 and model["speed"]["ttft_mean_s"] > 0
        assert ("twin_score" in model) == (name != "base")
    assert m["models"]["sft"]["adapter"].endswith("sft")
    assert m["twin"] is None  # no --twin given
    # style-fidelity: a classifier trained on the train split only, checked on valid + test
    clf = m["style_classifier"]
    assert clf["train"]["path"].endswith("clean/train.jsonl") and clf["train"]["person_messages"] == 24
    assert clf["held_out"]["paths"][0].endswith("clean/valid.jsonl") and 0 <= clf["held_out"]["balanced_accuracy"] <= 1
    assert m["real"]["style_fidelity"]["n"] == 8
    for model in m["models"].values():
        assert model["style_fidelity"]["n"] == 8 and 0 <= model["style_fidelity"]["mean"] <= 1
        assert "per_sample" not in model["perplexity"]  # per-conversation sums feed the intervals only
    # intervals: each model's numbers, every ordered pair's differences, on the 8 conversations
    iv = m["intervals"]
    assert iv["conversations"] == 8 and iv["resamples"] == 1000 and iv["level"] == 0.95
    assert list(iv["deltas"]) == ["base->sft", "base->dpo", "sft->dpo"]
    for name, model in m["models"].items():
        assert iv["models"][name]["perplexity"]["value"] == pytest.approx(model["perplexity"]["perplexity"])
        assert iv["models"][name]["style_fidelity"]["value"] == pytest.approx(model["style_fidelity"]["mean"])
    sim = iv["deltas"]["sft->dpo"]["metrics"]["similarity_mean"]
    assert sim["delta"] == pytest.approx(
        m["models"]["dpo"]["similarity"]["mean"] - m["models"]["sft"]["similarity"]["mean"], abs=1e-6
    )
    for pair in iv["deltas"].values():
        for d in pair["metrics"].values():
            if d["low"] is not None:
                assert d["low"] <= d["high"] and d["real"] == (d["low"] > 0 or d["high"] < 0)
    assert (
        "twin_score" in iv["deltas"]["sft->dpo"]["metrics"] and "twin_score" not in iv["deltas"]["base->sft"]["metrics"]
    )
    # a random adapter changes the model: different perplexity from the base
    assert m["models"]["sft"]["perplexity"]["perplexity"] != pytest.approx(
        m["models"]["base"]["perplexity"]["perplexity"]
    )
    rows = [json.loads(line) for line in (tiny_run / "eval" / "samples.jsonl").read_text().splitlines()]
    assert len(rows) == 8
    assert set(rows[0]) == {"prompt", "real", "base", "sft", "dpo"}
    assert rows[2]["prompt"] == "what is the capital of France?" and rows[2]["real"] == "Paris."


def test_explicit_options_and_a_missing_model_is_skipped_not_raised(tiny_model_dir, tiny_run, tmp_path):
    out = tmp_path / "eval"
    r = invoke(
        "--base",
        tiny_model_dir,
        "--sft-adapter",
        tiny_run / "sft",
        "--dpo",
        tmp_path / "nope",
        "--test",
        tiny_run / "clean" / "test.jsonl",
        "--out",
        out,
        "--limit",
        3,
        "--max-tokens",
        4,
        "--no-perplexity",
        "--twin",
        "sft",
    )
    assert r.exit_code == 0, r.output
    m = json.loads((out / "metrics.json").read_text())
    assert list(m["models"]) == ["base", "sft"]
    assert m["twin"] == "sft"
    assert "perplexity" not in m["models"]["base"] and "perplexity" not in m["intervals"]["models"]["base"]
    assert list(m["intervals"]["deltas"]) == ["base->sft"] and m["intervals"]["conversations"] == 3
    assert [s["item"] for s in m["skipped"]] == ["dpo"]
    assert "nope" in m["skipped"][0]["reason"]
    assert m["test"]["conversations"] == 3


def test_run_folder_without_test_split_or_stages(tiny_model_dir, tmp_path):
    run = tmp_path / "empty"
    run.mkdir()
    (run / "manifest.json").write_text(json.dumps({"model": str(tiny_model_dir)}))
    r = invoke(run)
    assert r.exit_code == 0, r.output
    m = json.loads((run / "eval" / "metrics.json").read_text())
    assert m["models"] == {}
    reasons = {s["item"]: s["reason"] for s in m["skipped"]}
    assert set(reasons) == {"sft", "dpo", "all metrics"}
    assert "no test split" in reasons["all metrics"]
    assert (run / "eval" / "samples.jsonl").read_text() == ""


def test_bad_lines_and_a_broken_adapter_are_reported(tiny_model_dir, tiny_run, tmp_path):
    test = tmp_path / "test.jsonl"
    shutil.copy(tiny_run / "clean" / "test.jsonl", test)
    with open(test, "a") as f:
        f.write("not json\n" + json.dumps({"messages": [{"role": "user", "content": "hi"}]}) + "\n")
    bad = tmp_path / "bad_adapter"
    shutil.copytree(tiny_run / "sft", bad)
    (bad / "adapters.safetensors").write_bytes(b"garbage")
    r = invoke(
        "--base",
        tiny_model_dir,
        "--sft-adapter",
        bad,
        "--test",
        test,
        "--out",
        tmp_path / "eval",
        "--max-tokens",
        2,
        "--no-perplexity",
    )
    assert r.exit_code == 0, r.output
    m = json.loads((tmp_path / "eval" / "metrics.json").read_text())
    assert list(m["models"]) == ["base"]
    sft = next(s for s in m["skipped"] if s["item"] == "sft")
    assert sft["reason"].startswith(f"{bad}: cannot apply this adapter")
    assert m["test"]["conversations"] == 8 and m["test"]["lines_left_out"] == 2
    fidelity = next(s for s in m["skipped"] if s["item"] == "style-fidelity")  # no train.jsonl beside this test split
    assert fidelity["reason"].startswith(f"no train split at {tmp_path / 'train.jsonl'}")
    assert "style_fidelity" not in m["models"]["base"] and "similarity_mean" in m["intervals"]["models"]["base"]
    assert m["test"]["first_problems"][0].endswith("test.jsonl:9: not a JSON object")


def test_no_output_folder_is_a_clear_error():
    r = CliRunner().invoke(cli, ["eval"])
    assert r.exit_code == 1 and "run folder or --out" in r.output
    r = CliRunner().invoke(cli, ["eval", "--out", "x", "--twin", "best"])
    assert r.exit_code == 2 and "'best' is not one of" in r.output


@pytest.mark.e2e
def test_default_model_perplexity_and_batched_equals_sequential(default_model_dir):
    """On the real model: the natural answer is far likelier than a persona-style one, and the
    batched generator gives the same greedy replies as one-at-a-time generation."""
    from mlx_persona.eval.model import ModelSpec, evaluate_model

    q = [{"role": "user", "content": "What is the capital of France?"}]
    convs = [
        {"messages": q + [{"role": "assistant", "content": a}]}
        for a in ("The capital of France is Paris.", "yes. link?")
    ]
    spec = ModelSpec("base", default_model_dir)
    batched = evaluate_model(spec, convs, max_tokens=12, batch_size=2, log=lambda m: None)
    sequential = evaluate_model(
        spec, convs, max_tokens=12, mode="sequential", with_perplexity=False, log=lambda m: None
    )
    from mlx_persona.eval.model import load_model, perplexity

    model, tok = load_model(spec)
    ppl = [perplexity(model, tok, [c])["perplexity"] for c in convs]
    assert ppl[0] < 3 < 100 < ppl[1]
    assert "Paris" in batched["replies"][0]
    assert batched["replies"] == sequential["replies"]


def test_per_sample_reply_nll_adds_up_to_mlx_lms_masked_loss(tiny_model_dir):
    """Perplexity per conversation (for the bootstrap) sums to the training loss's token average."""
    import math

    import mlx.core as mx
    from eval_helpers import EXCHANGES
    from mlx_lm.tuner.datasets import ChatDataset
    from mlx_lm.tuner.trainer import default_loss

    from mlx_persona.eval.model import ModelSpec, load_model, perplexity

    model, tok = load_model(ModelSpec("base", tiny_model_dir), log=lambda m: None)
    convs = [{"messages": [{"role": "user", "content": q}, {"role": "assistant", "content": a}]} for q, a in EXCHANGES]
    p = perplexity(model, tok, convs, batch_size=3)
    per = p["per_sample"]
    assert len(per["nll_sum"]) == len(convs) and all(n > 0 for n in per["tokens"])
    assert p["tokens"] == sum(per["tokens"])
    assert p["perplexity"] == pytest.approx(math.exp(sum(per["nll_sum"]) / sum(per["tokens"])))
    # a conversation's numbers do not depend on the (padded) rows batched with it
    alone = perplexity(model, tok, convs, batch_size=1)["per_sample"]
    assert alone["tokens"] == per["tokens"] and alone["nll_sum"] == pytest.approx(per["nll_sum"], rel=1e-4)

    # each conversation alone (no padding), in the order given, through mlx_lm's own loss
    ds = ChatDataset(convs, tok, chat_key="messages", mask_prompt=True)
    for i in (0, 2, 7):
        toks, offset = ds.process(convs[i])
        loss, n = default_loss(model, mx.array([toks]), mx.array([[offset, len(toks)]]))
        assert per["tokens"][i] == n.item()
        assert per["nll_sum"][i] == pytest.approx(loss.item() * n.item(), rel=1e-4)


def test_reply_nll_with_the_head_on_reply_positions_only_equals_the_full_logits(tiny_model_dir):
    import mlx.core as mx

    from mlx_persona.eval.model import ModelSpec, load_model, reply_nll
    from mlx_persona.models.head import output_head

    model, _ = load_model(ModelSpec("base", tiny_model_dir), log=lambda m: None)
    head = output_head(model)
    assert head is not None
    batch = mx.array([[5, 9, 17, 23, 31, 8, 2, 0], [4, 6, 11, 0, 0, 0, 0, 0], [3, 3, 7, 12, 40, 41, 42, 43]])
    # a reply of 3, of 1 and of 6 tokens; an offset of 0 starts at the first target; an empty reply counts 0
    for spans in ([[4, 7], [2, 3], [2, 8]], [[0, 7], [3, 3], [1, 8]]):
        full = reply_nll(model, batch, mx.array(spans))
        only = reply_nll(model, batch, mx.array(spans), head)
        assert only[1].tolist() == full[1].tolist() == [min(n, 8) - max(o, 1) for o, n in spans]
        assert only[0].tolist() == pytest.approx(full[0].tolist(), rel=1e-5, abs=1e-5)
    assert full[0].tolist()[1] == 0.0


def test_the_embedder_is_injectable_and_its_absence_skips_only_what_needs_it(tiny_model_dir, tiny_run, tmp_path):
    from eval_helpers import hashed_embedder

    from mlx_persona.core.errors import PersonaError
    from mlx_persona.eval.evaluate import run_eval
    from mlx_persona.eval.models import ModelSpec

    specs = [ModelSpec("base", tiny_model_dir), ModelSpec("sft", tiny_model_dir, tiny_run / "sft")]
    test = tiny_run / "clean" / "test.jsonl"
    m = run_eval(
        test,
        tmp_path / "a",
        specs,
        [],
        max_tokens=2,
        perplexity=False,
        log=lambda _m: None,
        embedder=hashed_embedder(),
        twin="base",
        resamples=50,
        seed=3,
    )
    assert m["twin"] == "base" and (m["intervals"]["resamples"], m["intervals"]["seed"]) == (50, 3)
    assert m["style_classifier"]["held_out"]["balanced_accuracy"] >= 0.9  # the stand-in separates the helpers' speakers
    assert "similarity_mean" in m["intervals"]["deltas"]["base->sft"]["metrics"]

    def no_embedder(texts):
        raise PersonaError("the similarity filter needs sentence_transformers")

    m = run_eval(
        test, tmp_path / "b", specs[:1], [], max_tokens=2, perplexity=False, log=lambda _m: None, embedder=no_embedder
    )
    assert m["skipped"] == [
        {
            "item": "similarity, twin score and style-fidelity",
            "reason": "the similarity filter needs sentence_transformers",
        }
    ]
    assert "style_fidelity" not in m["models"]["base"] and "style_classifier" not in m
    assert set(m["intervals"]["models"]["base"]) >= {"median_words", "length_ratio", "exclamations_per_100_words"}
    with pytest.raises(PersonaError, match="--twin: one of base, sft, dpo"):
        run_eval(test, tmp_path / "c", [], [], twin="best")


def test_checks_off_gives_replies_and_similarity_only(tiny_model_dir, tiny_run, tmp_path):
    """What the twin pick asks for: no style classifier, no intervals, no leakage probes."""
    from eval_helpers import hashed_embedder

    from mlx_persona.eval.evaluate import run_eval
    from mlx_persona.eval.models import ModelSpec

    specs = [ModelSpec("sft", tiny_model_dir, tiny_run / "sft")]
    test = tiny_run / "clean" / "test.jsonl"
    common = dict(max_tokens=2, perplexity=False, log=lambda _m: None, embedder=hashed_embedder())
    light = run_eval(test, tmp_path / "light", specs, [], checks=False, **common)
    full = run_eval(test, tmp_path / "full", specs, [], **common)
    assert light["models"]["sft"]["similarity"] == full["models"]["sft"]["similarity"]  # same replies, same scores
    for key in ("intervals", "leakage", "style_classifier"):
        assert key in full and key not in light
    assert light["skipped"] == []  # nothing reported as missing: it was not asked for
    assert not (tmp_path / "light" / "generations" / "probes.jsonl").exists()
    assert (tmp_path / "full" / "generations" / "probes.jsonl").exists()


def test_a_dpo_stage_that_kept_step_0_is_the_sft_model_and_is_not_evaluated_twice(tiny_run, tmp_path):
    """Its fused model is the SFT twin (a fresh adapter changes nothing): the eval copies SFT's
    figures and says why, instead of generating and scoring the same model again."""
    run = tmp_path / "run"
    shutil.copytree(tiny_run, run, ignore=shutil.ignore_patterns("eval"))
    (run / "dpo" / "status.json").write_text(json.dumps({"state": "stopped_early", "best_iter": 0}))
    r = invoke(run, "--max-tokens", 8, "--batch-size", 4)
    assert r.exit_code == 0, r.output
    assert "is the sft model (its stage kept step 0)" in " ".join(r.output.split())  # rich wraps lines
    m = json.loads((run / "eval" / "metrics.json").read_text())
    sft, dpo = m["models"]["sft"], m["models"]["dpo"]
    assert dpo["same_as"] == "sft" and "step-0 adapter" in dpo["note"] and dpo["source"].endswith("dpo")
    for key in ("perplexity", "similarity", "style", "style_fidelity", "twin_score"):
        assert dpo[key] == sft[key], key
    assert not (run / "eval" / "generations" / "dpo.json").exists()  # no child ran for it
    rows = [json.loads(line) for line in (run / "eval" / "samples.jsonl").read_text().splitlines()]
    assert all(row["dpo"] == row["sft"] for row in rows)
    assert m["intervals"]["deltas"]["sft->dpo"]["metrics"]["similarity_mean"]["delta"] == 0
    # a DPO stage that moved (any other kept step) is evaluated as its own model
    (run / "dpo" / "status.json").write_text(json.dumps({"state": "done", "best_iter": 10}))
    r = invoke(run, "--max-tokens", 8, "--batch-size", 4)
    m = json.loads((run / "eval" / "metrics.json").read_text())
    assert "same_as" not in m["models"]["dpo"] and (run / "eval" / "generations" / "dpo.json").exists()


def test_several_sampled_replies_per_prompt(tiny_model_dir, tiny_run, tmp_path):
    """``samples 3`` at a temperature: three replies per test prompt, in the samples file and in
    every figure, with intervals over the 8 conversations; the same seed gives the same replies."""
    from eval_helpers import hashed_embedder

    from mlx_persona.core.errors import PersonaError
    from mlx_persona.eval.evaluate import run_eval
    from mlx_persona.eval.models import ModelSpec

    specs = [ModelSpec("base", tiny_model_dir), ModelSpec("sft", tiny_model_dir, tiny_run / "sft")]
    test = tiny_run / "clean" / "test.jsonl"
    common = dict(max_tokens=6, log=lambda _m: None, embedder=hashed_embedder(), resamples=50)
    m = run_eval(test, tmp_path / "a", specs, [], samples=3, temperature=1.0, **common)
    assert m["settings"]["samples"] == 3 and m["settings"]["temperature"] == 1.0
    assert (m["intervals"]["conversations"], m["intervals"]["replies_per_conversation"]) == (8, 3)
    for model in m["models"].values():
        assert model["similarity"]["n"] == 24 and model["style_fidelity"]["n"] == 24
    rows = [json.loads(line) for line in (tmp_path / "a" / "samples.jsonl").read_text().splitlines()]
    assert len(rows) == 24 and [r["sample"] for r in rows[:4]] == [0, 1, 2, 0]
    assert rows[6]["prompt"] == rows[8]["prompt"] == "what is the capital of France?" and rows[7]["real"] == "Paris."
    assert len({r["sft"] for r in rows}) > 8  # sampled: the replies to one prompt differ
    # perplexity is of the real replies: the same however many replies are generated
    greedy = run_eval(test, tmp_path / "b", specs, [], **common)
    assert m["models"]["sft"]["perplexity"]["perplexity"] == pytest.approx(
        greedy["models"]["sft"]["perplexity"]["perplexity"]
    )
    assert m["intervals"]["models"]["sft"]["perplexity"]["value"] == pytest.approx(
        greedy["models"]["sft"]["perplexity"]["perplexity"]
    )
    again = run_eval(test, tmp_path / "c", specs[1:], [], samples=3, temperature=1.0, **common)
    assert (tmp_path / "c" / "generations" / "sft.json").exists()
    assert (
        json.loads((tmp_path / "c" / "generations" / "sft.json").read_text())["replies"]
        == json.loads((tmp_path / "a" / "generations" / "sft.json").read_text())["replies"]
    )
    assert again["models"]["sft"]["similarity"] == m["models"]["sft"]["similarity"]
    with pytest.raises(PersonaError, match="samples 3 needs a temperature above 0"):
        run_eval(test, tmp_path / "d", specs, [], samples=3)
    r = invoke(tiny_run, "--samples", 2, "--max-tokens", 4, "--out", tmp_path / "e")
    assert r.exit_code == 1 and "needs a temperature above 0" in r.output and not (tmp_path / "e").exists()


def test_max_tokens_unset_is_sized_on_the_train_split(tiny_model_dir, tiny_run, tmp_path):
    """No ``max_tokens``: the replies get the room of :func:`room_for` on the train split beside
    the test split (never the held-out replies), and the settings record the number used."""
    from eval_helpers import hashed_embedder

    from mlx_persona.data.stats import room_for
    from mlx_persona.eval.evaluate import run_eval
    from mlx_persona.eval.models import ModelSpec

    test = tiny_run / "clean" / "test.jsonl"
    logs = []
    m = run_eval(
        test, tmp_path / "a", [ModelSpec("base", tiny_model_dir)], [], limit=2, perplexity=False,
        log=logs.append, embedder=hashed_embedder(), checks=False,
    )  # fmt: skip
    room, why = room_for(tiny_run / "clean" / "train.jsonl", tiny_model_dir)
    assert m["settings"]["max_tokens"] == room and f"eval: replies up to {room} tokens ({why})" in logs
    r = invoke(tiny_run, "--limit", 1, "--no-perplexity", "--out", tmp_path / "b")
    assert r.exit_code == 0, r.output
    assert json.loads((tmp_path / "b" / "metrics.json").read_text())["settings"]["max_tokens"] == room
