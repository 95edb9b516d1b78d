"""Tiny DPO pair files and fast settings for the pairs/DPO tests."""

from __future__ import annotations

import json
import random
from pathlib import Path

PROMPTS = ["should we ship?", "why is it slow?", "can you review my PR?", "is the cache wrong?", "how are you?"]
CHOSEN = ["yeah ship it.", "no. check the ttl.", "tests pass, merge after lunch.", "the cache is wrong, not the query."]
REJECTED = ["Great question! Let's break down the problem step by step.", "I'd be happy to help you with that request."]

# every knob resume depends on: report windows, eval cadence, checkpoints, a cosine schedule with warmup
FAST = {
    "rank": 4,
    "num_layers": -1,
    "batch_size": 2,
    "iters": 12,
    "learning_rate": 2e-3,
    "steps_per_report": 2,
    "steps_per_eval": 4,
    "save_every": 3,
    "max_seq_length": 96,
    "seed": 3,
    "lr_schedule": "cosine",
    "warmup_steps": 2,
    "reference_batch_size": 3,
}


def write_pairs(folder: Path, n_train: int = 12, n_valid: int = 5, seed: int = 0, twin_every: int = 0) -> Path:
    """Pairs in the pairs stage's layout; with ``twin_every`` n, every n-th line's chosen reply is
    marked as the twin's (``chosen_from: twin``, text ``twin reply <i>``), the others as real."""
    rng = random.Random(seed)
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    for split, n in (("train", n_train), ("valid", n_valid)):
        with open(folder / f"{split}.jsonl", "w") as f:
            for i in range(n):
                rec = {"prompt": rng.choice(PROMPTS), "chosen": rng.choice(CHOSEN), "rejected": rng.choice(REJECTED)}
                if i % 2:
                    rec["system"] = "You are Sam."
                if i % 3 == 0:  # multi-turn context: messages win over prompt
                    rec["messages"] = [
                        {"role": "user", "content": "hi"},
                        {"role": "assistant", "content": "yo"},
                        {"role": "user", "content": rec["prompt"]},
                    ]
                if twin_every:
                    twin = i % twin_every == twin_every - 1
                    rec["chosen_from"] = "twin" if twin else "real"
                    rec["chosen"] = f"twin reply {i}" if twin else rec["chosen"]
                f.write(json.dumps(rec) + "\n")
    return folder
