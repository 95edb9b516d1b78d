"""One settings protocol for every block: ``from_mapping(data, where)`` with one unknown-key
message, ``validate(where)`` that labels its messages and returns nothing, ``click_options``."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
from click.testing import CliRunner

from mlx_persona.cli import cli
from mlx_persona.core.errors import PersonaError
from mlx_persona.core.settings import Settings, Where
from mlx_persona.dpo.config import DPOConfig
from mlx_persona.runner.recipe import BLOCKS, TOP_KEYS, EvalBlock, PersonaBlock, SourceBlock
from mlx_persona.sft.config import SFTConfig

SAMPLE = Path(__file__).parent.parent / "data" / "sample"
ALL_BLOCKS = [*BLOCKS.values(), PersonaBlock, SourceBlock]


def test_every_recipe_block_is_a_settings_block_of_the_recipe():
    assert set(BLOCKS) <= set(TOP_KEYS)
    for cls in ALL_BLOCKS:
        assert issubclass(cls, Settings) and dataclasses.is_dataclass(cls) and cls.block, cls
        for f in dataclasses.fields(cls):
            assert f.metadata.get("help"), f"{cls.__name__}.{f.name} has no help"


@pytest.mark.parametrize("cls", ALL_BLOCKS, ids=lambda c: c.__name__)
def test_an_unknown_key_is_one_message_for_every_block(cls):
    first = dataclasses.fields(cls)[0].name
    with pytest.raises(PersonaError) as e:
        cls.from_mapping({first + "x": 1})
    assert e.value.message == f"{cls.block}.{first}x: unknown setting '{first}x' (did you mean '{first}'?)"


@pytest.mark.parametrize(
    "cls, bad, needle",
    [
        (BLOCKS["clean"], {"system": "sometimes"}, "system must be one of"),
        (BLOCKS["pairs"], {"top_p": 0}, "top_p: must be in (0, 1]"),
        (SFTConfig, {"rank": 0}, "rank: must be at least 1"),
        (DPOConfig, {"beta": 0}, "beta: must be positive"),
        (EvalBlock, {"max_tokens": 0}, "must be at least 1"),
    ],
)
def test_validate_takes_where_and_returns_nothing(cls, bad, needle):
    ok = cls.from_mapping({})
    assert ok.validate("x.yaml:3: " + cls.block) is None
    with pytest.raises(PersonaError) as e:
        cls.from_mapping(bad, "x.yaml:3: " + cls.block)
    assert e.value.message.startswith("x.yaml:3: " + cls.block) and needle in e.value.message
    with pytest.raises(PersonaError) as e:
        dataclasses.replace(ok, **bad).validate()  # without where: the block's own name
    assert e.value.message.startswith(cls.block) and needle in e.value.message


def test_where_names_file_and_line(tmp_path):
    f = tmp_path / "sft.yaml"
    f.write_text("rank: 4\nlerning_rate: 1e-4\n")  # a bare block: keys at the top
    with pytest.raises(PersonaError) as e:
        SFTConfig.load(f)
    assert e.value.message.startswith(f"{f}:2: sft.lerning_rate: unknown setting")
    assert str(Where(("sft", "rank"), f, {("sft",): 5})) == f"{f}:5: sft.rank"  # nearest known line
    assert str(Where(("sft", "rank"), f)) == f"{f}: sft.rank"


def test_click_options_are_built_one_way():
    """Every field is an option named after it; choices become click choices; values are
    checked by from_mapping, so a bad number is the project's one-line error (exit 1)."""
    sft = next(c for c in cli.commands["sft"].params if c.name == "rank")
    assert sft.opts == ["--rank"] and sft.help == SFTConfig.help("rank")
    pairs = {p.name: p for p in cli.commands["pairs"].params}
    assert {f.name for f in dataclasses.fields(BLOCKS["pairs"])} <= set(pairs)
    assert list(pairs["chosen"].type.choices) == ["real", "twin", "closest"]
    clean = {p.name: p for p in cli.commands["clean"].params}
    assert list(clean["dedup"].type.choices) == ["near", "exact", "off"]
    res = CliRunner().invoke(
        cli, ["clean", str(SAMPLE / "script.csv"), "--persona", "Sam", "--out", "/nonexistent/o", "--seed", "abc"]
    )
    assert res.exit_code == 1 and res.output.strip() == "Error: clean.seed: expected a number, got 'abc'"


def test_optional_fields_read_in_either_spelling():
    """``Optional[int]`` and ``int | None`` (what the linter writes) are the same optional type."""
    from mlx_persona.core.settings import coerce, split_optional

    assert (
        split_optional("Optional[int]") == split_optional("int | None") == split_optional("None | int") == (True, "int")
    )
    assert split_optional("int") == (False, "int")
    for kind in ("Optional[int]", "int | None"):
        assert coerce("x", kind, None) is None and coerce("x", kind, "null") is None and coerce("x", kind, "7") == 7
