"""Estimate vs measured peak memory for a grid of training configurations.

For each configuration: write the model's config.json to a temp folder, ask
``mlx_persona.budget.estimate.estimate`` (and, where importable, the mlx-train-perf planner), then train
a few real steps with mlx_lm's trainer in a child process (bench/_train_probe.py) on a random
model of that shape and read ``mx.get_peak_memory()``. Prints a markdown table; ``--append``
adds it to bench/RESULTS.md with the command, machine and date.

    python -m mlx_persona.core.blas python bench/budget_accuracy.py [--quick] [--append]
    python bench/budget_accuracy.py --device metal     # on a Mac: the table to send back, which
                                                       # refits estimate.BACKENDS["metal"]
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from mlx_persona.budget.estimate import estimate

# The tests' tiny llama (tests/tiny.py) and the embedded default SmolLM2-135M, float32 as on Linux.
TINY = {
    "model_type": "llama",
    "hidden_size": 64,
    "num_hidden_layers": 2,
    "intermediate_size": 128,
    "num_attention_heads": 4,
    "num_key_value_heads": 2,
    "vocab_size": 400,
    "tie_word_embeddings": True,
    "rms_norm_eps": 1e-5,
    "rope_theta": 10000.0,
    "torch_dtype": "float32",
}
SMOL = {
    "model_type": "llama",
    "hidden_size": 576,
    "num_hidden_layers": 30,
    "intermediate_size": 1536,
    "num_attention_heads": 9,
    "num_key_value_heads": 3,
    "vocab_size": 49152,
    "tie_word_embeddings": True,
    "rms_norm_eps": 1e-5,
    "rope_theta": 100000.0,
    "torch_dtype": "float32",
}

# (model, fine_tune_type, rank, num_layers, batch, seq, grad_checkpoint)
GRID = [
    ("tiny", "lora", 8, 2, 2, 128, False),
    ("tiny", "full", 8, 2, 8, 512, False),
    ("tiny", "dora", 16, 1, 4, 1024, True),
    ("smol", "lora", 8, 30, 2, 256, False),
    ("smol", "lora", 8, 16, 1, 512, False),
    ("smol", "lora", 16, 16, 2, 512, True),
    ("smol", "lora", 64, 4, 4, 256, False),
    ("smol", "dora", 8, 8, 2, 256, False),
    ("smol", "full", 8, 2, 2, 256, False),
    ("smol", "lora", 32, 30, 1, 1024, True),
    ("smol", "lora", 8, 1, 8, 128, False),
    ("smol", "lora", 8, 30, 4, 512, True),
    ("smol", "dora", 16, 30, 1, 1024, False),
]
QUICK = [0, 1, 2, 3, 10]  # a smoke subset that runs in about a minute


def peer_estimate(cfg: dict, ftype: str, rank: int, layers: int, batch: int, seq: int, ckpt: bool):
    """mlx-train-perf's planner (LoRA on q,v only by its own assumption); None if absent."""
    try:
        from mlx_train_perf.plan.calibration import load_calibration
        from mlx_train_perf.plan.estimate import ModelShape, TrainConfig, estimate_peak
    except Exception:
        return None
    if ftype != "lora":
        return None
    shape = ModelShape.from_config(cfg)
    tc = TrainConfig(
        batch=batch,
        seq_len=seq,
        dtype="float32",
        lora_rank=rank,
        lora_layers=layers,
        grad_checkpoint=ckpt,
        impl="naive",
    )
    peak, _ = estimate_peak(shape, tc, load_calibration())
    return peak / 1e9


def measure(cfg: dict, ftype: str, rank: int, layers: int, batch: int, seq: int, ckpt: bool) -> dict:
    spec = {
        "config": cfg,
        "fine_tune_type": ftype,
        "rank": rank,
        "num_layers": layers,
        "batch_size": batch,
        "max_seq_length": seq,
        "grad_checkpoint": ckpt,
        "iters": 2,
    }
    out = subprocess.run(
        [sys.executable, str(HERE / "_train_probe.py"), json.dumps(spec)],
        capture_output=True,
        text=True,
        env=os.environ.copy(),
    )
    for line in out.stdout.splitlines():
        if line.startswith("RESULT "):
            return json.loads(line[7:])
    raise RuntimeError(out.stderr[-2000:])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="run a 5-configuration subset")
    ap.add_argument("--append", action="store_true", help="append the table to bench/RESULTS.md")
    ap.add_argument(
        "--device", choices=["cpu", "metal"], default="cpu", help="whose constants to estimate with (metal: on a Mac)"
    )
    args = ap.parse_args()
    profile = "cpu" if args.device == "cpu" else "m-series-64gb"  # a metal-backend profile; memory is not used
    import mlx.core as mx

    print(
        f"# {platform.machine()} {platform.system()} {platform.mac_ver()[0]}, mlx {mx.__version__} "
        f"({mx.default_device()}), constants: {args.device}",
        flush=True,
    )
    rows = [GRID[i] for i in QUICK] if args.quick else GRID
    lines = [
        "| model | type | rank | layers | batch | seq | ckpt | estimate GB | measured GB | est/meas "
        "| error | mlx-train-perf GB | its error |",
        "|" + "---|" * 13,
    ]
    worst = 0.0
    for name, ftype, rank, layers, batch, seq, ckpt in rows:
        cfg = TINY if name == "tiny" else SMOL
        with tempfile.TemporaryDirectory() as tmp:
            Path(tmp, "config.json").write_text(json.dumps(cfg))
            est = estimate(
                tmp,
                device=profile,
                fine_tune_type=ftype,
                rank=rank,
                num_layers=layers,
                batch_size=batch,
                max_seq_length=seq,
                grad_checkpoint=ckpt,
            ).total_gb
        got = measure(cfg, ftype, rank, layers, batch, seq, ckpt)["peak_gb"]
        peer = peer_estimate(cfg, ftype, rank, layers, batch, seq, ckpt)
        err = est - got
        # the goal: within ±10%, or ±50 MB for runs under 1 GB
        ok = abs(err) <= (0.05 if got < 1 else 0.10 * got)
        rel = f"{err / got:+.1%}" + ("" if ok else " ✗")
        worst = max(worst, abs(err / got))
        peer_s = f"{peer:.3f}" if peer is not None else "n/a"
        peer_e = f"{(peer - got) / got:+.1%}" if peer is not None else "n/a"
        lines.append(
            f"| {name} | {ftype} | {rank} | {layers} | {batch} | {seq} | {'on' if ckpt else 'off'} "
            f"| {est:.3f} | {got:.3f} | {est / got:.2f} | {rel} | {peer_s} | {peer_e} |"
        )
        print(lines[-1], flush=True)
    table = "\n".join(lines)
    print(table)
    if args.append:
        import mlx.core as mx

        cmd = "python -m mlx_persona.core.blas python bench/budget_accuracy.py" + (" --quick" if args.quick else "")
        cmd += f" --device {args.device}" if args.device != "cpu" else ""
        head = (
            f"\n## Memory estimate vs measured peak ({datetime.date.today()})\n\n"
            f"Command: `{cmd}`  \nMachine: {platform.machine()} {platform.system()}, "
            f"{os.cpu_count()} CPUs, mlx {mx.__version__} ({mx.default_device()}), float32 random "
            f"llama models, mlx_lm trainer, 2 steps, Adam. Worst relative error: {worst:.1%}.\n\n"
        )
        with open(HERE / "RESULTS.md", "a") as f:
            f.write(head + table + "\n")


if __name__ == "__main__":
    main()
