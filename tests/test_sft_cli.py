"""`mlx-persona sft` from the command line: bad input is one line, exit 1, and changes nothing."""

from __future__ import annotations

import hashlib
import json

import pytest
from click.testing import CliRunner
from sft_helpers import write_chat_data

from mlx_persona.cli import cli

SMALL = [
    "--iters",
    "6",
    "--batch-size",
    "2",
    "--steps-per-eval",
    "3",
    "--steps-per-report",
    "2",
    "--save-every",
    "2",
    "--num-layers",
    "-1",
    "--learning-rate",
    "1e-3",
]


def sft(*args):
    return CliRunner().invoke(cli, ["sft", *map(str, args)])


def snapshot(folder):
    return {
        p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def one_line_error(result, *needles):
    assert result.exit_code == 1, result.output
    lines = [line for line in result.output.splitlines() if line.startswith("Error:")]
    assert len(lines) == 1, result.output
    for n in needles:
        assert n in lines[0], lines[0]


@pytest.fixture(scope="module")
def run(tiny_model_dir, tmp_path_factory):
    root = tmp_path_factory.mktemp("cli")
    data = write_chat_data(root / "data")
    out = root / "out"
    result = sft("--model", tiny_model_dir, "--data", data, "--out", out, *SMALL)
    assert result.exit_code == 0, result.output
    return tiny_model_dir, data, out


def test_cli_run_and_resume_of_a_finished_run(run):
    _, _, out = run
    status = json.loads((out / "status.json").read_text())
    assert status["state"] == "done" and status["iteration"] == 6
    assert (out / "adapters.safetensors").is_file() and (out / "last/adapter_config.json").is_file()
    result = sft("--out", out, "--resume")
    assert result.exit_code == 0 and "already finished" in result.output


def test_bad_input_changes_nothing(run, tmp_path):
    model, data, out = run
    before = snapshot(out)
    one_line_error(
        sft("--out", out, "--resume", "--learning-rate", "abc"), "learning_rate", "expected a number", "'abc'"
    )
    one_line_error(sft("--model", model, "--data", data, "--out", out), "already holds an SFT run", "--resume")
    one_line_error(sft("--out", out, "--resume", "--rank", "16"), "rank=8", "now 16")
    other = write_chat_data(tmp_path / "other", splits=("train",))
    one_line_error(
        sft("--model", model, "--data", other, "--out", tmp_path / "new"), "valid.jsonl", "missing valid split"
    )
    assert not (tmp_path / "new").exists()
    (other / "valid.jsonl").write_text('{"messages": []}\n{"messages": [\n')
    one_line_error(sft("--model", model, "--data", other, "--out", tmp_path / "new"), "valid.jsonl:2:", "not JSON")
    cfg = tmp_path / "sft.yaml"
    cfg.write_text("sft:\n  lerning_rate: 1e-4\n")
    one_line_error(
        sft("--model", model, "--data", data, "--out", tmp_path / "new", "--config", cfg),
        "unknown setting 'lerning_rate'",
        "did you mean 'learning_rate'",
    )
    one_line_error(
        sft(
            "--model",
            model,
            "--data",
            data,
            "--out",
            tmp_path / "new",
            "--save-every",
            "3",
            "--grad-accumulation-steps",
            "2",
        ),
        "save_every",
        "multiple of grad_accumulation_steps",
    )
    one_line_error(
        sft("--model", model, "--data", data, "--out", tmp_path / "new", "--fine-tune-type", "qlora"),
        "fine_tune_type",
        "lora, dora, full",
    )
    assert snapshot(out) == before


def test_child_errors_come_back_as_one_line(run, tmp_path):
    model, data, _ = run
    one_line_error(
        sft("--model", model, "--data", data, "--out", tmp_path / "x", "--num-layers", "40", "--iters", "2"),
        "num_layers",
        "has 2 layers",
    )


def test_nothing_left_to_score_is_one_line(run, tmp_path):
    model, data, _ = run
    # the prompt alone is longer than 8 tokens: with mask_prompt every target is masked away
    one_line_error(
        sft(
            "--model",
            model,
            "--data",
            data,
            "--out",
            tmp_path / "x",
            "--mask-prompt",
            "--max-seq-length",
            "8",
            "--num-layers",
            "-1",
            "--iters",
            "2",
        ),
        "validation loss is nan at step 0",
        "mask_prompt",
    )
