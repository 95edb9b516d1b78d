"""Batched pair generation vs a sequential ``mlx_lm.generate`` loop: same model, prompts, settings.

    python -m mlx_persona.core.blas python bench/pairs_throughput.py [--prompts 16] [--max-tokens 64] [--batch-size 8]
    python -m mlx_persona.core.blas python bench/pairs_throughput.py --samples 4 [--model runs/NAME/sft_fused]

Both sides run greedy (temperature 0) so they do the same work, on the first N prompts of the
cleaned sample persona (``mlx-persona clean data/sample/* --persona "Sam Okafor" --persona Sam``,
rebuilt into a temp folder when --data is not given), chat template with generation prompt,
stopping at the end-of-turn token or ``--max-tokens``. Tokens per second = generated tokens /
wall time including prefill. Prints one JSON line; ``--append`` adds a row to bench/RESULTS.md.

``--samples K`` (K > 1) times what the pairs stage does with ``twin_samples: K`` instead: K sampled
replies per prompt (temperature 0.7, top-p 0.9, the pairs defaults), through mlx_lm's
``BatchGenerator`` fed the prompt K times with mlx_lm's own sampler (the peer: every copy
prefilled, the vocabulary sorted for top-p at every step) against ``generate_batched`` (a prompt
prefilled once for its K copies, top-p among the 1024 most likely tokens).
"""

from __future__ import annotations

import argparse
import json
import platform
import tempfile
import time
from datetime import date
from pathlib import Path

from _sample_data import clean_sam

ROOT = Path(__file__).resolve().parent.parent


def cleaned_sample(data: str | None) -> Path:
    if data:
        return Path(data)
    out = Path(tempfile.mkdtemp(prefix="pairs-bench-")) / "clean"
    clean_sam(out)
    return out


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--model", default="default")
    p.add_argument("--data", help="A cleaned folder (default: clean the sample persona now).")
    p.add_argument("--prompts", type=int, default=16)
    p.add_argument("--max-tokens", type=int, default=64)
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument(
        "--samples", type=int, default=1, help="Sampled replies per prompt (>1: the pairs stage's comparison)."
    )
    p.add_argument("--append", action="store_true", help="Append the figures to bench/RESULTS.md.")
    a = p.parse_args()

    import mlx.core as mx
    from mlx_lm import generate, load
    from mlx_lm.sample_utils import make_sampler

    from mlx_persona.models.generate import chat_prompt, generate_batched
    from mlx_persona.models.resolve import resolve_model
    from mlx_persona.pairs.prompts import chat_messages, read_prompts

    model_dir = resolve_model(a.model)
    model, tok = load(str(model_dir))
    prompts, _ = read_prompts(cleaned_sample(a.data))
    ids = [chat_prompt(tok, chat_messages(q)) for q in prompts[: a.prompts]]
    if a.samples > 1:
        return compare_samples(a, model_dir, model, tok, ids)
    greedy = make_sampler(temp=0.0)
    generate(model, tok, ids[0], max_tokens=4, sampler=greedy)  # warm-up, not timed

    tic, seq_tokens = time.perf_counter(), 0
    for prompt in ids:
        text = generate(model, tok, prompt, max_tokens=a.max_tokens, sampler=greedy)
        seq_tokens += len(tok.encode(text, add_special_tokens=False))
    seq_s = time.perf_counter() - tic

    _, stats = generate_batched(model, tok, ids, a.max_tokens, a.batch_size, greedy)
    row = {
        "model": model_dir.name,
        "prompts": len(ids),
        "max_tokens": a.max_tokens,
        "batch_size": a.batch_size,
        "sequential_tokens": seq_tokens,
        "sequential_s": round(seq_s, 2),
        "sequential_tps": round(seq_tokens / seq_s, 1),
        "batched_tokens": stats["generated_tokens"],
        "batched_s": stats["seconds"],
        "batched_tps": round(stats["tokens_per_sec"], 1),
        "speedup": round(stats["tokens_per_sec"] / (seq_tokens / seq_s), 2),
        "machine": platform.machine(),
        "device": str(mx.default_device()),
        "date": date.today().isoformat(),
    }
    print(json.dumps(row))
    if a.append:
        cmd = f"python -m mlx_persona.core.blas python bench/pairs_throughput.py --prompts {a.prompts} --max-tokens {a.max_tokens} --batch-size {a.batch_size}"
        with open(ROOT / "bench" / "RESULTS.md", "a") as f:
            f.write(
                f"\n| `{cmd}` | {row['date']} | {row['model']} | {row['prompts']} × ≤{a.max_tokens} tok | "
                f"{row['sequential_tps']} | {row['batched_tps']} | **{row['speedup']}×** |\n"
            )


def peer_batch(model, tok, ids: list[list[int]], max_tokens: int, batch_size: int, sampler) -> tuple[int, float]:
    """mlx_lm's ``BatchGenerator`` alone, every prompt inserted as given; (generated tokens, seconds)."""
    from mlx_lm.generate import BatchGenerator

    gen = BatchGenerator(
        model,
        max_tokens=max_tokens,
        stop_tokens=[[t] for t in tok.eos_token_ids],
        sampler=sampler,
        completion_batch_size=batch_size,
        prefill_batch_size=batch_size,
    )
    tic, made = time.perf_counter(), 0
    try:
        gen.insert(ids, [max_tokens] * len(ids))
        while responses := gen.next_generated():
            made += sum(r.finish_reason != "stop" for r in responses)
    finally:
        gen.close()
    return made, time.perf_counter() - tic


def compare_samples(a, model_dir: Path, model, tok, ids: list[list[int]]) -> None:
    import mlx.core as mx
    from mlx_lm.sample_utils import make_sampler as mlx_lm_sampler

    from mlx_persona.models.generate import generate_batched, make_sampler

    copies = [p for p in ids for _ in range(a.samples)]
    mx.random.seed(0)
    peer_tokens, peer_s = peer_batch(
        model, tok, copies, a.max_tokens, a.batch_size, mlx_lm_sampler(temp=0.7, top_p=0.9)
    )
    mx.random.seed(0)
    _, stats = generate_batched(model, tok, copies, a.max_tokens, a.batch_size, make_sampler(0.7, 0.9))
    row = {
        "model": str(model_dir),
        "prompts": len(ids),
        "samples": a.samples,
        "max_tokens": a.max_tokens,
        "batch_size": a.batch_size,
        "peer_tokens": peer_tokens,
        "peer_s": round(peer_s, 1),
        "ours_tokens": stats["generated_tokens"],
        "ours_s": round(stats["seconds"], 1),
        "ours_prefilled_tokens": stats["prompt_tokens"],
        "speedup": round(peer_s / stats["seconds"], 2),
        "machine": platform.machine(),
        "device": str(mx.default_device()),
        "date": date.today().isoformat(),
    }
    print(json.dumps(row))


if __name__ == "__main__":
    main()
