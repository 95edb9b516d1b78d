"""``mlx-persona init``: the persona from the exports, the recipe the runner accepts and cleans."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner
from init_helpers import MAC_16GB, REPO, SAM_FILES, SAMPLE, SMALL_LINUX, whatsapp_group

from mlx_persona.cli import cli
from mlx_persona.runner import plan as planning
from mlx_persona.runner.recipe import load_recipe


@pytest.fixture
def machine(monkeypatch):
    """Stub the doctor's view of this machine; a test sets ``machine.now`` to another one."""

    class Box:
        now = SMALL_LINUX

    monkeypatch.setattr(planning, "this_machine", lambda: Box.now)
    return Box


def init(*args):
    return CliRunner().invoke(cli, ["init", *map(str, args)])


def run_until_clean(recipe: Path, runs: Path):
    return CliRunner().invoke(cli, ["run", str(recipe), "--until", "clean", "--runs", str(runs), "--plain"])


def samples(run_dir: Path) -> dict[str, list]:
    """Each split's samples without their system prompt (the one line init cannot know)."""
    out = {}
    for split in ("train", "valid", "test"):
        f = run_dir / "clean" / f"{split}.jsonl"
        rows = [json.loads(x)["messages"] for x in f.read_text().splitlines()] if f.exists() else []
        out[split] = [[m for m in msgs if m["role"] != "system"] for msgs in rows]
    return out


def test_sam_gives_the_quickstarts_persona_and_data(machine, tmp_path, default_model_dir, monkeypatch):
    monkeypatch.setenv("MLX_PERSONA_HOME", str(default_model_dir.parents[1]))
    out = tmp_path / "sam.yaml"
    res = init(*SAM_FILES, "--out", out)
    assert res.exit_code == 0, res.output
    mine, quick = load_recipe(out), load_recipe(REPO / "recipes" / "quickstart.yaml")
    assert mine.persona.name == quick.persona.name == "Sam Okafor"
    assert set(mine.persona.aliases) == set(quick.persona.aliases)
    assert [Path(s.path) for s in mine.data] == [Path(s.path) for s in quick.data]
    by_file = {Path(s.path).name: (s.persona, s.aliases) for s in mine.data}
    assert by_file["script.csv"] == ("SAM", ["Sam"])  # this file's own spellings, most used first
    assert by_file["agent_logs.jsonl"] == (None, [])  # roles: the assistant is the persona
    # the written recipe runs: validation, then the clean stage; its samples are the quickstart's
    assert run_until_clean(out, tmp_path / "runs").exit_code == 0
    quick_runs = tmp_path / "quick"
    assert run_until_clean(REPO / "recipes" / "quickstart.yaml", quick_runs).exit_code == 0
    got, want = samples(tmp_path / "runs" / mine.name), samples(quick_runs / "quickstart")
    assert got["train"] and got == want


def test_recipe_is_commented_and_funnel_comes_before_writing(machine, tmp_path):
    out = tmp_path / "twin.yaml"
    res = init(*SAM_FILES, "--out", out)
    assert res.exit_code == 0, res.output
    text = res.output
    assert text.index("samples written") < text.index("warning: only 89 training samples") < text.index("wrote ")
    assert f"next: mlx-persona run {out}" in text
    recipe = out.read_text()
    for key in ("iters:", "max_seq_length:", "model:", "rpo_alpha:", "context_turns:"):
        line = next(x for x in recipe.splitlines() if x.strip().startswith(key))
        assert "#" in line, f"no comment on {line!r}"


def test_group_chat_persona_from_counts(machine, tmp_path):
    chat = whatsapp_group(tmp_path / "group.txt", {"Ana": 8, "Ben Ito": 30, "Cy": 12})
    res = init(chat, "--out", tmp_path / "g.yaml")
    assert res.exit_code == 0, res.output
    assert load_recipe(tmp_path / "g.yaml").persona.name == "Ben Ito"
    # the shipped group export: Sam wrote 34 messages, Leo 22, Priya 14
    res = init(SAMPLE / "whatsapp_ios_group.txt", "--out", tmp_path / "ios.yaml")
    assert res.exit_code == 0, res.output
    assert load_recipe(tmp_path / "ios.yaml").persona.name == "Sam Okafor"


def test_ambiguous_without_a_terminal_names_the_candidates(machine, tmp_path):
    out = tmp_path / "x.yaml"
    res = init(SAMPLE / "whatsapp_android.txt", "--out", out)  # Sam 141, Priya 133: too close to call
    assert res.exit_code == 1
    assert "Sam Okafor: 141 messages" in res.output and "Priya: 133 messages" in res.output
    assert "--persona" in res.output and not out.exists()
    res = init(SAMPLE / "whatsapp_android.txt", "--out", out, "--persona", "priya")  # any case
    assert res.exit_code == 0, res.output
    assert load_recipe(out).persona.name == "Priya"


def test_persona_missing_from_a_file_or_unknown(machine, tmp_path):
    res = init(SAMPLE / "whatsapp_android.txt", SAMPLE / "nina_telegram.json", "--persona", "Sam Okafor")
    assert res.exit_code == 1
    assert "nina_telegram.json: Sam Okafor is not among its speakers (Clara (39), Nina Brandt (37))" in res.output
    res = init(SAMPLE / "whatsapp_android.txt", "--persona", "Sam Okafr", "--out", tmp_path / "y.yaml")
    assert res.exit_code == 1 and "closest: 'Sam Okafor'" in res.output


def test_model_by_memory(machine, tmp_path):
    mac_recipe = load_recipe(REPO / "recipes" / "mac-mini-16gb-qwen2.5-7b.yaml")
    machine.now = MAC_16GB
    assert init(*SAM_FILES, "--out", tmp_path / "mac.yaml").exit_code == 0
    mac = load_recipe(tmp_path / "mac.yaml")
    assert mac.model == mac_recipe.model == "mlx-community/Qwen2.5-7B-Instruct-4bit"
    assert mac.budget.device == mac_recipe.budget.device == "m-series-16gb"
    assert (mac.sft.fine_tune_type, mac.sft.rank, mac.sft.grad_checkpoint) == ("dora", 64, True)
    machine.now = SMALL_LINUX
    assert init(*SAM_FILES, "--out", tmp_path / "linux.yaml").exit_code == 0
    small = load_recipe(tmp_path / "linux.yaml")
    assert small.model == "default" and small.budget.device is None
    # the preference stage as the shipped recipes have it (bench/RESULTS.md: twin quality)
    quick = load_recipe(REPO / "recipes" / "quickstart.yaml")
    for mine, shipped in ((mac, mac_recipe), (small, quick)):
        assert mine.pairs.rejected_from == shipped.pairs.rejected_from == "twin"
        assert (mine.pairs.chosen, mine.pairs.twin_samples) == (shipped.pairs.chosen, shipped.pairs.twin_samples)
        assert (mine.pairs.chosen, mine.pairs.twin_samples, mine.dpo.rpo_on) == ("closest", 4, shipped.dpo.rpo_on)
        assert shipped.dpo.rpo_on == "real"
        assert (mine.pairs.style_weight, mine.dpo.select_by) == (shipped.pairs.style_weight, shipped.dpo.select_by)
        assert (shipped.pairs.style_weight, shipped.dpo.select_by) == (0.5, "last")
        assert (mine.dpo.loss_type, mine.dpo.beta, mine.dpo.rpo_alpha, mine.dpo.learning_rate) == (
            shipped.dpo.loss_type,
            shipped.dpo.beta,
            shipped.dpo.rpo_alpha,
            shipped.dpo.learning_rate,
        )
    # an 8 GB Mac: 7B does not fit without giving up rank or layers, a smaller Qwen does
    machine.now = planning.Machine("darwin", True, 8.59, 5.73, 2000.0, "m-series-8gb")
    assert init(*SAM_FILES, "--out", tmp_path / "mac8.yaml").exit_code == 0
    assert load_recipe(tmp_path / "mac8.yaml").model == "mlx-community/Qwen2.5-3B-Instruct-4bit"


def _stats(n_train: int, tokens_each: int = 100) -> dict:
    return {
        "tokens": {"per_sample": {"p99": tokens_each}},
        "splits": {
            "train": {"samples": n_train, "tokens": n_train * tokens_each},
            "valid": {"samples": n_train // 8},
            "test": {"samples": n_train // 8},
        },
    }


def _iters(plan, block="sft") -> int:
    return next(v for k, v, _ in plan.blocks[block] if k == "iters")


def test_iterations_from_data_size_and_hours():
    small, big = planning.make_plan(SMALL_LINUX, _stats(100), None), planning.make_plan(SMALL_LINUX, _stats(4000), None)
    assert _iters(big) > 10 * _iters(small) // 2  # more data, more steps (2 epochs each)
    assert _iters(big, "dpo") > _iters(small, "dpo")
    slow = planning.Machine("linux", False, 8.0, 8.0, gflops=20.0)
    free = planning.make_plan(slow, _stats(4000), None)
    capped = planning.make_plan(slow, _stats(4000), 1.0)
    assert _iters(capped) < _iters(free) and _iters(capped, "dpo") < _iters(free, "dpo")
    assert capped.total_seconds <= 3600 * 1.01 < free.total_seconds
    assert any("fits in 1 h" in (why or "") for k, _, why in capped.blocks["sft"] if k == "iters")
    assert any("less than one pass" in n for n in capped.notes)
    assert not any("training samples" in n for n in big.notes)  # 4000 samples: no too-few warning
    assert any("only 100 training samples" in n for n in small.notes)


def test_sequence_length_from_the_samples():
    short = planning.make_plan(SMALL_LINUX, _stats(500, 100), None)
    long = planning.make_plan(SMALL_LINUX, _stats(500, 700), None)
    seq = lambda p: next(v for k, v, _ in p.blocks["sft"] if k == "max_seq_length")  # noqa: E731
    assert seq(short) == 256 and seq(long) == 1024  # 700 tokens x 1.25 up to a multiple of 256


def test_existing_out_is_kept(machine, tmp_path):
    out = tmp_path / "keep.yaml"
    out.write_text("mine\n")
    res = init(SAMPLE / "whatsapp_ios_group.txt", "--out", out)
    assert res.exit_code == 1 and "--force" in res.output and out.read_text() == "mine\n"
    assert init(SAMPLE / "whatsapp_ios_group.txt", "--out", out, "--force").exit_code == 0


def test_a_data_entrys_aliases_add_spellings_for_that_file(tmp_path):
    from mlx_persona.data.clean import clean
    from mlx_persona.data.ingest import Source

    # Ben writes from his phone's number too: a group export names that a speaker of its own
    chat = str(whatsapp_group(tmp_path / "g.txt", {"Ana": 12, "Ben Ito": 10, "+1 555 0100": 6}))
    alone = clean([Source(chat, None, "Ben Ito")], "Nobody", tmp_path / "a")
    both = clean([Source(chat, None, "Ben Ito", ("+1 555 0100",))], "Nobody", tmp_path / "b")
    assert both["funnel"]["persona_turns"] > alone["funnel"]["persona_turns"]
    assert both["inputs"][0]["persona"] == "Ben Ito / +1 555 0100"
