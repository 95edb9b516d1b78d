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


def write_random_adapter(
    model_dir: Path, out: Path, seed: int = 0, rank: int = 4, scale: float = 20.0, std: float = 0.05
) -> Path:
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
    (out / "adapter_config.json").write_text(
        json.dumps(
            {
                "model": str(model_dir),
                "fine_tune_type": "lora",
                "num_layers": len(model.layers),
                "lora_parameters": params,
            }
        )
    )
    return out


# The other speakers write full, capitalised sentences with "!"; the person answers in lower case.
OTHERS = [
    "Hey Sam! Could you have a look at the deploy checklist before Friday?",
    "Good morning! The build is red again, any idea what happened?",
    "Thanks so much for the review yesterday! Should I merge it now?",
    "Hi! Are we still meeting with the design team this afternoon?",
    "Quick question! Which branch should I base the hotfix on?",
    "Happy Monday! Did you see the new latency numbers from staging?",
    "Hello! Can you approve my access request when you get a minute?",
    "Great news! The customer signed, can we plan the rollout together?",
]
PERSON = [
    "yes. after standup",
    "flaky test, rerun it",
    "merge it",
    "no, moved to thursday",
    "main. tag it after",
    "saw them. p99 is fine",
    "done",
    "sure. tuesday works",
]


def write_chat_split(path: Path, start: int = 0, n: int = 8, turns: int = 3) -> Path:
    """A clean-stage split: conversations of ``turns`` exchanges, one sample per person turn, each
    repeating the turns before it (as data/samples.py writes them)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as f:
        for c in range(start, start + n):
            msgs = [{"role": "system", "content": "You are Sam."}]
            for t in range(turns):
                k = (c * turns + t) % len(OTHERS)
                msgs += [
                    {"role": "user", "content": f"{OTHERS[k]} ({c}.{t})"},
                    {"role": "assistant", "content": f"{PERSON[k]} ({c}.{t})"},
                ]
                f.write(json.dumps({"messages": msgs}) + "\n")
    return path


def hashed_embedder(dim: int = 64):
    """A cheap deterministic stand-in for MiniLM: unit-length bags of hashed character trigrams."""
    import zlib

    import numpy as np

    def embed(texts):
        out = np.zeros((len(texts), dim), np.float32)
        for i, t in enumerate(texts):
            s = f"  {t.lower()} "
            for j in range(len(s) - 2):
                out[i, zlib.crc32(s[j : j + 3].encode()) % dim] += 1.0
        norms = np.linalg.norm(out, axis=1, keepdims=True)
        return out / np.where(norms > 0, norms, 1.0)

    return embed
