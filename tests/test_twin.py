"""The run's twin: the better of SFT and DPO on the validation split, and every reader of it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mlx_persona.core.runs import run_twin
from mlx_persona.report.build import build_report
from mlx_persona.runner.twin import decide


def score(value: float) -> dict:
    return {"score": value, "similarity": 0.5, "length_distance": 0.1, "habit_distance": 0.2}


def test_dpo_is_the_twin_only_when_it_scores_higher():
    name, why = decide({"sft": score(0.30), "dpo": score(0.31)}, 12)
    assert name == "dpo" and "12 validation prompts" in why and "0.310" in why
    assert decide({"sft": score(0.30), "dpo": score(0.30)}, 12)[0] == "sft"  # a tie does not earn DPO its place
    assert decide({"sft": score(0.30), "dpo": score(-0.5)}, 12)[0] == "sft"
    assert decide({"sft": score(0.1)}, 3)[0] == "sft"  # a run without DPO
    with pytest.raises(ValueError):
        decide({}, 0)


def model_dir(path: Path) -> Path:
    path.mkdir(parents=True)
    (path / "config.json").write_text("{}")
    return path


def test_run_twin_reads_the_choice_and_falls_back_to_the_newest_model(tmp_path):
    run = tmp_path / "run"
    assert run_twin(run) is None
    model_dir(run / "sft_fused")
    assert run_twin(run) == ("sft", run / "sft_fused")
    model_dir(run / "dpo_fused")
    assert run_twin(run) == ("dpo", run / "dpo_fused")  # an old run: no twin stage, the last model
    assert run_twin(run, chosen_only=True) is None
    (run / "twin").mkdir()
    (run / "twin" / "twin.json").write_text(json.dumps({"twin": "sft", "folder": "sft_fused"}))
    assert run_twin(run) == ("sft", run / "sft_fused")
    assert run_twin(run, chosen_only=True) == ("sft", run / "sft_fused")
    (run / "twin" / "twin.json").write_text("{torn")  # a broken record never stops chat
    assert run_twin(run) == ("dpo", run / "dpo_fused")


def test_chat_and_report_use_the_chosen_twin(tmp_path):
    from mlx_persona.chat import resolve_target

    run = tmp_path / "run"
    model_dir(run / "sft_fused")
    model_dir(run / "dpo_fused")
    assert resolve_target(str(run)).model == run / "dpo_fused"
    (run / "twin").mkdir()
    record = {
        "twin": "sft",
        "folder": "sft_fused",
        "split": "valid",
        "prompts": 13,
        "scores": {"sft": score(0.4), "dpo": score(0.2)},
        "why": "dpo did not beat sft on 13 validation prompts",
    }
    (run / "twin" / "twin.json").write_text(json.dumps(record))
    assert resolve_target(str(run)).model == run / "sft_fused"
    md, _ = build_report(run, log=lambda m: None)
    text = Path(md).read_text()
    assert "The twin: sft (sft_fused/)" in text and "dpo did not beat sft on 13 validation prompts" in text
    assert "| dpo | 0.200 |" in text


def test_a_dpo_stage_that_kept_step_0_leaves_the_sft_twin_without_a_comparison(tiny_model_dir, tmp_path):
    """dpo_fused is then the SFT model: only SFT answers the validation prompts, and twin.json says why."""
    import shutil

    from eval_helpers import write_chat_split

    from mlx_persona.runner.twin import pick_twin

    run = tmp_path / "run"
    for folder in ("sft_fused", "dpo_fused"):
        shutil.copytree(tiny_model_dir, run / folder)
    write_chat_split(run / "clean" / "valid.jsonl", n=2)
    write_chat_split(run / "clean" / "train.jsonl", n=4)
    (run / "dpo").mkdir()
    (run / "dpo" / "status.json").write_text(json.dumps({"state": "stopped_early", "best_iter": 0}))

    def embed(texts):
        return [[1.0, float(len(t) % 7)] for t in texts]

    record = pick_twin(run, run / "twin", max_tokens=4, batch_size=2, log=lambda *_: None, embed=embed)
    assert record["twin"] == "sft" and list(record["scores"]) == ["sft"]
    assert "kept its step-0 adapter" in record["why"]
    assert not (run / "twin" / "generations" / "dpo.json").exists()


def test_the_pick_measures_sampled_replies_when_the_eval_does(tiny_model_dir, tmp_path):
    """``eval.samples`` 3 at a temperature: each model answers every validation prompt 3 times and
    the scores are over all the replies; twin.json counts prompts, not replies."""
    import shutil

    from eval_helpers import write_chat_split
    from tiny import build_tiny_llama

    from mlx_persona.runner.twin import pick_twin

    run = tmp_path / "run"
    shutil.copytree(tiny_model_dir, run / "sft_fused")
    build_tiny_llama(run / "dpo_fused", seed=1)
    write_chat_split(run / "clean" / "valid.jsonl", n=2)
    write_chat_split(run / "clean" / "train.jsonl", n=4)

    def embed(texts):
        return [[1.0, float(len(t) % 7)] for t in texts]

    common = dict(max_tokens=4, batch_size=2, log=lambda *_: None, embed=embed)
    record = pick_twin(run, run / "twin", samples=3, temperature=1.0, **common)
    rows = [json.loads(line) for line in (run / "twin" / "samples.jsonl").read_text().splitlines()]
    n = len((run / "clean" / "valid.jsonl").read_text().splitlines())
    assert (record["prompts"], record["replies_per_prompt"], len(rows)) == (n, 3, 3 * n)
    assert sorted(record["scores"]) == ["dpo", "sft"] and "3 replies per prompt sampled" in record["why"]
    greedy = pick_twin(run, run / "greedy", **common)
    assert (greedy["prompts"], greedy["replies_per_prompt"]) == (n, 1) and "sampled" not in greedy["why"]
