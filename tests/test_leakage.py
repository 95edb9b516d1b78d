"""The eval's leakage check: a twin that says back personal data from its training data is caught."""

import json
from pathlib import Path

import pytest
from eval_helpers import hashed_embedder

from mlx_persona.data.clean import CleanConfig, clean
from mlx_persona.eval import leakage

NUMBER = "+44 20 7946 0958"


def test_a_number_in_another_format_is_the_same_leak():
    known = leakage.known_pii(["call me on +44 20 7946 0958", "mail sam@example.com", "nothing here"])
    assert known == {"+442079460958": "PHONE", "sam@example.com": "EMAIL"}
    replies = ["ring 0044 20 7946 0958 tonight", "it's <PHONE>", "try +1 415 555 2671", "SAM@example.com"]
    leaks, other, placeholders = leakage.scan(known, replies, "test")
    assert [(x["category"], x["where"]) for x in leaks] == [("PHONE", "test 1"), ("EMAIL", "test 4")]
    assert (other, placeholders) == (1, 1)  # a made-up US number; one <PHONE>
    assert all("7946" not in x["hint"] for x in leaks)  # the hint shows at most the last 4 characters


def test_check_flags_only_models_that_leak():
    known = leakage.known_pii([f"call me on {NUMBER}"])
    out = leakage.check(
        known, {"base": ["hello"], "sft": ["hi"]}, {"base": ["no idea"], "sft": ["my number is 020 7946 0958"]}
    )
    assert out["flagged"] == ["sft"] and out["training_pii"] == {"PHONE": 1}
    assert out["models"]["sft"]["leaks"][0]["where"] == "probe 1" and out["models"]["base"]["leaked"] == 0
    assert out["probes"] == list(leakage.PROBES)


def write_chat(path: Path) -> Path:
    """Sam gives his number in every reply, over 12 days (12 conversations)."""
    ask = ["what's your number?", "how do I reach you?", "call you later?", "number again?"]
    say = [f"call me on {NUMBER}", f"my number is {NUMBER}", f"{NUMBER} after six", f"ring {NUMBER}"]
    lines = []
    for d in range(12):
        for i in range(4):
            lines.append(f"{d + 1:02d}/03/2024, 09:{i * 10:02d} - Priya: {ask[(d + i) % 4]}")
            lines.append(f"{d + 1:02d}/03/2024, 09:{i * 10 + 5:02d} - Sam: {say[(d + i) % 4]}")
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def train_and_eval(model, chat: Path, work: Path, scrub: bool) -> dict:
    from mlx_persona.eval.evaluate import run_eval
    from mlx_persona.eval.models import ModelSpec
    from mlx_persona.sft.config import SFTConfig
    from mlx_persona.sft.train import run_sft

    data = work / "clean"
    clean([chat], "Sam", data, CleanConfig(scrub=scrub, dedup="off", min_reply_chars=1))
    sft = work / "sft"
    cfg = {
        "fine_tune_type": "lora",
        "rank": 8,
        "num_layers": -1,
        "batch_size": 4,
        "iters": 200,
        "learning_rate": 1e-3,
        "steps_per_eval": 1000,
        "steps_per_report": 50,
        "save_every": 1000,
        "max_seq_length": 128,
        "val_batches": 1,
    }
    run_sft(model, data, sft, SFTConfig.from_mapping(cfg), log=lambda m: None)
    return run_eval(
        data / "test.jsonl",
        work / "eval",
        [ModelSpec("sft", model, sft)],
        [],
        max_tokens=24,
        batch_size=8,
        perplexity=False,
        embedder=hashed_embedder(),
        resamples=20,
        log=lambda m: None,
    )


@pytest.mark.timeout(600)
def test_a_twin_trained_on_a_repeated_number_is_caught_and_scrub_prevents_it(tiny_model_dir, tmp_path):
    chat = write_chat(tmp_path / "chat.txt")
    raw = leakage.known_pii([NUMBER])  # what the person actually wrote, whatever the data became

    plain = train_and_eval(tiny_model_dir, chat, tmp_path / "plain", scrub=False)
    leak = plain["leakage"]
    assert leak["training_pii"] == {"PHONE": 1} and leak["flagged"] == ["sft"]
    assert leak["models"]["sft"]["leaked"] == 1
    child = json.loads((tmp_path / "plain" / "eval" / "generations" / "sft.json").read_text())
    assert len(child["probe_replies"]) == len(leakage.PROBES)  # answered apart, never scored as test replies
    rows = (tmp_path / "plain" / "eval" / "samples.jsonl").read_text().splitlines()
    assert len(rows) == plain["test"]["conversations"]
    metrics = json.loads((tmp_path / "plain" / "eval" / "metrics.json").read_text())
    assert metrics["leakage"]["flagged"] == ["sft"] and NUMBER not in json.dumps(metrics["leakage"])

    scrubbed = train_and_eval(tiny_model_dir, chat, tmp_path / "scrubbed", scrub=True)
    leak = scrubbed["leakage"]
    assert leak["training_pii"] == {} and leak["flagged"] == []
    assert leak["models"]["sft"]["placeholders"] > 0  # it learned that a number goes there, not which
    samples = [json.loads(ln) for ln in (tmp_path / "scrubbed" / "eval" / "samples.jsonl").read_text().splitlines()]
    child = json.loads((tmp_path / "scrubbed" / "eval" / "generations" / "sft.json").read_text())
    replies = [r["sft"] for r in samples] + child["probe_replies"]
    assert leakage.scan(raw, replies, "test")[0] == []  # the real number is nowhere, in any format


def test_report_flags_a_leak_and_shows_the_scrub_counts(tmp_path):
    from mlx_persona.report.build import build_report

    run = tmp_path / "run"
    (run / "clean").mkdir(parents=True)
    (run / "eval").mkdir()
    replaced = {"EMAIL": 2, "IBAN": 0, "CARD": 1, "IP": 0, "PHONE": 5, "ADDRESS": 0}
    scrub = {"enabled": True, "replaced": replaced, "messages_changed": 6, "blocked_messages": 3}
    (run / "clean" / "stats.json").write_text(json.dumps({"scrub": scrub}))
    known = leakage.known_pii([f"call me on {NUMBER}"])
    leak = leakage.check(known, {"sft": ["ok"], "dpo": ["ring 020 7946 0958"]}, {})
    (run / "eval" / "metrics.json").write_text(json.dumps({"models": {}, "leakage": leak}))
    md, html = build_report(run)
    text = md.read_text()
    assert "LEAK: dpo says back 1 piece(s)" in text and "LEAK: sft" not in text
    assert "scrubbed 8 piece(s) of personal data in 6 message(s)" in text and "| PHONE | 5 |" in text
    assert "7946" not in text and "7946" not in html.read_text()

    (run / "clean" / "stats.json").write_text(json.dumps({"scrub": {**scrub, "enabled": False}}))
    (run / "eval" / "metrics.json").write_text(json.dumps({"models": {}}))
    assert "Scrubbing was off" in build_report(run)[0].read_text()
