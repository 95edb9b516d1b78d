"""The child protocol: a child records its one-line error in status.json and exits 1; the parent
reads it from there (not from the log), and quotes the log only when the child left no word."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from mlx_persona.core import layout
from mlx_persona.core.child import child_error, child_main, record_failure, run_child
from mlx_persona.core.errors import PersonaError
from mlx_persona.train import launch as launch_mod


def test_child_main_records_the_error_keeps_the_state_and_exits_1(tmp_path, capsys):
    status = tmp_path / layout.STATUS
    status.write_text(json.dumps({"state": "running", "iteration": 7, "iters": 20}))

    def work():
        raise PersonaError("sft.num_layers: the model has 2 layers, asked for 40")

    with pytest.raises(SystemExit) as e:
        child_main(work, status)
    assert e.value.code == 1
    s = json.loads(status.read_text())
    assert s["state"] == "failed" and s["error"].startswith("sft.num_layers") and s["iteration"] == 7
    assert child_error(status, s["pid"]) == s["error"]
    assert child_error(status, s["pid"] + 1) is None  # an older child's failure is not this one's
    assert capsys.readouterr().err.strip().splitlines() == [f"error: {s['error']}"]


def test_child_main_lets_our_bugs_through(tmp_path):
    with pytest.raises(ZeroDivisionError):
        child_main(lambda: 1 / 0, tmp_path / layout.STATUS)
    assert not (tmp_path / layout.STATUS).exists()


def test_a_real_child_writes_its_status(tmp_path):
    """The fuse child on an adapter folder without weights: exit 1, the reason in --status."""
    (tmp_path / "adapter").mkdir()
    status = tmp_path / layout.STATUS
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "mlx_persona.models.fuse",
            "--model",
            str(tmp_path),
            "--adapter-path",
            str(tmp_path / "adapter"),
            "--out",
            str(tmp_path / "fused"),
            "--status",
            str(status),
        ],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 1, proc.stderr
    s = json.loads(status.read_text())
    assert s["state"] == "failed" and "no adapters.safetensors" in s["error"]


def test_run_child_returns_the_error_this_child_recorded(tmp_path):
    """run_child: the same fuse child through the parents' helper; an older failure in the status
    file is cleared first, so the error that comes back is this child's."""
    (tmp_path / "adapter").mkdir()
    status = tmp_path / layout.STATUS
    record_failure(status, "an old failure")
    cmd = [sys.executable, "-m", "mlx_persona.models.fuse", "--model", str(tmp_path)]
    child = run_child(cmd + ["--adapter-path", str(tmp_path / "adapter"), "--out", str(tmp_path / "fused")], status)
    assert child.returncode == 1 and "no adapters.safetensors" in child.error
    assert "old failure" not in child.error and "error: " in child.stderr


def _fake_child(monkeypatch, script: str):
    """launch() starts ``script`` instead of the training child (same stdout/stderr wiring)."""
    real = subprocess.Popen

    def popen(cmd, **kw):
        return real([sys.executable, "-c", script, cmd[cmd.index("--out") + 1]], **kw)

    monkeypatch.setattr(launch_mod.subprocess, "Popen", popen)


def test_the_parent_reads_the_error_from_status_not_the_log(tmp_path, monkeypatch):
    _fake_child(
        monkeypatch,
        "import json, os, sys\n"
        "print('error: a line that only looks like the reason', flush=True)\n"
        "out = sys.argv[1]\n"
        "json.dump({'state': 'failed', 'error': 'the recorded reason', 'pid': os.getpid()},"
        " open(os.path.join(out, 'status.json'), 'w'))\n"
        "sys.exit(1)\n",
    )
    with pytest.raises(PersonaError) as e:
        launch_mod.launch(tmp_path, tmp_path, tmp_path, resume=False, show_progress=False)
    assert e.value.message == "the recorded reason"


def test_a_child_that_dies_without_a_word_is_quoted_from_its_log(tmp_path, monkeypatch):
    # a failure recorded by an earlier child (another pid) is not this crash's reason
    record_failure(tmp_path / layout.STATUS, "an old failure")
    _fake_child(monkeypatch, "import sys\nprint('Segmentation fault', flush=True)\nsys.exit(3)\n")
    with pytest.raises(PersonaError) as e:
        launch_mod.launch(tmp_path, tmp_path, tmp_path, resume=False, show_progress=False)
    assert "exited with 3" in e.value.message and "Segmentation fault" in e.value.message
    assert "old failure" not in e.value.message


def test_a_run_that_failed_before_its_first_checkpoint_can_start_over(tmp_path):
    """A settings mistake the child found (status "failed", no checkpoint) leaves nothing to
    resume: the same --out starts again without --resume; a running one still refuses."""
    from mlx_persona.sft.config import SFTConfig

    record_failure(tmp_path / layout.STATUS, "sft.num_layers: the model has 2 layers, asked for 40")
    cfg, saved = launch_mod.layered_settings(tmp_path, SFTConfig, "sft", "an SFT", None, {"num_layers": "2"}, False)
    assert cfg.num_layers == 2 and saved is None
    (tmp_path / layout.STATUS).write_text(json.dumps({"state": "running", "iteration": 0}))
    with pytest.raises(PersonaError, match="already holds an SFT run"):
        launch_mod.layered_settings(tmp_path, SFTConfig, "sft", "an SFT", None, {}, False)
