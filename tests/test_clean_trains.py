"""Every reader's cleaned output loads with mlx_lm's ``load_dataset`` and trains one LoRA step."""

import json
import math
from pathlib import Path
from types import SimpleNamespace

import pytest

from mlx_persona.data.clean import CleanConfig, clean

SAMPLE = Path(__file__).resolve().parent.parent / "data" / "sample"
FILES = [
    "whatsapp_android.txt",
    "whatsapp_ios_group.txt",
    "script.csv",
    "agent_logs.jsonl",
    "telegram_result.json",
    "sharegpt.jsonl",
    "alpaca.json",
    "completion.jsonl",
]


@pytest.fixture(scope="module")
def tiny(tiny_model_dir):
    from mlx_lm import load
    from mlx_lm.tuner.utils import linear_to_lora_layers

    model, tokenizer = load(str(tiny_model_dir))
    model.freeze()
    linear_to_lora_layers(model, 2, {"rank": 4, "scale": 10.0, "dropout": 0.0})
    return model, tokenizer


@pytest.mark.parametrize("name", FILES)
def test_reader_output_loads_and_trains_one_step(name, tiny, tmp_path):
    import mlx.optimizers as optim
    from mlx_lm.tuner.datasets import CacheDataset, load_dataset
    from mlx_lm.tuner.trainer import TrainingArgs, TrainingCallback, train

    out = tmp_path / "data"
    stats = clean([SAMPLE / name], ["Sam Okafor", "Sam"], out, CleanConfig(max_tokens=400))
    for split, info in stats["splits"].items():  # an empty split has no file (mlx_lm fails on empty files)
        assert (out / f"{split}.jsonl").exists() == (info["samples"] > 0)
    model, tokenizer = tiny
    args = SimpleNamespace(data=str(out), train=True, test=False, mask_prompt=True)
    train_set, valid_set, _ = load_dataset(args, tokenizer)
    assert len(train_set) == len((out / "train.jsonl").read_text().splitlines()) > 0
    first = json.loads((out / "train.jsonl").read_text().splitlines()[0])
    assert first["messages"][-1]["role"] == "assistant"

    losses = []

    class Record(TrainingCallback):
        def on_train_loss_report(self, info):
            losses.append(info["train_loss"])

    before = {k: v.tolist() for k, v in _lora(model).items()}
    train(
        model,
        optim.Adam(learning_rate=1e-2),
        CacheDataset(train_set),
        None,
        TrainingArgs(
            batch_size=1,
            iters=1,
            steps_per_report=1,
            max_seq_length=512,
            adapter_file=str(tmp_path / "adapters.safetensors"),
        ),
        training_callback=Record(),
    )
    assert len(losses) == 1 and math.isfinite(losses[0]) and losses[0] > 0
    after = {k: v.tolist() for k, v in _lora(model).items()}
    assert any(before[k] != after[k] for k in before)  # the step changed the adapter


def _lora(model):
    from mlx.utils import tree_flatten

    return {k: v for k, v in tree_flatten(model.trainable_parameters()) if k.endswith("lora_b")}
