"""The two commands end to end on the tiny model: `mlx-persona pairs`, `mlx-persona dpo`, resume
rules, early stopping."""

from __future__ import annotations

import json

from click.testing import CliRunner
from dpo_helpers import FAST, write_pairs
from sft_helpers import write_chat_data

from mlx_persona.cli import cli
from mlx_persona.dpo import train as dpo
from mlx_persona.dpo.config import DPOConfig


def flat(text: str) -> str:
    """Console output with rich's line wrapping undone."""
    return " ".join(text.split())


def test_pairs_command(tiny_model_dir, tmp_path):
    data = write_chat_data(tmp_path / "data", n_train=4, n_valid=2)
    args = [
        "pairs",
        "--model",
        str(tiny_model_dir),
        "--data",
        str(data),
        "--out",
        str(tmp_path / "p"),
        "--max-tokens",
        "4",
        "--similarity-threshold",
        "1",
        "--no-trim-truncated",
        "--allow-truncated",  # a tiny random model never ends a reply within 4 tokens
    ]
    res = CliRunner().invoke(cli, args)
    assert res.exit_code == 0, res.output
    stats = json.loads((tmp_path / "p" / "stats.json").read_text())
    assert stats["prompts"] == 6 and stats["config"]["max_tokens"] == 4 and not stats["config"]["trim_truncated"]
    assert stats["config"]["allow_truncated"] and sum(stats["pairs"].values()) > 0


def test_dpo_command_runs_and_guards_resume(tiny_model_dir, tmp_path):
    pairs, out = write_pairs(tmp_path / "pairs"), tmp_path / "dpo"
    args = [
        "dpo",
        "--model",
        str(tiny_model_dir),
        "--pairs",
        str(pairs),
        "--out",
        str(out),
        "--num-layers",
        "-1",
        "--rank",
        "4",
        "--iters",
        "4",
        "--steps-per-eval",
        "2",
        "--learning-rate",
        "1e-3",
    ]
    runner = CliRunner()
    res = runner.invoke(cli, args)
    assert res.exit_code == 0, res.output
    assert json.loads((out / "status.json").read_text())["state"] == "done"
    assert json.loads((out / "dpo_config.json").read_text())["dpo"]["rank"] == 4
    res = runner.invoke(cli, args)  # same folder without --resume
    assert res.exit_code == 1 and "--resume" in flat(res.output)
    res = runner.invoke(cli, ["dpo", "--out", str(out), "--resume", "--beta", "0.5"])
    assert res.exit_code == 1 and "beta=0.1" in flat(res.output)
    res = runner.invoke(cli, ["dpo", "--out", str(out), "--resume"])
    assert res.exit_code == 0 and "already finished" in flat(res.output)


def test_dpo_command_missing_pairs_is_one_line(tmp_path):
    res = CliRunner().invoke(cli, ["dpo", "--model", "default", "--pairs", str(tmp_path), "--out", str(tmp_path / "o")])
    assert res.exit_code == 1 and "train.jsonl: missing" in flat(res.output)


def test_early_stopping(tiny_model_dir, tmp_path):
    cfg = DPOConfig.from_mapping(
        {**FAST, "iters": 12, "steps_per_eval": 2, "early_stopping_patience": 1, "early_stopping_min_delta": 100.0}
    )  # no validation can improve by 100
    summary = dpo.run_dpo(tiny_model_dir, write_pairs(tmp_path / "pairs"), tmp_path / "o", cfg, log=lambda m: None)
    assert summary["state"] == "stopped_early" and summary["iteration"] == 2 and summary["best_iter"] == 0
