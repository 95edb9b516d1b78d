"""Tiny chat datasets and shared settings for the SFT and fuse tests."""

from __future__ import annotations

import json
import random
from pathlib import Path

REPLIES = [
    "yeah ship it.",
    "no. check the ttl.",
    "tests pass, merge after lunch.",
    "the cache is wrong, not the query.",
    "Paris.",
    "ok 🙂",
    "def add(a, b): return a + b",
]
PROMPTS = [
    "should we ship?",
    "why is it slow?",
    "what is the capital of France?",
    "can you review my PR?",
    "is the cache wrong?",
    "how are you?",
]

# Small, fast settings: every knob that matters for resume is exercised (eval cadence, checkpoints,
# report windows that straddle checkpoints, dropout for the PRNG key).
FAST = {
    "fine_tune_type": "lora",
    "rank": 4,
    "num_layers": -1,
    "batch_size": 2,
    "iters": 24,
    "learning_rate": 5e-3,
    "steps_per_report": 3,
    "steps_per_eval": 5,
    "val_batches": 2,
    "save_every": 4,
    "max_seq_length": 64,
    "seed": 7,
    "dropout": 0.1,
    "lr_schedule": "cosine",
    "warmup_steps": 3,
}


def write_chat_data(
    folder: Path, n_train: int = 14, n_valid: int = 6, seed: int = 0, splits=("train", "valid", "test")
) -> Path:
    """mlx_lm chat JSONL train/valid/test files of short persona-style exchanges."""
    rng = random.Random(seed)
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    sizes = {"train": n_train, "valid": n_valid, "test": n_valid}
    for split in splits:
        with open(folder / f"{split}.jsonl", "w") as f:
            for _ in range(sizes[split]):
                msgs = [
                    {"role": "user", "content": rng.choice(PROMPTS)},
                    {"role": "assistant", "content": rng.choice(REPLIES)},
                ]
                f.write(json.dumps({"messages": msgs}, ensure_ascii=False) + "\n")
    return folder
