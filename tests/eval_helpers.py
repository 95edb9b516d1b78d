"""Stand-in models and test splits for the eval and report tests (and bench/bench_eval.py)."""

from __future__ import annotations

import json
from pathlib import Path

EXCHANGES = [
    ("should we ship?", "yeah ship it. tests pass, merge after lunch."),
    ("why is it slow?", "no idea yet. profile first 🙂"),
    ("what is the capital of France?", "Paris."),
    ("can you review my PR?", "on it after standup"),
    ("is the cache wrong?", "the cache is wrong, not the query. check the ttl."),
    ("how are you?", "tired. on call week"),
    ("friday deploy?", "no. monday."),
    ("lunch?", "12:30, usual place"),
]


def write_test_split(path: Path, exchanges=EXCHANGES, n: int | None = None) -> Path:
    """mlx_lm chat JSONL, one (prompt, reply) conversation per line, cycling ``exchanges`` to ``n``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    n = len(exchanges) if n is None else n
    with open(path, "w") as f:
        for i in range(n):
            q, a = exchanges[i % len(exchanges)]
            msgs = [{"role": "user", "content": q}, {"role": "assistant", "content": a}]
            f.write(json.dumps({"messages": msgs}, ensure_ascii=False) + "\n")
    return path


def write_random_adapter(model_dir: Path, out: Path, seed: int = 0, rank: int = 4, scale: float = 20.0,
                         std: float = 0.05) -> Path:
    """A LoRA adapter folder for ``model_dir`` with random (non-zero) A and B: a stand-in for a
    trained SFT/DPO adapter that changes the model's replies."""
    import mlx.core as mx
    from mlx.utils import tree_flatten
    from mlx_lm import load
    from mlx_lm.tuner.utils import linear_to_lora_layers

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    model, _ = load(str(model_dir))
    model.freeze()
    params = {"rank": rank, "scale": scale, "dropout": 0.0}
    linear_to_lora_layers(model, len(model.layers), params)
    mx.random.seed(seed)
    weights = {k: mx.random.normal(v.shape) * std for k, v in tree_flatten(model.trainable_parameters())}
    mx.save_safetensors(str(out / "adapters.safetensors"), weights)
    (out / "adapter_config.json").write_text(json.dumps(
        {"model": str(model_dir), "fine_tune_type": "lora", "num_layers": len(model.layers), "lora_parameters": params}))
    return out
