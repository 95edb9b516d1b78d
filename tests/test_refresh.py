"""``mlx-persona refresh``: the sample persona's chat in two halves by date; the refreshed twin
knows the second half better than the first twin, and the first run is left as it was."""

import hashlib
import json
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from mlx_persona.cli import cli
from mlx_persona.runner.refresh import build_data

SAMPLE = Path(__file__).resolve().parent.parent / "data" / "sample" / "whatsapp_android.txt"


def split_by_date(folder: Path) -> tuple[Path, Path]:
    """The WhatsApp export's messages before and after its middle day (whole days each side)."""
    lines = SAMPLE.read_text(encoding="utf-8").splitlines()
    head, body = lines[0], lines[1:]
    days = sorted({ln[:10] for ln in body}, key=lambda d: (d[6:], d[3:5], d[:2]))
    cut = days[len(days) // 2]
    first = [ln for ln in body if (ln[6:10], ln[3:5], ln[:2]) < (cut[6:], cut[3:5], cut[:2])]
    second = [ln for ln in body if ln not in set(first)]
    a, b = folder / "first.txt", folder / "second.txt"
    a.write_text("\n".join([head, *first]) + "\n", encoding="utf-8")
    b.write_text("\n".join([head, *second]) + "\n", encoding="utf-8")
    return a, b


def files_of(run: Path) -> dict:
    return {
        str(p.relative_to(run)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(run.rglob("*"))
        if p.is_file() and not p.relative_to(run).parts[0].startswith("v2")
    }


def write_recipe(path: Path, model: Path, data: Path) -> Path:
    recipe = {
        "name": "sam",
        "persona": {"name": "Sam Okafor", "aliases": ["Sam"]},
        "model": str(model),
        "data": [{"path": str(data)}],
        "stages": ["clean", "sft", "sft_fuse", "eval", "report"],
        "clean": {"context_turns": 4, "max_tokens": 256},
        "sft": {
            "rank": 8,
            "num_layers": -1,
            "batch_size": 4,
            "iters": 80,
            "learning_rate": 1e-3,
            "mask_prompt": True,
            "max_seq_length": 256,
            "steps_per_eval": 40,
            "steps_per_report": 20,
            "save_every": 40,
            "val_batches": -1,
        },
        "eval": {"max_tokens": 8, "batch_size": 8},
    }
    path.write_text(yaml.safe_dump(recipe))
    return path


@pytest.mark.timeout(900)
def test_refresh_learns_the_second_half_and_leaves_the_first_run(tiny_model_dir, tmp_path):
    first, second = split_by_date(tmp_path)
    recipe = write_recipe(tmp_path / "sam.yaml", tiny_model_dir, first)
    res = CliRunner().invoke(cli, ["run", str(recipe), "--plain", "--runs", str(tmp_path / "runs")])
    assert res.exit_code == 0, res.output
    run = tmp_path / "runs" / "sam"
    before = files_of(run)

    res = CliRunner().invoke(cli, ["refresh", str(run), str(second), "--replay", "0.25"])
    assert res.exit_code == 0, res.output
    assert "not in the run's exports" in res.output
    v2 = run / "v2"
    assert files_of(run) == before  # the first run is untouched

    info = json.loads((v2 / "refresh.json").read_text())
    assert info["from_twin"]["folder"] == str(run / "sft_fused") and info["messages"]["new"] > 0
    assert info["replayed"] > 0 and info["new_samples"]["train"] > 0 and info["new_samples"]["test"] > 0
    # held out: the second half's test split, old twin (v2's base) against the refreshed one
    metrics = json.loads((v2 / "eval" / "metrics.json").read_text())
    old = metrics["models"]["base"]["perplexity"]["perplexity"]
    new = metrics["models"]["sft"]["perplexity"]["perplexity"]
    assert new < old, (new, old)
    recipe2 = yaml.safe_load((v2 / "recipe.yaml").read_text())
    assert recipe2["model"] == str(run / "sft_fused") and len(recipe2["data"]) == 2
    assert "## Refresh" in (v2 / "report.md").read_text() and "## Refresh" not in (run / "report.md").read_text()


def test_build_data_keeps_only_new_samples_and_replays_a_share(tmp_path):
    def write(folder, split, pairs):
        folder.mkdir(parents=True, exist_ok=True)
        rows = [{"messages": [{"role": "user", "content": q}, {"role": "assistant", "content": a}]} for q, a in pairs]
        (folder / f"{split}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))

    old, new = tmp_path / "old", tmp_path / "new"
    write(old, "train", [(f"q{i}", f"a{i}") for i in range(20)])
    write(old, "valid", [("vq", "va")])
    write(new, "train", [("q1", "a1"), ("q2", "a2")] + [(f"n{i}", f"b{i}") for i in range(6)])
    write(new, "test", [("tq", "ta")])
    (new / "rejects.jsonl").write_text("")
    (new / "stats.json").write_text("{}")
    counts = build_data(old, new, tmp_path / "out", replay=0.25, seed=0)
    assert counts == {"new_samples": {"train": 6, "valid": 1, "test": 1}, "replayed": 2, "already_in_run": 2}
    train = [
        json.loads(ln)["messages"][0]["content"] for ln in (tmp_path / "out" / "train.jsonl").read_text().splitlines()
    ]
    assert len(train) == 8 and sum(q.startswith("n") for q in train) == 6  # 2 of 8 replayed: the share
    assert (tmp_path / "out" / "valid.jsonl").read_text().count("vq") == 1  # no new valid: the old one
    assert json.loads((tmp_path / "out" / "stats.json").read_text())["refresh"] == counts


def test_refresh_refuses_what_is_not_a_finished_run(tmp_path):
    res = CliRunner().invoke(cli, ["refresh", str(tmp_path), str(SAMPLE)])
    assert res.exit_code == 1 and "not a run folder" in res.output
