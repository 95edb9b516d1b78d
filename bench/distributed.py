"""Two ranks against one: DPO steps/s on this box (one BLAS thread per rank), the all-reduce's
share of a step, and a paper estimate for two M4 Mac Minis over Thunderbolt 4.

Each configuration runs the real DPO child (`mlx-persona dpo`, tiny or default model) for a few
steps; steps/s comes from its metrics.jsonl (``sec_per_step``). The all-reduce is timed apart:
the bytes one step sends are the adapter's gradients (float32), summed with ``mx.distributed
.all_sum`` over the same two ranks (ring backend, 127.0.0.1) as the training does.

    python bench/distributed.py [--model default] [--iters 6]

Paper estimate (assumptions printed with it): ring all-reduce of B bytes over 2 hosts moves
2·(N-1)/N·B = B bytes each way per step; Thunderbolt 4 as a TCP bridge carries ~20 Gb/s of its
40 (measured TB4 IP bridges reach 15-25 Gb/s), plus ~0.1 ms latency per message; an M4 Mac Mini
runs the step itself at the speed measured on one Mac, so the step time is t_compute / 2 (half
the batch per host) + the all-reduce.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

ALLREDUCE = """
import sys, time, mlx.core as mx
g = mx.distributed.init()
x = mx.ones((int(sys.argv[1]) // 4,), mx.float32)
mx.eval(mx.distributed.all_sum(x, stream=mx.cpu))
tic = time.perf_counter()
for _ in range(20):
    mx.eval(mx.distributed.all_sum(x, stream=mx.cpu))
if g.rank() == 0:
    print("ALLREDUCE", (time.perf_counter() - tic) / 20, flush=True)
"""


def one_thread_env() -> dict:
    env = os.environ.copy()
    env.update(OPENBLAS_NUM_THREADS="1", OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
    return env


def run_dpo(model: Path, pairs: Path, out: Path, iters: int, hosts: list[str]) -> float:
    """Seconds per step (the mean over the run's reports) of a DPO run."""
    cmd = [sys.executable, "-m", "mlx_persona.cli", "dpo", "--model", str(model), "--pairs", str(pairs)]
    cmd += ["--out", str(out), "--iters", str(iters), "--batch-size", "4", "--steps-per-report", "1"]
    cmd += ["--steps-per-eval", "1000", "--val-batches", "1", "--save-every", "1000", "--num-layers", "4"]
    if len(hosts) > 1:
        cmd += ["--hosts", ",".join(hosts)]
    subprocess.run(cmd, check=True, cwd=ROOT, env=one_thread_env(), capture_output=True)
    rows = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    steps = [r["sec_per_step"] for r in rows if "sec_per_step" in r][1:]  # the first step compiles
    return sum(steps) / len(steps)


def adapter_bytes(out: Path) -> int:
    import mlx.core as mx

    return sum(v.nbytes for v in mx.load(str(out / "last" / "adapters.safetensors")).values())


def allreduce_seconds(nbytes: int) -> float:
    launcher = Path(sys.executable).parent / "mlx.launch"
    with tempfile.NamedTemporaryFile("w", suffix=".py", delete=False) as f:
        f.write(ALLREDUCE)
    res = subprocess.run(
        [
            str(launcher),
            "--hosts",
            "127.0.0.1,127.0.0.1",
            "--backend",
            "ring",
            "--",
            sys.executable,
            f.name,
            str(nbytes),
        ],
        capture_output=True,
        text=True,
        env=one_thread_env(),
    )
    for line in res.stdout.splitlines():
        if line.startswith("ALLREDUCE"):
            return float(line.split()[1])
    raise RuntimeError(res.stderr[-1000:])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="tiny", help="tiny (tests' random llama) or a model folder / 'default'")
    ap.add_argument("--iters", type=int, default=6)
    args = ap.parse_args()
    from dpo_helpers import write_pairs
    from tiny import build_tiny_llama

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        if args.model == "tiny":
            model = build_tiny_llama(tmp / "model", hidden=256, layers=4)
        else:
            from mlx_persona.models.resolve import resolve_model

            model = resolve_model(args.model)
        pairs = write_pairs(tmp / "pairs", n_train=32, n_valid=4)
        t1 = run_dpo(model, pairs, tmp / "one", args.iters, ["127.0.0.1"])
        t2 = run_dpo(model, pairs, tmp / "two", args.iters, ["127.0.0.1", "127.0.0.1"])
        nbytes = adapter_bytes(tmp / "one")
        ar = allreduce_seconds(nbytes)
    tb4_gbps, latency = 20.0, 1e-4
    paper_ar = nbytes * 8 / (tb4_gbps * 1e9) + latency
    paper_step = t1 / 2 + paper_ar
    print(
        f"model {args.model}, DPO batch 4 (global), {args.iters} steps, one BLAS thread per rank, {os.cpu_count()} CPUs"
    )
    print("| ranks | s/step | steps/s | all-reduce s/step | all-reduce share |")
    print("|---|---|---|---|---|")
    print(f"| 1 | {t1:.3f} | {1 / t1:.2f} | – | – |")
    print(f"| 2 (127.0.0.1, ring) | {t2:.3f} | {1 / t2:.2f} | {ar:.4f} | {ar / t2:.1%} |")
    print(f"gradient bytes per step (float32 adapter): {nbytes:,}")
    print(
        f"paper, two M4 Mac Minis over Thunderbolt 4 (ring over a TB bridge at ~{tb4_gbps:.0f} Gb/s, "
        f"{latency * 1e3:.1f} ms per message, each Mac computing at this box's one-process speed): "
        f"all-reduce {paper_ar * 1e3:.2f} ms/step, step {paper_step:.3f} s vs {t1:.3f} s on one, "
        f"speed-up {t1 / paper_step:.2f}x"
    )


if __name__ == "__main__":
    t0 = time.time()
    main()
    print(f"({time.time() - t0:.0f} s)")
