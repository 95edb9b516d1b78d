"""The overnight runner on the tiny model: stages in order, resume, kill -9, locks."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from mlx_persona.cli import cli
from mlx_persona.core.blas import fast_blas_env
from mlx_persona.core.errors import PersonaError
from mlx_persona.core.runs import RunLock

SAMPLE = Path(__file__).parent.parent / "data" / "sample"


def tiny_recipe(
    tmp_path: Path, model_dir: Path, iters: int = 8, stages=("clean", "sft", "sft_fuse"), extra: str = ""
) -> Path:
    text = f"""name: tiny
persona: {{name: Sam Okafor, aliases: [Sam, SAM], system: "You are Sam."}}
model: {model_dir}
data:
  - {{path: {SAMPLE / "whatsapp_android.txt"}}}
  - {{path: {SAMPLE / "script.csv"}}}
stages: [{", ".join(stages)}]
clean: {{max_tokens: 256}}
sft:
  rank: 4
  num_layers: -1
  learning_rate: 1.0e-3
  batch_size: 2
  max_seq_length: 256
  iters: {iters}
  steps_per_report: 1
  steps_per_eval: 4
  val_batches: 2
  save_every: 2
{extra}"""
    p = tmp_path / "tiny.yaml"
    p.write_text(text)
    return p


def run(args, **kw):
    return CliRunner().invoke(cli, ["run", *args, "--plain"], catch_exceptions=False, **kw)


def manifest(run_dir: Path) -> dict:
    return json.loads((run_dir / "manifest.json").read_text())


def test_runs_stages_in_order_then_resume_skips(tiny_model_dir, tmp_path):
    recipe, runs = tiny_recipe(tmp_path, tiny_model_dir), tmp_path / "runs"
    res = run([str(recipe), "--runs", str(runs)])
    assert res.exit_code == 0, res.output
    m = manifest(runs / "tiny")
    assert [m["stages"][s]["status"] for s in ("clean", "sft", "sft_fuse")] == ["done"] * 3
    assert m["model"] == str(tiny_model_dir)
    assert (runs / "tiny" / "sft_fused" / "config.json").exists() and (runs / "tiny" / "recipe.yaml").exists()
    assert "twin:" in res.output

    again = run([str(recipe), "--runs", str(runs)])
    assert again.exit_code == 1 and "--resume" in again.output  # never silently overwrites a run

    res = run([str(recipe), "--runs", str(runs), "--resume"])
    assert res.exit_code == 0 and res.output.count("unchanged, skipped") == 3

    # a changed sft setting re-runs sft and what depends on it, not clean
    before = m["stages"]["clean"]["finished"]
    res = run([str(recipe), "--runs", str(runs), "--resume", "--set", "sft.rank=2"])
    assert res.exit_code == 0, res.output
    m2 = manifest(runs / "tiny")
    assert m2["stages"]["clean"]["finished"] == before
    assert m2["stages"]["sft"]["finished"] > m["stages"]["sft"]["finished"]
    assert m2["stages"]["sft_fuse"]["output"] != m["stages"]["sft_fuse"]["output"]
    assert json.loads((runs / "tiny" / "sft" / "adapter_config.json").read_text())["lora_parameters"]["rank"] == 2


def test_until_and_from(tiny_model_dir, tmp_path):
    recipe, runs = tiny_recipe(tmp_path, tiny_model_dir, iters=2), tmp_path / "runs"
    assert run([str(recipe), "--runs", str(runs), "--until", "clean"]).exit_code == 0
    m = manifest(runs / "tiny")
    assert m["stages"]["clean"]["status"] == "done"
    assert m["stages"].get("sft", {}).get("status") != "done"
    res = run([str(recipe), "--runs", str(runs), "--from", "sft", "--until", "sft"])
    assert res.exit_code == 0, res.output
    assert manifest(runs / "tiny")["stages"]["sft"]["status"] == "done"


KILL_EXTRA = """pairs: {max_tokens: 8, batch_size: 4, max_prompts: 6, allow_truncated: true, similarity_threshold: 1.0}
dpo: {rank: 4, num_layers: -1, batch_size: 2, iters: 8, learning_rate: 1.0e-3, max_seq_length: 256,
      steps_per_report: 1, steps_per_eval: 4, save_every: 2}
"""


@pytest.mark.parametrize(
    "stage,stages",
    [
        ("sft", ("clean", "sft")),
        ("dpo", ("clean", "sft", "sft_fuse", "pairs", "dpo")),
    ],
)
def test_kill_9_mid_stage_then_resume_matches_uninterrupted(tiny_model_dir, tmp_path, stage, stages):
    # long enough that the kill, right after the first checkpoint, lands mid-stage on a fast machine
    iters = 60 if stage == "sft" else 40
    sft_iters = 60 if stage == "sft" else 4
    straight = tmp_path / "straight"
    straight.mkdir()
    extra = KILL_EXTRA.replace("iters: 8", f"iters: {iters}")
    recipe = tiny_recipe(straight, tiny_model_dir, iters=sft_iters, stages=stages, extra=extra)
    assert run([str(recipe), "--runs", str(straight / "runs")]).exit_code == 0
    want = json.loads((straight / "runs" / "tiny" / stage / "status.json").read_text())

    killed = tmp_path / "killed"
    killed.mkdir()
    recipe = tiny_recipe(killed, tiny_model_dir, iters=sft_iters, stages=stages, extra=extra)
    run_dir = killed / "runs" / "tiny"
    cmd = [sys.executable, "-m", "mlx_persona.cli", "run", str(recipe), "--runs", str(killed / "runs"), "--plain"]
    proc = subprocess.Popen(
        cmd, env=fast_blas_env(), start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    deadline = time.time() + 600
    while time.time() < deadline:
        if (run_dir / stage / "checkpoint.json").exists():
            break
        time.sleep(0.02)
    else:
        os.killpg(proc.pid, signal.SIGKILL)
        pytest.fail(f"no {stage} checkpoint appeared")
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    m = manifest(run_dir)
    assert m["stages"][stage]["status"] == "running"  # what a crash leaves
    done_before = {s for s in stages if m["stages"].get(s, {}).get("status") == "done"}

    res = run([str(recipe), "--runs", str(killed / "runs"), "--resume"])
    assert res.exit_code == 0, res.output
    for s in done_before:
        assert f"{s}: unchanged, skipped" in res.output  # finished stages are not redone
    got = json.loads((run_dir / stage / "status.json").read_text())
    assert got["iteration"] == want["iteration"] == iters
    assert got["best_val_loss"] == pytest.approx(want["best_val_loss"], rel=1e-4, abs=1e-5)
    events = [json.loads(line) for line in (run_dir / stage / "metrics.jsonl").read_text().splitlines()]
    train_iters = [e["iter"] for e in events if "val_loss" not in e and "iter" in e]
    assert (
        train_iters == sorted(set(train_iters)) and train_iters[-1] == iters
    )  # no step twice, none missing at the end


def test_lock_refuses_a_live_run_and_clears_a_stale_one(tmp_path):
    run_dir = tmp_path / "r"
    run_dir.mkdir()
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        (run_dir / ".lock").write_text(f"{sleeper.pid}\n")
        with pytest.raises(PersonaError, match="in use by another run"):
            RunLock(run_dir).acquire()
    finally:
        sleeper.kill()
        sleeper.wait()
    lock = RunLock(run_dir).acquire()  # the owner is gone: stale
    assert lock.stale_cleared and (run_dir / ".lock").read_text().strip() == str(os.getpid())
    lock.release()
    assert not (run_dir / ".lock").exists()


def test_model_that_does_not_fit_is_refused_before_any_stage(tiny_model_dir, tmp_path):
    recipe = tiny_recipe(tmp_path, tiny_model_dir, extra="budget: {memory_gb: 0.0001}\n")
    res = run([str(recipe), "--runs", str(tmp_path / "runs")])
    assert res.exit_code == 1 and "Traceback" not in res.output
    assert not (tmp_path / "runs" / "tiny").exists()


ALL_STAGES = ("clean", "sft", "sft_fuse", "pairs", "dpo", "dpo_fuse", "twin", "eval", "report")
FULL_EXTRA = """fuse: {gguf: true}
pairs: {max_tokens: 8, batch_size: 4, max_prompts: 6, allow_truncated: true, similarity_threshold: 1.0}
dpo: {rank: 4, num_layers: -1, batch_size: 2, iters: 4, learning_rate: 1.0e-3, max_seq_length: 256,
      steps_per_report: 1, steps_per_eval: 2, save_every: 2}
eval: {limit: 4, max_tokens: 8, batch_size: 4}
"""


def test_whole_pipeline_on_the_tiny_model(tiny_model_dir, tmp_path):
    recipe = tiny_recipe(tmp_path, tiny_model_dir, iters=4, stages=ALL_STAGES, extra=FULL_EXTRA)
    runs = tmp_path / "runs"
    res = run([str(recipe), "--runs", str(runs)])
    assert res.exit_code == 0, res.output
    run_dir = runs / "tiny"
    m = manifest(run_dir)
    assert {s: m["stages"][s]["status"] for s in ALL_STAGES} == {s: "done" for s in ALL_STAGES}
    assert (run_dir / "dpo_fused" / "config.json").exists()
    assert (run_dir / "dpo_fused" / "ggml-model-f16.gguf").exists()  # fuse.gguf exports the final twin
    assert not (run_dir / "sft_fused" / "ggml-model-f16.gguf").exists()
    assert (run_dir / "pairs" / "train.jsonl").read_text().strip()
    ev = json.loads((run_dir / "eval" / "metrics.json").read_text())
    assert set(ev["models"]) >= {"base", "sft", "dpo"}
    html = (run_dir / "report.html").read_text()
    assert "data:image/png;base64," in html
    chosen = json.loads((run_dir / "twin" / "twin.json").read_text())  # the better of SFT and DPO on valid
    assert set(chosen["scores"]) == {"sft", "dpo"} and chosen["split"] == "valid"
    assert chosen["twin"] == ("dpo" if chosen["scores"]["dpo"]["score"] > chosen["scores"]["sft"]["score"] else "sft")
    twin_dir = run_dir / chosen["folder"]
    assert ev["twin"] == chosen["twin"]
    assert "twin: " + str(twin_dir) in res.output
    assert f"The twin: {chosen['twin']}" in (run_dir / "report.md").read_text()

    from mlx_persona.chat import resolve_target

    assert resolve_target(str(run_dir)).model == twin_dir


def test_sweep_runs_each_value_and_compares(tiny_model_dir, tmp_path):
    recipe = tiny_recipe(tmp_path, tiny_model_dir, iters=2, stages=("clean", "sft"))
    runs = tmp_path / "runs"
    res = run([str(recipe), "--runs", str(runs), "--sweep", "sft.fine_tune_type=lora,dora"])
    assert res.exit_code == 0, res.output
    for v in ("lora", "dora"):
        cfg = json.loads((runs / f"tiny-{v}" / "sft" / "adapter_config.json").read_text())
        assert cfg["fine_tune_type"] == v
    table = (runs / "tiny-compare.md").read_text()
    assert "| lora |" in table and "| dora |" in table and "sft.fine_tune_type" in table
    assert (runs / "tiny-compare.html").read_text().startswith("<!doctype html>")

    bad = run([str(recipe), "--runs", str(runs), "--sweep", "sft.fine_tune_type=lora"])
    assert bad.exit_code == 1 and "at least two values" in bad.output
