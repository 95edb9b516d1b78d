"""Training across ranks: two ranks on 127.0.0.1 (mlx.launch, ring backend) train the adapter
one process trains with the same global batch; DPO's reference pass and validation are split
between them and come out as one process's; a rank that dies stops the stage with one line
naming it, and --resume finishes to the adapter of a run that never stopped."""

from __future__ import annotations

import json
import random
import shutil
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner
from dpo_helpers import write_pairs

from mlx_persona.dpo.cli import dpo_command
from mlx_persona.sft.cli import sft_command

LAUNCHER = Path(sys.executable).parent / "mlx.launch"
pytestmark = pytest.mark.skipif(not LAUNCHER.exists(), reason="mlx.launch not installed")
TWO = ["--hosts", "127.0.0.1,127.0.0.1", "--backend", "ring"]
WORDS = "yeah ship it tests pass merge after lunch the cache is wrong not query check ttl no".split()


def equal_length_chats(folder: Path, model_dir: Path, n: int = 16) -> Path:
    """Chat records that all tokenize to the same length. mlx_lm's SFT loss is a mean over a
    rank's tokens, so two ranks equal one process exactly when they score as many tokens."""
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(model_dir))
    rng = random.Random(0)
    by_len: dict[int, list] = {}
    while max((len(v) for v in by_len.values()), default=0) < n + 4:
        msgs = [
            {"role": "user", "content": " ".join(rng.choice(WORDS) for _ in range(3))},
            {"role": "assistant", "content": " ".join(rng.choice(WORDS) for _ in range(6))},
        ]
        by_len.setdefault(len(tok.apply_chat_template(msgs, return_dict=False)), []).append(msgs)
    recs = max(by_len.values(), key=len)
    folder.mkdir(parents=True, exist_ok=True)
    for split, rows in (("train", recs[:n]), ("valid", recs[n : n + 4])):
        (folder / f"{split}.jsonl").write_text("".join(json.dumps({"messages": m}) + "\n" for m in rows))
    return folder


def adapter(out: Path) -> dict:
    import mlx.core as mx

    return mx.load(str(out / "last" / "adapters.safetensors"))


def max_diff(a: dict, b: dict) -> float:
    import mlx.core as mx

    assert a.keys() == b.keys()
    return max(mx.abs(a[k] - b[k]).max().item() for k in a)


def train_events(out: Path) -> list[dict]:
    events = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    return [e for e in events if "train_loss" in e]


def run(command, args: list[str], env: dict | None = None):
    res = CliRunner().invoke(command, args, env=env)
    return res


SFT = ["--batch-size", "4", "--iters", "5", "--num-layers", "2", "--rank", "4", "--learning-rate", "1e-3"]
SFT += ["--steps-per-eval", "100", "--val-batches", "1", "--save-every", "2", "--no-mask-prompt"]


def test_sft_two_ranks_equal_one_process(tiny_model_dir, tmp_path):
    data = equal_length_chats(tmp_path / "data", tiny_model_dir)
    base = ["--model", str(tiny_model_dir), "--data", str(data), *SFT]
    one = run(sft_command, [*base, "--out", str(tmp_path / "one")])
    assert one.exit_code == 0, one.output
    two = run(sft_command, [*base, "--out", str(tmp_path / "two"), *TWO])
    assert two.exit_code == 0, two.output + (tmp_path / "two" / "sft.log").read_text()
    assert max_diff(adapter(tmp_path / "one"), adapter(tmp_path / "two")) < 1e-4
    assert not (tmp_path / "two" / "ranks" / "1" / "last").samefile(tmp_path / "two" / "last")
    assert len((tmp_path / "two" / "metrics.jsonl").read_text().splitlines()) == len(
        (tmp_path / "one" / "metrics.jsonl").read_text().splitlines()
    )
    assert {e["ranks"] for e in train_events(tmp_path / "two")} == {2}
    assert {e["ranks"] for e in train_events(tmp_path / "one")} == {1}


# lr 1e-3: at 1e-2 Adam's first steps (m/√v ≈ sign g) turn the last-bit differences of a mean
# over 4 pairs vs two means over 2 into lr-sized ones on near-zero gradients, and the runs drift
DPO = ["--batch-size", "4", "--iters", "5", "--num-layers", "2", "--rank", "4", "--learning-rate", "1e-3"]
DPO += ["--steps-per-eval", "100", "--val-batches", "1", "--save-every", "2"]


@pytest.fixture
def pairs(tmp_path) -> Path:
    return write_pairs(tmp_path / "pairs", n_train=16, n_valid=8)


def reference_rows(out: Path) -> dict[str, dict]:
    return json.loads((out / "reference.json").read_text())["splits"]


def max_row_diff(a: dict, b: dict) -> float:
    assert a.keys() == b.keys() and all(a[s].keys() == b[s].keys() for s in a)
    return max(abs(x - y) for s in a for i in a[s] for x, y in zip(a[s][i], b[s][i]))


def scored(out: Path, rank: int) -> int:
    """Reference pairs the rank scored itself (its status.json; rank r > 0 in ranks/<r>)."""
    folder = out if rank == 0 else out / "ranks" / str(rank)
    return json.loads((folder / "status.json").read_text())["reference_pairs_scored"]


VAL_FIGURES = ("val_loss", "val_reward_chosen", "val_reward_rejected", "val_margin", "val_accuracy", "val_chosen_nll")


def validations(out: Path) -> list[dict]:
    events = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    return [{k: e[k] for k in ("iter", *VAL_FIGURES)} for e in events if "val_loss" in e]


def test_dpo_two_ranks_equal_one_process(tiny_model_dir, pairs, tmp_path):
    """Same adapter; each rank scores half the reference pairs (2 per batch: 8 + 4 batches) and
    the cache is one process's; each evaluates one of the two validation batches, and the
    figures are one process's."""
    base = ["--model", str(tiny_model_dir), "--pairs", str(pairs), *DPO, "--reference-batch-size", "2"]
    base += ["--val-batches", "-1"]
    one = run(dpo_command, [*base, "--out", str(tmp_path / "one")])
    assert one.exit_code == 0, one.output
    two = run(dpo_command, [*base, "--out", str(tmp_path / "two"), *TWO])
    assert two.exit_code == 0, two.output + (tmp_path / "two" / "dpo.log").read_text()
    diff = max_diff(adapter(tmp_path / "one"), adapter(tmp_path / "two"))
    assert 0 < max(abs(v).max().item() for v in adapter(tmp_path / "one").values())  # it trained
    assert diff < 1e-4
    assert scored(tmp_path / "one", 0) == 24
    assert scored(tmp_path / "two", 0) == scored(tmp_path / "two", 1) == 12
    assert max_row_diff(reference_rows(tmp_path / "one"), reference_rows(tmp_path / "two")) < 1e-4
    assert not (tmp_path / "two" / "ranks" / "1" / "reference.json").exists()  # only rank 0 writes the cache
    assert {e["ranks"] for e in train_events(tmp_path / "two")} == {2}
    a, b = validations(tmp_path / "one"), validations(tmp_path / "two")
    assert [e["iter"] for e in a] == [e["iter"] for e in b] == [0, 5]
    for ea, eb in zip(a, b):
        for k in VAL_FIGURES:
            assert eb[k] == pytest.approx(ea[k], rel=1e-4, abs=1e-5), (k, ea, eb)
    assert a[-1]["val_margin"] != 0  # the figures moved: the check compares trained models


def test_two_ranks_reuse_a_partial_reference_cache(tiny_model_dir, pairs, tmp_path):
    """A cache a killed run left behind: the two ranks score only the missing pairs, split
    between them, and the cache they end with is one process's."""
    base = ["--model", str(tiny_model_dir), "--pairs", str(pairs), *DPO, "--reference-batch-size", "2"]
    base += ["--iters", "1"]
    one = run(dpo_command, [*base, "--out", str(tmp_path / "one")])
    assert one.exit_code == 0, one.output
    cache = json.loads((tmp_path / "one" / "reference.json").read_text())
    for split, drop in (("train", range(0, 16, 2)), ("valid", range(4))):
        for i in drop:
            del cache["splits"][split][str(i)]
    (tmp_path / "two").mkdir()
    (tmp_path / "two" / "reference.json").write_text(json.dumps(cache))
    two = run(dpo_command, [*base, "--out", str(tmp_path / "two"), *TWO])
    assert two.exit_code == 0, two.output + (tmp_path / "two" / "dpo.log").read_text()
    mine = [scored(tmp_path / "two", r) for r in (0, 1)]
    assert sum(mine) == 12 and min(mine) > 0, mine  # 8 + 4 missing, in batches of at most 2
    assert max_row_diff(reference_rows(tmp_path / "one"), reference_rows(tmp_path / "two")) < 1e-4


def test_a_rank_that_dies_is_named_and_resume_finishes_the_run(tiny_model_dir, pairs, tmp_path):
    base = ["--model", str(tiny_model_dir), "--pairs", str(pairs), *DPO, *TWO]
    whole = run(dpo_command, [*base, "--out", str(tmp_path / "whole")])
    assert whole.exit_code == 0, whole.output
    out = tmp_path / "cut"
    env = {"MLX_PERSONA_DPO_KILL_AFTER": "3", "MLX_PERSONA_KILL_RANK": "1"}
    cut = run(dpo_command, [*base, "--out", str(out)], env=env)
    assert cut.exit_code != 0
    line = str(cut.exception if not isinstance(cut.exception, SystemExit) else "") + cut.output
    assert "rank 1 of 2" in line and "died" in line, line
    assert "Traceback" not in cut.output
    resumed = run(dpo_command, ["--out", str(out), "--resume", *TWO])
    assert resumed.exit_code == 0, resumed.output + (out / "dpo.log").read_text()
    assert max_diff(adapter(tmp_path / "whole"), adapter(out)) < 1e-6
    shutil.rmtree(out / "ranks")


def test_the_live_view_shows_the_ranks_the_groups_pace_and_memory_per_rank(tmp_path):
    from mlx_persona.runner.cli import RunView
    from mlx_persona.train.launch import speed_text

    event = {"iter": 4, "train_loss": 0.5, "sec_per_step": 0.8, "ranks": 2, "peak_memory_gb": 0.184, "elapsed": 4.0}
    assert speed_text(event) == "2 ranks · 1.25 steps/s · 0.18 GB per rank"
    assert speed_text({**event, "ranks": 1}) == "1.25 steps/s · 0.18 GB peak"
    assert speed_text({"iter": 1, "train_loss": 1.0}) == ""  # an older metrics file: nothing to show
    folder = tmp_path / "run" / "dpo"
    folder.mkdir(parents=True)
    (folder / "status.json").write_text(json.dumps({"state": "running", "iters": 10}))
    (folder / "metrics.jsonl").write_text(json.dumps(event) + "\n")
    line = RunView(tmp_path / "run", "x")._progress("dpo")
    assert line.startswith("step 4/10 · loss 0.500") and line.endswith("2 ranks · 1.25 steps/s · 0.18 GB per rank")


def test_when_both_ranks_are_silent_the_launcher_log_names_the_one_that_died_first(tmp_path):
    """The rank the launcher stopped can be gone before it writes 'terminated' (it was waiting on
    the dead one); the order in which mlx.launch saw them exit decides, not the rank number."""
    from mlx_persona.train.launch import rank_failure
    from mlx_persona.train.ranks import rank_status

    for r in (0, 1):
        path = rank_status(tmp_path, r)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps({"state": "running", "iteration": 3}))
    log = (
        "RuntimeError: [ring] connection to a peer was lost\n"
        "[WARN] Node with rank 1 exited with code -9\n"
        "[WARN] Node with rank 0 exited with code -15\n"
    )
    assert "rank 1 of 2 died" in rank_failure(tmp_path, 2, "dpo", log)
    assert "rank 0 of 2 died" in rank_failure(tmp_path, 2, "dpo", log.replace("rank 1 exited", "rank 9 exited"))
    rank_status(tmp_path, 0).write_text(json.dumps({"state": "terminated"}))
    assert "rank 1 of 2 died" in rank_failure(tmp_path, 2, "dpo", "")  # the status alone says it
