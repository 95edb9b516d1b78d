"""True resume: a run stopped mid-way and resumed ends where an uninterrupted run ends."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys

import mlx.core as mx
import numpy as np
import pytest
from sft_helpers import FAST, write_chat_data

from mlx_persona.core import blas
from mlx_persona.sft import train as sft
from mlx_persona.sft.config import SFTConfig
from mlx_persona.train.checkpoint import latest_checkpoint, read_state

CURVE_KEYS = ("iter", "train_loss", "val_loss", "lr", "trained_tokens", "best")


def curve(out):
    lines = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    return [{k: e[k] for k in CURVE_KEYS if k in e} for e in lines]


def assert_same_run(a, b):
    ca, cb = curve(a), curve(b)
    assert [sorted(e) for e in ca] == [sorted(e) for e in cb]
    for ea, eb in zip(ca, cb):
        for k, v in ea.items():
            assert eb[k] == pytest.approx(v, rel=1e-5, abs=1e-6), (k, ea, eb)
    for name in ("adapters.safetensors", "last/adapters.safetensors"):
        wa, wb = mx.load(str(a / name)), mx.load(str(b / name))
        assert wa.keys() == wb.keys()
        for k in wa:
            np.testing.assert_allclose(np.array(wa[k]), np.array(wb[k]), rtol=1e-5, atol=1e-6)


@pytest.fixture
def data(tmp_path):
    return write_chat_data(tmp_path / "data")


class Killed(Exception):
    pass


def test_resume_equals_uninterrupted(tiny_model_dir, data, tmp_path, monkeypatch):
    cfg = SFTConfig.from_mapping({**FAST, "grad_accumulation_steps": 2})
    full = tmp_path / "full"
    sft.run_sft(tiny_model_dir, data, full, cfg, log=lambda m: None)

    # stop abruptly after step 11: the last checkpoint is at 8, steps 9..11 are lost
    def die(pid, sig):
        raise Killed()

    monkeypatch.setenv(sft.KILL_AFTER_VAR, "11")
    monkeypatch.setattr(os, "kill", die)  # train.loop kills the run after step N
    cut = tmp_path / "cut"
    with pytest.raises(Killed):
        sft.run_sft(tiny_model_dir, data, cut, cfg, log=lambda m: None)
    assert read_state(latest_checkpoint(cut))["iteration"] == 8
    assert max(e["iter"] for e in curve(cut)) == 9  # events past the checkpoint, to be dropped

    monkeypatch.delenv(sft.KILL_AFTER_VAR)
    summary = sft.run_sft(tiny_model_dir, data, cut, cfg, resume=True, log=lambda m: None)
    assert summary["state"] == "done" and summary["iteration"] == cfg.iters
    assert_same_run(full, cut)


def test_kill_9_child_then_resume(tiny_model_dir, data, tmp_path):
    """The real thing: the child process dies by SIGKILL, a new child resumes it."""
    cfg_file = tmp_path / "sft.json"
    cfg_file.write_text(json.dumps(FAST))
    cmd = [
        sys.executable,
        "-m",
        "mlx_persona.sft",
        "--model",
        str(tiny_model_dir),
        "--data",
        str(data),
        "--config",
        str(cfg_file),
    ]
    env = blas.fast_blas_env()

    full = tmp_path / "full"
    subprocess.run(cmd + ["--out", str(full)], env=env, check=True, capture_output=True)

    cut = tmp_path / "cut"
    killed = subprocess.run(cmd + ["--out", str(cut)], env={**env, sft.KILL_AFTER_VAR: "14"}, capture_output=True)
    assert killed.returncode == -signal.SIGKILL
    assert json.loads((cut / "status.json").read_text())["state"] == "running"
    assert read_state(latest_checkpoint(cut))["iteration"] == 12
    assert not (cut / "last").exists()

    subprocess.run(cmd + ["--out", str(cut), "--resume"], env=env, check=True, capture_output=True)
    assert json.loads((cut / "status.json").read_text())["state"] == "done"
    assert_same_run(full, cut)
    assert os.listdir(cut / "checkpoints") == [f"{FAST['iters']:07d}"]
