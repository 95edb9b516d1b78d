"""On the real default model and the sample persona: pairs are generated, DPO learns to prefer
the person's replies (validation preference accuracy above 0.5, margin growing).

The base stands in for the fused SFT model here (chosen = the real reply needs no twin), which
keeps the test to a few minutes on two CPU cores; the full chain is in README's tour."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mlx_persona.data.clean import clean
from mlx_persona.dpo.config import DPOConfig
from mlx_persona.dpo.loss import LOG2
from mlx_persona.dpo.train import run_dpo
from mlx_persona.pairs.build import PairsConfig, run_pairs

pytestmark = pytest.mark.e2e
SAMPLE = Path(__file__).resolve().parent.parent / "data" / "sample"


def test_pairs_then_dpo_on_the_sample_persona(default_model_dir, tmp_path):
    sam = sorted(p for p in SAMPLE.glob("*") if not p.name.startswith("nina_"))  # Sam's files only
    clean(sam, ["Sam Okafor", "Sam"], tmp_path / "clean")
    stats = run_pairs(
        default_model_dir,
        None,
        tmp_path / "clean",
        tmp_path / "pairs",
        PairsConfig(max_tokens=48, max_prompts=16, batch_size=8, seed=1),
        log=lambda m: None,
    )
    assert stats["pairs"]["train"] >= 8 and stats["pairs"]["valid"] >= 4, stats
    assert sum(stats["filtered"].values()) + sum(stats["pairs"].values()) == stats["prompts"]
    first = json.loads((tmp_path / "pairs" / "train.jsonl").read_text().splitlines()[0])
    assert {"prompt", "chosen", "rejected", "system", "messages"} <= set(first)

    cfg = DPOConfig.from_mapping(
        {
            "rank": 8,
            "num_layers": 8,
            "batch_size": 2,
            "iters": 16,
            "learning_rate": 5e-5,
            "steps_per_report": 4,
            "steps_per_eval": 8,
            "save_every": 8,
            "max_seq_length": 512,
        }
    )
    out = tmp_path / "dpo"
    summary = run_dpo(default_model_dir, tmp_path / "pairs", out, cfg, log=lambda m: None)
    assert summary["state"] == "done"
    vals = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines() if "val_loss" in line]
    assert vals[0]["val_loss"] == pytest.approx(LOG2, abs=1e-4)  # adapter at zero: policy == reference
    margins = [v["val_margin"] for v in vals]  # steps 0, 8, 16
    assert margins[0] == pytest.approx(0.0, abs=1e-3)
    assert margins[-1] > 0.5 and margins[1] > margins[0]
    assert vals[-1]["val_accuracy"] > 0.5
