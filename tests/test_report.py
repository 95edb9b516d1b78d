"""`mlx-persona report` on fake run folders: plots embedded, tables, and nothing-there cases."""

import base64
import json
import re

from click.testing import CliRunner

from mlx_persona.cli import cli
from mlx_persona.report.build import build_report


def jsonl(path, rows):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))


def model_entry(ppl, sim, slop, tps, twin=None):
    e = {
        "perplexity": {"perplexity": ppl},
        "similarity": {
            "mean": sim,
            "median": sim,
            "share_ge_threshold": 0.1,
            "top": [{"index": 0, "similarity": 0.9, "prompt": "lunch?", "real": "12:30", "reply": "12:30 works"}],
            "bottom": [{"index": 1, "similarity": 0.1, "prompt": "why?", "real": "ttl", "reply": "Great question!"}],
        },
        "style": {
            "slop": {"per_1000_words": slop},
            "length": {"median_words": 9.0, "median_ratio": 1.5, "wasserstein_words": 4.0},
            "habits": {"emoji_per_reply": 0.0, "share_lowercase_start": 0.2},
        },
        "speed": {"tokens_per_sec": tps, "ttft_median_s": 0.4},
        "peak_memory_gb": 0.6,
    }
    if twin is not None:
        e["twin_score"] = {"share": twin}
    return e


def fake_run(run):
    run.mkdir(parents=True)
    (run / "recipe.yaml").write_text("name: sam\nmodel: default\nsft:\n  rank: 8\n")
    (run / "manifest.json").write_text(
        json.dumps(
            {
                "name": "sam",
                "budget": {"sft": {"total_gb": 1.5, "verdict": "fits"}, "dpo": {"total_gb": 2.0, "verdict": "fits"}},
                "stages": {
                    "clean": {"status": "done", "seconds": 2.5},
                    "sft": {"status": "done", "seconds": 3725.0, "peak_memory_gb": 1.2},
                    "dpo": {"status": "done", "seconds": 600.0},
                    "eval": {"status": "done", "seconds": 95.0},
                },
            }
        )
    )
    jsonl(
        run / "sft" / "metrics.jsonl",
        [{"iter": 0, "val_loss": 3.0}]
        + [{"iter": i, "train_loss": 3.0 - 0.1 * i, "peak_memory_gb": 1.2} for i in range(1, 11)]
        + [{"iter": 10, "val_loss": 2.2}],
    )
    jsonl(
        run / "dpo" / "metrics.jsonl",
        [{"iter": i, "train_loss": 0.69 - 0.02 * i, "margin": 0.1 * i, "peak_memory_gb": 1.8} for i in range(1, 6)]
        + [{"iter": 5, "val_loss": 0.6, "val_margin": 0.4}],
    )
    (run / "eval").mkdir()
    (run / "eval" / "metrics.json").write_text(
        json.dumps(
            {
                "created": "2026-11-27T20:00:00+00:00",
                "test": {"path": "clean/test.jsonl", "conversations": 2},
                "settings": {"max_tokens": 96},
                "real": {"slop": {"per_1000_words": 0.0}, "median_words": 6.0, "habits": {"emoji_per_reply": 0.5}},
                "models": {
                    "base": model_entry(20.0, 0.30, 40.0, 100.0),
                    "sft": model_entry(10.0, 0.45, 5.0, 95.0, 0.7),
                    "dpo": model_entry(12.0, 0.50, 2.0, 96.0, 0.8),
                },
                "skipped": [],
            }
        )
    )
    jsonl(
        run / "eval" / "samples.jsonl",
        [
            {
                "prompt": "lunch?",
                "real": "12:30 | usual",
                "base": "I'd be happy to help!",
                "sft": "12:30",
                "dpo": "12:30 usual place",
            },
            {"prompt": "why?", "real": "ttl", "base": "Great question!", "sft": "ttl", "dpo": None},
        ],
    )
    return run


def test_report_embeds_the_loss_curves_and_tables(tmp_path):
    run = fake_run(tmp_path / "sam")
    md_path, html_path = build_report(run)
    html = html_path.read_text()
    pngs = re.findall(r"src='data:image/png;base64,([A-Za-z0-9+/=]+)'", html)
    plots = re.findall(r"data-plot='([a-z_]+)'", html)
    assert plots == ["sft_train_and_validation_loss", "dpo_loss", "dpo_reward_margin", "reply_length"]
    for b64 in pngs:
        assert base64.b64decode(b64)[:8] == b"\x89PNG\r\n\x1a\n"
    assert "src='http" not in html and "<script" not in html  # self-contained
    md = md_path.read_text()
    for name in plots:
        assert f"](report_files/{name}.png)" in md
        assert (run / "report_files" / f"{name}.png").read_bytes()[:4] == b"\x89PNG"
    # metrics table: deltas against each earlier model, a perplexity percentage, the person's own value
    assert "| metric | real replies | base | sft | Δ sft vs base | dpo | Δ dpo vs base | Δ dpo vs sft |" in md
    row = next(line for line in md.splitlines() if line.startswith("| perplexity"))
    assert row == (
        "| perplexity on the persona's replies | – | 20.00 | 10.00 | −10.00 ✓ (-50.0%) | 12.00 | −8.00 ✓ (-40.0%) "
        "| +2.00 (+20.0%) |"
    )
    speed = next(line for line in md.splitlines() if line.startswith("| generated tokens per second"))
    assert speed == "| generated tokens per second | – | 100.0 | 95.0 | – | 96.0 | – | – |"  # one measurement: no Δ
    slop = next(line for line in md.splitlines() if line.startswith("| assistant slop"))
    assert slop.split(" | ")[1] == "0.0" and "−35.0 ✓" in slop
    assert "12:30 \\| usual" in md  # pipes in replies do not break the table
    assert "| sft | 1.50 | fits | 1.20 | 0.80 |" in md  # budget estimate vs measured (manifest)
    assert "| dpo | 2.00 | fits | 1.80 | 0.90 |" in md  # measured from dpo/metrics.jsonl
    assert "| sft | done | 1:02:05 | 3725.0 |" in md
    assert "rank: 8" in md and "Not in this report" not in md
    assert "bootstrap" not in md and "Style-fidelity needs" not in md  # an eval without intervals or classifier


def with_intervals(run, balanced_accuracy=0.9):
    """Add what a current eval writes: style-fidelity, the classifier record, intervals, the twin's name."""
    ev = json.loads((run / "eval" / "metrics.json").read_text())
    for name, p in (("base", 0.2), ("sft", 0.55), ("dpo", 0.6)):
        ev["models"][name]["style_fidelity"] = {"mean": p, "n": 17}
    ev["real"]["style_fidelity"] = {"mean": 0.8, "n": 17}
    ev["style_classifier"] = {
        "train": {"person_messages": 99, "other_messages": 90, "features": "MiniLM embedding + 12 habit features"},
        "held_out": {
            "person_messages": 24,
            "other_messages": 21,
            "accuracy": balanced_accuracy,
            "balanced_accuracy": balanced_accuracy,
            "other_mean_p": 0.24,
        },
    }

    def ci(value, low, high):
        return {"value": value, "low": low, "high": high}

    def d(delta, low, high):
        return {"delta": delta, "low": low, "high": high, "real": low > 0 or high < 0}

    ev["intervals"] = {
        "resamples": 1000,
        "seed": 0,
        "level": 0.95,
        "conversations": 17,
        "models": {
            "sft": {"similarity_mean": ci(0.45, 0.40, 0.50)},
            "dpo": {"similarity_mean": ci(0.50, 0.44, 0.57), "style_fidelity": ci(0.6, 0.5, 0.7)},
        },
        "deltas": {
            "base->sft": {
                "from": "base",
                "to": "sft",
                "metrics": {"similarity_mean": d(0.15, 0.1, 0.2), "perplexity": d(-10.0, -14.0, -6.5)},
            },
            "base->dpo": {"from": "base", "to": "dpo", "metrics": {"similarity_mean": d(0.2, 0.12, 0.27)}},
            "sft->dpo": {
                "from": "sft",
                "to": "dpo",
                "metrics": {"similarity_mean": d(0.05, -0.01, 0.11), "style_fidelity": d(0.05, 0.01, 0.09)},
            },
        },
    }
    ev["twin"] = "sft"
    (run / "eval" / "metrics.json").write_text(json.dumps(ev))
    return run


def test_report_marks_each_difference_real_or_noise_by_its_interval(tmp_path):
    run = with_intervals(fake_run(tmp_path / "sam"))
    md_path, html_path = build_report(run)
    md, html = md_path.read_text(), html_path.read_text()
    lines = md.splitlines()
    sim = next(line for line in lines if line.startswith("| similarity to the real reply, mean")).split(" | ")
    assert sim[2:] == [
        "0.300",
        "0.450 [0.400, 0.500]",
        "+0.150 ✓ [+0.100, +0.200] real",
        "0.500 [0.440, 0.570]",
        "+0.200 ✓ [+0.120, +0.270] real",
        "+0.050 ✓ [−0.010, +0.110] noise |",
    ]
    ppl = next(line for line in lines if line.startswith("| perplexity"))
    assert "−10.00 ✓ (-50.0%) [−14.00, −6.50] real" in ppl and ppl.endswith(
        "| +2.00 (+20.0%) |"
    )  # no interval: no verdict
    fid = next(line for line in lines if line.startswith("| style-fidelity")).split(" | ")
    assert fid[1:3] == ["0.80", "0.20"] and fid[-1] == "+0.05 ✓ [+0.01, +0.09] real |" and fid[5] == "0.60 [0.50, 0.70]"
    assert "95% paired bootstrap interval (1000 resamples of the 17 test conversations, seed 0" in md
    assert "learns the person's 99 messages against the other speakers' 90" in md
    assert "it is right 90% of the time" in md and "barely better than a coin" not in md
    assert "The person's own test replies score 0.80, the ceiling" in md
    assert "The run calls sft the twin." in md and "## Closest and furthest replies (sft)" in md
    assert "[+0.100, +0.200] real" in html and "barely better" not in html


def test_a_weak_style_classifier_is_called_weak(tmp_path):
    md = build_report(with_intervals(fake_run(tmp_path / "sam"), balanced_accuracy=0.55))[0].read_text()
    assert "right 55% of the time (55% balanced" in md and "barely better than a coin" in md


def test_report_on_an_empty_run_folder_lists_what_is_missing(tmp_path):
    run = tmp_path / "empty"
    run.mkdir()
    r = CliRunner().invoke(cli, ["report", str(run)])
    assert r.exit_code == 0, r.output
    md = (run / "report.md").read_text()
    assert "## Not in this report" in md
    for what in (
        "results: no eval/metrics.json",
        "SFT train and validation loss: no sft/metrics.jsonl",
        "DPO loss: no dpo/metrics.jsonl",
        "stage timings",
        "recipe: no recipe.yaml",
    ):
        assert what in md
    assert "data:image/png" not in (run / "report.html").read_text()


def test_eval_skips_and_a_torn_metrics_line_reach_the_report(tmp_path):
    run = fake_run(tmp_path / "sam")
    with open(run / "sft" / "metrics.jsonl", "a") as f:
        f.write('{"iter": 11, "train_lo')  # the stage is still writing
    ev = json.loads((run / "eval" / "metrics.json").read_text())
    del ev["models"]["dpo"]
    ev["skipped"] = [{"item": "dpo", "reason": "no DPO stage output"}]
    (run / "eval" / "metrics.json").write_text(json.dumps(ev))
    md = build_report(run)[0].read_text()
    assert "- dpo: no DPO stage output" in md
    assert "Δ sft vs base" in md and "Δ dpo vs base" not in md


def test_report_of_a_missing_folder_is_a_clear_error(tmp_path):
    r = CliRunner().invoke(cli, ["report", str(tmp_path / "nope")])
    assert r.exit_code == 1 and "run folder not found" in r.output


def test_report_plots_load_in_headless_chromium(tmp_path):
    import shutil
    import sys
    from pathlib import Path

    import pytest

    if not any(shutil.which(n) for n in ("chromium", "chromium-browser", "google-chrome")):
        pytest.skip("no Chromium here (apt-get install -y chromium)")
    sys.path.insert(0, str(Path(__file__).parent.parent / "bench"))
    from render_report import probe_images

    html = build_report(fake_run(tmp_path / "sam"))[1]
    images = probe_images(html)
    assert len(images) == 4 and all(im["w"] > 100 and im["h"] > 100 for im in images), images
