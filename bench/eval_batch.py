"""The eval's generation at several batch sizes, on a run's own test split.

    python -m mlx_persona.core.blas python bench/eval_batch.py RUN [--models base,sft]
        [--batch-sizes 8,16,32] [--samples 4] [--temperature 0.7] [--max-tokens 64]

RUN is a run folder (``runs/NAME``) with ``eval/generations/test_used.jsonl`` (the conversations
its eval stage used) and ``sft_fused``. For each model and batch size, the eval child's own call
(:func:`mlx_persona.eval.model.evaluate_model`, perplexity off) generates ``samples`` replies per
test prompt, and the script prints the wall time of the generation and the tokens it made. The
replies differ between batch sizes (the same seed, but the random numbers fall to other rows), so
the token counts differ a little too.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from mlx_persona.core import layout
from mlx_persona.eval.model import evaluate_model
from mlx_persona.eval.models import ModelSpec
from mlx_persona.models.resolve import resolve_model


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("run", type=Path, help="Run folder with eval/generations/test_used.jsonl and sft_fused.")
    p.add_argument(
        "--models", default="base,sft", help="Comma-separated: base (the default model), sft (RUN/sft_fused)."
    )
    p.add_argument("--batch-sizes", default="8,16,32")
    p.add_argument("--samples", type=int, default=4)
    p.add_argument("--temperature", type=float, default=0.7)
    p.add_argument("--max-tokens", type=int, default=64)
    a = p.parse_args()
    test = a.run / layout.EVAL_DIR / layout.GENERATIONS_DIR / layout.EVAL_TEST_USED
    convs = [json.loads(line) for line in test.read_text().splitlines() if line.strip()]
    folders = {"base": resolve_model("default"), "sft": a.run / layout.SFT_FUSED_DIR}
    print(f"{len(convs)} test prompts x {a.samples} replies, up to {a.max_tokens} tokens, temperature {a.temperature}")
    for name in a.models.split(","):
        for batch in map(int, a.batch_sizes.split(",")):
            tic = time.perf_counter()
            out = evaluate_model(
                ModelSpec(name=name, model=folders[name]),
                convs,
                max_tokens=a.max_tokens,
                batch_size=batch,
                with_perplexity=False,
                samples=a.samples,
                temperature=a.temperature,
                log=lambda _m: None,
            )
            speed = out["speed"]
            print(
                f"{name} batch {batch}: generation {speed['wall_s']:.1f} s, {speed['generated_tokens']} tokens "
                f"(child call {time.perf_counter() - tic:.1f} s)",
                flush=True,
            )


if __name__ == "__main__":
    main()
