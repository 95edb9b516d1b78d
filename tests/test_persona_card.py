"""``mlx-persona persona``: the card's numbers come from the person's messages, not the others'."""

import json
from collections import Counter
from pathlib import Path

import yaml
from click.testing import CliRunner

from mlx_persona.cli import cli
from mlx_persona.data.clean import CleanConfig, clean
from mlx_persona.data.persona import build_card, language, log_odds

# Priya writes full sentences with "!", Sam answers lower case with 🙂 and says "yeet" a lot,
# always 4 minutes later, between 21:00 and 23:00.
OTHERS = ["Could you check the build tonight?", "Thanks! Is the release ready?", "Great! Can you deploy it now?"]
SAM = ["yeet, on it 🙂", "yeah yeet it after dinner 🙂", "yeet. it is live 🙂"]


def write_chat(path: Path, days: int = 10) -> Path:
    lines = []
    for d in range(days):
        for i in range(3):
            hour = 21 + (i % 2)
            lines.append(f"{d + 1:02d}/03/2024, {hour}:{i * 10:02d} - Priya: {OTHERS[i]}")
            lines.append(f"{d + 1:02d}/03/2024, {hour}:{i * 10 + 4:02d} - Sam: {SAM[(d + i) % 3]}")
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def make_run(tmp_path: Path) -> Path:
    chat = write_chat(tmp_path / "chat.txt")
    run = tmp_path / "runs" / "sam"
    clean([chat], "Sam", run / "clean", CleanConfig(min_reply_chars=1, merge_gap_min=0))
    recipe = {"persona": {"name": "Sam", "aliases": []}, "data": [{"path": str(chat)}], "clean": {"merge_gap_min": 0}}
    (run / "recipe.yaml").write_text(yaml.safe_dump(recipe))
    return run


def test_card_of_a_run(tmp_path):
    card = build_card(make_run(tmp_path))
    assert card["persona"] == "Sam" and card["replies"] == 3  # distinct replies (the rest are duplicates)
    assert card["characteristic"]["words"][0]["term"] == "yeet"
    assert all(r["term"] not in ("thanks", "release", "deploy") for r in card["characteristic"]["words"])
    assert card["habits"]["share_with_emoji"] == 1.0 and card["others_habits"]["share_with_emoji"] == 0.0
    assert card["capitalisation"]["share_lowercase_start"] == 1.0
    assert card["languages"] == {"English": 1.0}
    hours = card["active_hours"]["counts"]
    assert (
        sum(hours) == 30
        and hours[21] == 20
        and hours[22] == 10
        and sorted(card["active_hours"]["peak"][:2])
        == [
            21,
            22,
        ]
    )
    assert card["reply_latency_s"]["median"] == 240 and card["reply_latency_s"]["count"] == 30
    prompt = card["system_prompt"]
    assert prompt.startswith("You are Sam. Reply the way Sam does:") and "lower case" in prompt
    assert "emoji often" in prompt and "short replies" in prompt


def test_card_of_cleaned_data_has_no_times_and_says_why(tmp_path):
    import shutil

    data = shutil.copytree(make_run(tmp_path) / "clean", tmp_path / "data")  # cleaned data outside a run
    card = build_card(data)
    assert card["active_hours"] is None and card["reply_latency_s"] is None and "no times" in card["times_note"]
    assert card["persona"] == "Sam"  # from the persona line in the data's system prompt


def test_command_writes_persona_json(tmp_path, monkeypatch):
    run = make_run(tmp_path)
    res = CliRunner().invoke(cli, ["persona", str(run)])
    assert res.exit_code == 0, res.output
    assert "suggested system prompt" in res.output and json.loads((run / "persona.json").read_text())["replies"] == 3
    monkeypatch.chdir(tmp_path)
    res = CliRunner().invoke(cli, ["persona", str(run / "clean")])
    assert res.exit_code == 0 and (tmp_path / "persona.json").is_file()
    assert not (run / "clean" / "persona.json").exists()  # a clean folder holds only what clean writes
    res = CliRunner().invoke(cli, ["persona", str(tmp_path / "nothing")])
    assert res.exit_code == 1 and "not a folder" in res.output


def test_log_odds_ranks_the_persons_own_words():
    person = Counter({"yeet": 10, "the": 50, "ok": 5})
    others = Counter({"the": 50, "thanks": 10, "ok": 5})  # as many words as the person's
    ranked = [r["term"] for r in log_odds(person, others)]
    assert ranked[0] == "yeet" and "the" not in ranked and "thanks" not in ranked


def test_language_by_common_words_then_script():
    assert language("ich habe das nicht gesehen") == "German"
    assert language("je ne sais pas") == "French"
    assert language("привет") == "Cyrillic"
    assert language("ok 👍") == "unknown"


def test_report_shows_the_card_beside_the_models(tmp_path):
    from mlx_persona.report.build import build_report

    run = make_run(tmp_path)
    (run / "eval").mkdir()
    habits = {"share_with_emoji": 0.0, "share_lowercase_start": 0.1, "ends_with": {"period": 0.9, "none": 0.1}}
    ev = {"models": {"sft": {"style": {"habits": habits, "length": {"median_words": 14}}}}}
    (run / "eval" / "metrics.json").write_text(json.dumps(ev))
    text = build_report(run)[0].read_text()
    assert "## Persona card: Sam" in text and "Suggested system prompt: You are Sam." in text
    assert "| share with emoji | 100% | 0% |" in text and "| median words | 5 | 14 |" in text
