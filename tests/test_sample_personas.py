"""The two sample personas: files in sync with their generators, and opposite styles after cleaning.

Sam (terse, lower-case, no emoji) and Nina (long, warm, capitalised, "!" and emoji) exist so that
a twin that only learned "be short" shows on one of them. These tests hold the sample data to
that: Nina's habits must survive the clean stage, and the two must stay far apart.
"""

from __future__ import annotations

import importlib.util
import json
import statistics
import sys
from pathlib import Path

import pytest

from mlx_persona.data.clean import CleanConfig, clean
from mlx_persona.data.style import habits, word_count
from mlx_persona.runner.recipe import load_recipe

ROOT = Path(__file__).resolve().parent.parent
SAMPLE = ROOT / "data" / "sample"
NINA_FILES = [SAMPLE / "nina_whatsapp_de.txt", SAMPLE / "nina_telegram.json"]
SAM_FILES = [SAMPLE / n for n in ("whatsapp_android.txt", "script.csv", "agent_logs.jsonl", "telegram_result.json")]
QUICKSTART_CLEAN = CleanConfig(context_turns=6, max_tokens=512)  # the quickstart's and nina.yaml's clean block


def load_generator():
    sys.path.insert(0, str(ROOT / "data"))
    try:
        spec = importlib.util.spec_from_file_location("make_samples", ROOT / "data" / "make_samples.py")
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        return module
    finally:
        sys.path.remove(str(ROOT / "data"))


def replies(out: Path) -> dict[str, list[str]]:
    return {
        s: [json.loads(line)["messages"][-1]["content"] for line in (out / f"{s}.jsonl").read_text().splitlines()]
        for s in ("train", "valid", "test")
    }


@pytest.fixture(scope="module")
def cleaned(tmp_path_factory):
    out = tmp_path_factory.mktemp("personas")
    nina = clean(NINA_FILES, ["Nina Brandt", "Nina"], out / "nina", QUICKSTART_CLEAN)
    sam = clean(SAM_FILES, ["Sam Okafor", "Sam", "SAM"], out / "sam", QUICKSTART_CLEAN)
    return {"nina": (nina, replies(out / "nina")), "sam": (sam, replies(out / "sam"))}


def test_generators_reproduce_the_sample_files_byte_for_byte():
    files = load_generator().files()
    assert {"whatsapp_android.txt", "nina_whatsapp_de.txt", "nina_telegram.json"} <= set(files)
    for name, text in files.items():
        assert (SAMPLE / name).read_bytes() == text.encode("utf-8"), (
            f"data/sample/{name} differs: run data/make_samples.py"
        )


def test_nina_splits_are_not_tiny(cleaned):
    stats, by_split = cleaned["nina"]
    assert stats["warnings"] == 0
    assert sum(len(r) for r in by_split.values()) >= 110
    for split in ("valid", "test"):
        assert len(by_split[split]) >= 10 and stats["splits"][split]["conversations"] >= 3, split
    # the German export's dates are read day-first: days of silence split the chats into many conversations
    assert sum(stats["splits"][s]["conversations"] for s in by_split) >= 30
    # what the exports carry besides her replies: the speakerless German notice and a call (system
    # lines), stickers (meta), a few short acks (under min_reply_chars), bursts merged into one turn
    assert stats["dropped"]["system-line"] == 2 and stats["dropped"]["meta"] > 0 and stats["dropped"]["min-length"] > 0


def test_nina_keeps_her_emoji_and_exclamation_marks(cleaned):
    _, by_split = cleaned["nina"]
    all_replies = [r for rs in by_split.values() for r in rs]
    h = habits(all_replies)
    assert h["share_with_emoji"] == 1.0 and all("!" in r for r in all_replies)
    assert h["share_lowercase_start"] == 0.0 and h["questions_per_100_words"] > 3
    assert any("\u200d" in r for r in all_replies)  # emoji joined by a zero-width joiner survive normalising
    assert not any("<Media omitted>" in r or "\u00a0" in r for r in all_replies)


def test_the_two_personas_have_opposite_styles(cleaned):
    nina = [r for rs in cleaned["nina"][1].values() for r in rs]
    sam = [r for rs in cleaned["sam"][1].values() for r in rs]
    assert statistics.median(map(word_count, nina)) >= 3 * statistics.median(map(word_count, sam))
    hn, hs = habits(nina), habits(sam)
    assert hs["share_with_emoji"] == 0.0 and hs["share_lowercase_start"] > 0.8
    assert hn["exclamations_per_100_words"] > 5 * max(hs["exclamations_per_100_words"], 0.1)


def test_nina_recipe_matches_the_quickstart_but_for_the_persona_and_data():
    nina, quick = load_recipe(ROOT / "recipes" / "nina.yaml"), load_recipe(ROOT / "recipes" / "quickstart.yaml")
    assert nina.persona.name == "Nina Brandt" and [Path(d.path) for d in nina.data] == NINA_FILES
    for block in ("model", "stages", "split", "budget", "sft", "fuse", "pairs", "dpo", "eval"):
        assert getattr(nina, block) == getattr(quick, block), block
    assert nina.clean.persona_line != quick.clean.persona_line  # the persona's system line fills it
    nina.clean.persona_line = quick.clean.persona_line
    assert nina.clean == quick.clean
