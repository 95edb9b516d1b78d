"""Recipe loading: typed blocks, overrides, and one-line errors that point at the line."""

from pathlib import Path

import pytest
from click.testing import CliRunner

from mlx_persona.cli import cli
from mlx_persona.core.errors import PersonaError
from mlx_persona.runner.recipe import load_recipe

SAMPLE = Path(__file__).parent.parent / "data" / "sample"
REPO = Path(__file__).parent.parent


def write(tmp_path, text: str) -> Path:
    p = tmp_path / "r.yaml"
    p.write_text(text)
    return p


BASE = f"""name: t
persona: {{name: Sam Okafor, system: "You are Sam."}}
model: default
data:
  - {{path: {SAMPLE / "whatsapp_android.txt"}}}
sft:
  rank: 4
  learning_rate: 1.0e-4
"""


def test_valid_recipe_resolves_blocks_and_overrides(tmp_path):
    r = load_recipe(write(tmp_path, BASE), overrides=("sft.rank=32", "sft.mask_prompt=true"))
    assert r.sft.rank == 32 and r.sft.mask_prompt is True and r.sft.learning_rate == 1e-4
    assert r.clean.persona_line == "You are Sam."  # the persona line feeds the cleaner
    assert Path(r.data[0].path).is_absolute() and r.stages[0] == "clean"
    assert r.raw["sft"]["rank"] == 32


def test_unknown_key_names_the_closest_and_the_line(tmp_path):
    p = write(tmp_path, BASE + "  learnig_rate: 2.0e-4\n")
    with pytest.raises(PersonaError) as e:
        load_recipe(p)
    assert f"{p}:9" in e.value.message and "did you mean 'learning_rate'" in e.value.message


def test_unknown_top_level_block(tmp_path):
    with pytest.raises(PersonaError, match="did you mean 'sft'"):
        load_recipe(write(tmp_path, BASE + "sfft: {}\n"))


def test_wrong_type_names_expected_type_and_line(tmp_path):
    p = write(tmp_path, BASE.replace("rank: 4", "rank: four"))
    with pytest.raises(PersonaError) as e:
        load_recipe(p)
    assert f"{p}:7" in e.value.message and "expected a number" in e.value.message


def test_eval_samples_need_a_temperature(tmp_path):
    r = load_recipe(write(tmp_path, BASE), overrides=("eval.samples=4", "eval.temperature=0.7"))
    assert (r.eval.samples, r.eval.temperature) == (4, 0.7)
    with pytest.raises(PersonaError, match="eval: samples 4 needs a temperature above 0"):
        load_recipe(write(tmp_path, BASE), overrides=("eval.samples=4",))


def test_generation_lengths_unset_are_sized_later_and_zero_is_an_error(tmp_path):
    r = load_recipe(write(tmp_path, BASE))
    assert r.eval.max_tokens is None and r.pairs.max_tokens is None  # sized on the person's replies
    assert load_recipe(write(tmp_path, BASE), overrides=("pairs.max_tokens=100",)).pairs.max_tokens == 100
    with pytest.raises(PersonaError, match="eval: limit, max_tokens and batch_size must be at least 1"):
        load_recipe(write(tmp_path, BASE), overrides=("eval.max_tokens=0",))
    with pytest.raises(PersonaError, match="pairs.max_tokens: must be at least 1"):
        load_recipe(write(tmp_path, BASE), overrides=("pairs.max_tokens=0",))


def test_missing_data_file_and_bad_override(tmp_path):
    with pytest.raises(PersonaError, match="data file not found: nope.txt"):
        load_recipe(write(tmp_path, BASE.replace(str(SAMPLE / "whatsapp_android.txt"), "nope.txt")))
    with pytest.raises(PersonaError, match="expected KEY=VALUE"):
        load_recipe(write(tmp_path, BASE), overrides=("sft.rank",))


def test_run_command_errors_before_any_stage(tmp_path):
    runs = tmp_path / "runs"
    res = CliRunner().invoke(cli, ["run", str(write(tmp_path, BASE + "  learnig_rate: 1\n")), "--runs", str(runs)])
    assert res.exit_code == 1 and "did you mean" in res.output and "Traceback" not in res.output
    assert not runs.exists()


@pytest.mark.parametrize(
    "name", ["quickstart.yaml", "mac-mini-16gb-qwen2.5-7b.yaml", "tinyllama-dialogue.yaml", "compare-adapters.yaml"]
)
def test_shipped_recipes_load(name):
    path = REPO / "recipes" / name
    if not path.exists():
        pytest.skip(f"{name} not shipped")
    r = load_recipe(path)
    assert r.persona.name and r.data
