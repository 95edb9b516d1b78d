"""``mlx-persona clean`` end to end: outputs, determinism, damaged input, user mistakes."""

import json
from pathlib import Path

from click.testing import CliRunner

from mlx_persona.cli import cli
from mlx_persona.data.clean import CleanConfig, clean

SAMPLE = Path(__file__).resolve().parent.parent / "data" / "sample"


def sam_files(folder=SAMPLE):
    """Sam's sample files (data/sample/nina_* is the second persona, tested in test_sample_personas.py)."""
    return sorted(p for p in folder.iterdir() if not p.name.startswith("nina_"))


PERSONA = ["--persona", "Sam Okafor", "--persona", "Sam"]


def run(*args):
    return CliRunner().invoke(cli, ["clean", *map(str, args)])


def read_jsonl(p):
    return [json.loads(line) for line in Path(p).read_text().splitlines()]


def test_sample_data_cleans_into_mlx_chat_jsonl(tmp_path):
    res = run(*sam_files(), *PERSONA, "--out", tmp_path / "out")
    assert res.exit_code == 0, res.output
    out = tmp_path / "out"
    assert sorted(p.name for p in out.iterdir()) == [
        "rejects.jsonl",
        "stats.json",
        "test.jsonl",
        "train.jsonl",
        "valid.jsonl",
    ]
    stats = json.loads((out / "stats.json").read_text())
    assert stats["warnings"] == 0
    for rule in ("meta", "min-length", "system-line", "tool-message", "duplicate", "near-duplicate"):
        assert stats["dropped"][rule] > 0, rule  # the sample data exercises every rule
    assert all(stats["splits"][n]["samples"] > 0 for n in ("train", "valid", "test"))
    samples = [s for n in ("train", "valid", "test") for s in read_jsonl(out / f"{n}.jsonl")]
    assert len(samples) == stats["funnel"]["samples_out"]
    for s in samples:
        roles = [m["role"] for m in s["messages"]]
        assert roles[0] == "system" and roles[1] == "user" and roles[-1] == "assistant"
        assert len(s["messages"][0]["content"]) <= 200  # tool-call histories were replaced
    replies = {s["messages"][-1]["content"] for s in samples}
    assert "yes. i recieve everything, thats the problem. we need better routing" in replies  # typos kept
    assert not any("<Media omitted>" in r or "Request interrupted" in r for r in replies)
    assert stats["system_chars"]["before"]["max"] > 200 >= stats["system_chars"]["after"]["max"]
    for r in read_jsonl(out / "rejects.jsonl"):
        assert r["source"].startswith(str(SAMPLE)) and r["line"] >= 1 and r["rule"]
    assert "samples written" in res.output


def test_same_seed_is_byte_identical_and_seed_changes_the_split(tmp_path):
    inputs = sam_files()
    for name, seed in (("a", 0), ("b", 0), ("c", 5)):
        assert run(*inputs, *PERSONA, "--out", tmp_path / name, "--seed", seed, "--quiet").exit_code == 0
    for f in ("train.jsonl", "valid.jsonl", "test.jsonl", "rejects.jsonl", "stats.json"):
        assert (tmp_path / "a" / f).read_bytes() == (tmp_path / "b" / f).read_bytes(), f
    assert (tmp_path / "a" / "train.jsonl").read_bytes() != (tmp_path / "c" / "train.jsonl").read_bytes()


def test_split_does_not_depend_on_the_folder_the_data_sits_in(tmp_path):
    import shutil

    for name in ("here", "elsewhere/deeper"):
        shutil.copytree(SAMPLE, tmp_path / name / "sample")
        inputs = sam_files(tmp_path / name / "sample")
        assert run(*inputs, *PERSONA, "--out", tmp_path / name / "out", "--quiet").exit_code == 0
    for f in ("train.jsonl", "valid.jsonl", "test.jsonl"):
        assert (tmp_path / "here" / "out" / f).read_bytes() == (
            tmp_path / "elsewhere/deeper" / "out" / f
        ).read_bytes(), f


def test_damaged_input_is_reported_with_file_line_and_the_run_finishes(tmp_path):
    jl = tmp_path / "log.jsonl"
    jl.write_bytes(
        b'{"prompt": "is prod ok?", "completion": "yes, all green since 9am"}\n'
        b'{"prompt": "broken, "completion": "x"}\n'
        b'{"prompt": "and \xff staging?", "completion": "down, fixing it"}\n'
        b'{"prompt": "eta?", "completion": "twenty minutes, maybe less"}\n'
    )
    cs = tmp_path / "script.csv"
    cs.write_text("speaker,text\nLeo,deploy today?\nSam,after lunch. after the tests\nLeo\nSam,fine by me then\n")
    res = run(jl, cs, "--persona", "Sam", "--out", tmp_path / "out")
    assert res.exit_code == 0, res.output
    assert "3 warning(s)" in res.output and "rejects.jsonl" in res.output
    got = {(Path(r["source"]).name, r["line"], r["rule"]) for r in read_jsonl(tmp_path / "out" / "rejects.jsonl")}
    assert {
        ("log.jsonl", 2, "malformed-json"),
        ("log.jsonl", 3, "undecodable"),
        ("script.csv", 4, "csv-missing-column"),
    } <= got
    stats = json.loads((tmp_path / "out" / "stats.json").read_text())
    assert stats["warnings"] == 3 and stats["funnel"]["samples_out"] == 3


def test_missing_file_or_unknown_persona_writes_nothing(tmp_path):
    out = tmp_path / "out"
    res = run(SAMPLE / "script.csv", tmp_path / "nope.txt", "--persona", "Sam", "--out", out)
    assert res.exit_code == 1 and res.output.strip().count("\n") == 0
    assert "input not found" in res.output and "nope.txt" in res.output and not out.exists()
    res = run(SAMPLE / "whatsapp_android.txt", "--persona", "Samuel", "--out", out)
    assert res.exit_code == 1 and res.output.strip().count("\n") == 0
    assert "Samuel" in res.output and "Priya" in res.output and not out.exists()
    assert "Traceback" not in res.output


def test_existing_outputs_are_replaced_but_foreign_files_refused(tmp_path):
    out = tmp_path / "out"
    stats = clean([SAMPLE / "script.csv"], "Sam", out)
    first = (out / "train.jsonl").read_text()
    stats2 = clean([SAMPLE / "script.csv"], "Sam", out, CleanConfig(context_turns=1))
    assert stats2["tokens"]["per_sample"]["max"] < stats["tokens"]["per_sample"]["max"]
    assert (out / "train.jsonl").read_text() != first
    (out / "notes.md").write_text("mine")
    res = run(SAMPLE / "script.csv", "--persona", "Sam", "--out", out)
    assert res.exit_code == 1 and "holds other files" in res.output
    assert (out / "notes.md").read_text() == "mine"


def test_rule_options_reach_the_config(tmp_path):
    res = run(
        SAMPLE / "agent_logs.jsonl",
        "--persona",
        "Sam",
        "--out",
        tmp_path / "o",
        "--system",
        "keep",
        "--no-add-system",
        "--pii",
        "--split",
        "0.5,0.25,0.25",
        "--min-reply-chars",
        "1",
        "--dedup",
        "off",
        "--meta-pattern",
        "^yes",
        "--quiet",
    )
    assert res.exit_code == 0, res.output
    stats = json.loads((tmp_path / "o" / "stats.json").read_text())
    cfg = stats["config"]
    assert (cfg["system"], cfg["add_system"], cfg["pii"], cfg["splits"], cfg["dedup"]) == (
        "keep",
        False,
        True,
        [0.5, 0.25, 0.25],
        "off",
    )
    assert cfg["meta_patterns"][-1] == "^yes" and "duplicate" not in stats["dropped"]
    rows = read_jsonl(tmp_path / "o" / "train.jsonl")
    assert any(len(r["messages"][0]["content"]) > 200 for r in rows)  # kept as written
    assert not any(r["messages"][-1]["content"].lower().startswith("yes") for r in rows)


def test_token_counts_with_the_model_tokenizer(tmp_path, tiny_model_dir):
    res = run(
        SAMPLE / "script.csv",
        "--persona",
        "Sam",
        "--out",
        tmp_path / "o",
        "--tokenizer",
        tiny_model_dir,
        "--max-tokens",
        "200",
    )
    assert res.exit_code == 0, res.output
    stats = json.loads((tmp_path / "o" / "stats.json").read_text())
    assert stats["tokens"]["counter"] == str(tiny_model_dir)
    assert 0 < stats["tokens"]["per_sample"]["max"] <= 200  # the budget holds in real tokens
    plain = clean([SAMPLE / "script.csv"], "Sam", tmp_path / "p", CleanConfig(max_tokens=200))
    assert plain["tokens"]["per_sample"] != stats["tokens"]["per_sample"]


def test_reply_tokens_in_stats_and_the_room_a_generated_reply_gets(tiny_model_dir, tmp_path):
    from mlx_persona.data.stats import ROOM_FLOOR, reply_room, room_for

    assert (reply_room(1), reply_room(42), reply_room(43), reply_room(77)) == (64, 64, 80, 128)
    stats = clean(
        [SAMPLE / "script.csv"], "Sam", tmp_path / "o", CleanConfig(max_tokens=200, model=str(tiny_model_dir))
    )
    reply, sample = stats["tokens"]["per_reply"], stats["tokens"]["per_sample"]
    assert reply["count"] == sample["count"] and 0 < reply["max"] < sample["max"]
    room, why = room_for(tmp_path / "o" / "train.jsonl", tiny_model_dir)
    assert room >= ROOM_FLOOR and "99th-percentile reply" in why
    assert room_for(tmp_path / "nothing.jsonl", tiny_model_dir)[0] == ROOM_FLOOR
    assert room_for(tmp_path / "o" / "train.jsonl", tmp_path)[0] == ROOM_FLOOR  # no tokenizer: the floor, no traceback
