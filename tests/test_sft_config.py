"""SFTConfig: typed, checked, one-line errors; the derived mlx_lm values."""

from __future__ import annotations

import pytest

from mlx_persona.core.errors import PersonaError
from mlx_persona.sft.config import SFTConfig


def test_yaml_strings_and_derived_values(tmp_path):
    f = tmp_path / "recipe.yaml"
    f.write_text(
        "data: {}\nsft:\n  learning_rate: 1e-4\n  alpha: 16\n  rank: 8\n  epochs: 2.5\n"
        "  keys: self_attn.q_proj, self_attn.v_proj\n  lr_schedule: cosine\n  warmup_steps: 10\n"
    )
    cfg = SFTConfig.load(f, overrides={"batch_size": "4", "mask_prompt": "true", "seed": None})
    assert cfg.learning_rate == 1e-4 and cfg.batch_size == 4 and cfg.mask_prompt is True and cfg.seed == 0
    assert cfg.lora_parameters() == {
        "rank": 8,
        "scale": 2.0,
        "dropout": 0.0,
        "keys": ["self_attn.q_proj", "self_attn.v_proj"],
    }
    assert cfg.resolve_iters(101) == 63  # ceil(2.5 * 25 batches)
    assert cfg.lr_schedule_config(100) == {
        "name": "cosine_decay",
        "arguments": [1e-4, 90, 0.0],
        "warmup": 10,
        "warmup_init": 0.0,
    }
    assert SFTConfig().lr_schedule_config(100) is None
    assert SFTConfig(warmup_steps=5).lr_schedule_config(100)["name"] == "linear_schedule"


@pytest.mark.parametrize(
    "data, needle",
    [
        ({"learning_rate": "fast"}, "sft.learning_rate: expected a number, got 'fast'"),
        ({"rank": 4.5}, "sft.rank: expected a whole number"),
        ({"iters": 0}, "sft.iters: must be at least 1"),
        ({"num_layers": -2}, "sft.num_layers"),
        ({"optimizer": "lion"}, "sft.optimizer: must be one of adam, adamw"),
        ({"mask_prompt": "maybe"}, "expected true or false"),
        ({"dropout": 1.5}, "sft.dropout"),
        ({"batchsize": 2}, "did you mean 'batch_size'"),
        ({"keys": 3}, "expected a list of names"),
    ],
)
def test_bad_values_are_one_line(data, needle):
    with pytest.raises(PersonaError) as e:
        SFTConfig.from_mapping(data)
    assert needle in e.value.message and "\n" not in e.value.message
