"""Eval of three models on 50 test prompts on the embedded default model, against a naive loop.

    python bench/bench_eval.py [--prompts 50] [--max-tokens 64] [--sequential-models base] [--append]

Stand-ins for the trained stages: SFT and DPO are random-init LoRA adapters (rank 8, every
layer, non-zero A and B) on SmolLM2-135M-Instruct, so their replies differ from the base's.
The test split is the first N exchanges of the sample persona (data/persona_bank.py).

1. ``mlx-persona eval`` as users run it: one child per model, perplexity + batched generation
   (mlx_lm BatchGenerator), then MiniLM similarity/style in the parent. Target: < 5 minutes.
2. The same generations with the naive loop (one ``stream_generate`` per prompt, perplexity
   off), for the batched/sequential ratio of generation time; by default on the base model only
   (``--sequential-models base,sft,dpo`` for all three; the loop is the slow part of the bench).

``--append`` adds the figures to bench/RESULTS.md.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT / "data"))


def make_run(run: Path, model_dir: Path, n: int) -> Path:
    from eval_helpers import write_random_adapter, write_test_split
    from persona_bank import EXCHANGES

    write_test_split(run / "clean" / "test.jsonl", EXCHANGES, n)
    (run / "recipe.yaml").write_text(f"name: bench-eval\nmodel: {model_dir}\n")
    write_random_adapter(model_dir, run / "sft", seed=1, rank=8, scale=10.0, std=0.02)
    write_random_adapter(model_dir, run / "dpo", seed=2, rank=8, scale=10.0, std=0.02)
    return run


def timed_eval(run: Path, out: Path, models=("base", "sft", "dpo"), **kw) -> tuple[dict, float]:
    from mlx_persona.eval.evaluate import run_eval
    from mlx_persona.eval.models import find_models

    tic = time.perf_counter()
    specs, skipped = find_models(run)
    specs = [s for s in specs if s.name in models]
    result = run_eval(run / "clean" / "test.jsonl", out, specs, skipped, log=lambda m: print(m, flush=True), **kw)
    return result, time.perf_counter() - tic


def replies(eval_dir: Path, name: str) -> list[str]:
    return [json.loads(line)[name] for line in (eval_dir / "samples.jsonl").read_text().splitlines()]


def gen_seconds(result: dict) -> float:
    return sum(m["speed"]["wall_s"] for m in result["models"].values())


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--prompts", type=int, default=50)
    ap.add_argument("--max-tokens", type=int, default=64)
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument(
        "--sequential-models", default="base", help="Models for the naive loop, comma-separated ('' for none)."
    )
    ap.add_argument("--append", action="store_true", help="Append the figures to bench/RESULTS.md.")
    a = ap.parse_args()

    from mlx_persona.models.resolve import resolve_model

    model_dir = resolve_model("default")
    work = Path(tempfile.mkdtemp(prefix="bench-eval-"))
    run = make_run(work / "run", model_dir, a.prompts)
    load = os.getloadavg()[0]
    batched, t_batched = timed_eval(run, run / "eval", max_tokens=a.max_tokens, batch_size=a.batch_size)
    assert not batched["skipped"] and len(batched["models"]) == 3, batched["skipped"]
    lines = [
        f"eval (batched, with perplexity and MiniLM): {t_batched:.1f} s for {len(batched['models'])} models "
        f"x {a.prompts} prompts"
    ]
    rows = []
    seq = None
    seq_models = [m for m in a.sequential_models.split(",") if m]
    if seq_models:
        seq, t_seq = timed_eval(
            run, work / "eval_seq", models=seq_models, max_tokens=a.max_tokens, mode="sequential", perplexity=False
        )
        t_b = sum(batched["models"][m]["speed"]["wall_s"] for m in seq_models)
        t_s = gen_seconds(seq)
        lines.append(
            f"generation of {'+'.join(seq_models)} only: batched {t_b:.1f} s, naive sequential loop {t_s:.1f} s "
            f"-> batched is {t_s / t_b:.2f}x faster"
        )
    for name, m in batched["models"].items():
        s = m["speed"]
        row = [
            name,
            f"{m['perplexity']['perplexity']:.2f}",
            f"{m['similarity']['mean']:.3f}",
            f"{s['wall_s']:.1f}",
            f"{s['tokens_per_sec']:.1f}",
            f"{s['ttft_median_s']:.2f}",
        ]
        if seq and name in seq["models"]:
            q = seq["models"][name]["speed"]
            same = sum(x == y for x, y in zip(replies(run / "eval", name), replies(work / "eval_seq", name)))
            row += [
                f"{q['wall_s']:.1f}",
                f"{q['tokens_per_sec']:.1f}",
                f"{q['ttft_median_s']:.2f}",
                f"{q['wall_s'] / s['wall_s']:.2f}x",
                f"{same}/{a.prompts}",
            ]
        elif seq:
            row += ["–"] * 5
        rows.append(row)
    head = ["model", "perplexity", "similarity", "batched gen s", "batched tok/s", "batched TTFT med s"]
    if seq:
        head += ["sequential gen s", "sequential tok/s", "sequential TTFT med s", "ratio", "identical replies"]
    table = "\n".join(
        ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)] + ["| " + " | ".join(r) + " |" for r in rows]
    )
    print("\n".join(lines))
    print(table)
    if a.append:
        machine = f"{platform.system()} {platform.machine()}, {os.cpu_count()} cores"
        date = datetime.date.today().isoformat()
        cmd = "python bench/bench_eval.py " + " ".join(sys.argv[1:])
        text = (
            f"\n## Eval of three models (issue 7)\n\n`{cmd.replace(' --append', '').strip()}` — {a.prompts} test prompts "
            f"(sample persona), SmolLM2-135M-Instruct float32 base + two random-init LoRA adapters (r8, all layers) "
            f"as SFT/DPO stand-ins, greedy, max {a.max_tokens} tokens, batch {a.batch_size}. Date: {date}, "
            f"{machine} (dev-linux, shared: 1-min load average {load:.1f} at start).\n\n"
            + "".join(f"- {line}\n" for line in lines)
            + "\n"
            + table
            + "\n"
        )
        with open(ROOT / "bench" / "RESULTS.md", "a") as f:
            f.write(text)
    print(f"run folder: {run}")


if __name__ == "__main__":
    main()
