"""The SFT stage against bare ``python -m mlx_lm lora``: same data, same settings, same seed.

    python bench/sft_overhead.py [--data DIR] [--iters 100] [--types lora,dora] [--append]

For each fine-tune type, in one run and side by side (started together, so both see the same
load on a shared machine): ``mlx-persona sft`` (parent + preflight + child + metrics +
checkpoints) and ``mlx_lm lora`` started the way ``python -m mlx_lm lora`` starts it (its
``main()``), with only a reporting callback attached so its final train loss can be read without
parsing its console. Both get the same environment (the fast BLAS with
``OPENBLAS_NUM_THREADS=1``, see :func:`bench_env`). Reports wall time, the ratio, both final train losses, our
val loss at the start and the end, and whether the adapter loads in ``python -m mlx_lm generate``.
``--append`` adds the table to bench/RESULTS.md.
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
import time
from pathlib import Path

from _sample_data import clean_sam

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from mlx_persona.core import blas

SETTINGS = {
    "rank": 8,
    "scale": 20.0,
    "num_layers": 16,
    "batch_size": 2,
    "learning_rate": 2e-4,
    "lr_schedule": "cosine",
    "warmup_steps": 10,
    "max_seq_length": 256,
    "mask_prompt": True,
    "steps_per_report": 10,
    "steps_per_eval": 50,
    "val_batches": -1,
    "save_every": 50,
    "seed": 0,
}


def bare_mlx_lm(record: str, argv: list[str]) -> None:
    """Child mode: mlx_lm's own ``lora.main()`` with a callback that appends reports to ``record``."""
    from mlx_lm import lora

    class Record(lora.TrainingCallback):
        def on_train_loss_report(self, info):
            with open(record, "a") as f:
                f.write(json.dumps(info) + "\n")

    lora.get_reporting_callbacks = lambda *a, **k: Record()
    sys.argv = ["mlx_lm.lora", *argv]
    lora.main()


def bench_env() -> dict:
    """The fast BLAS, single-threaded: with MLX's own threads (and a busy shared machine) a
    multi-threaded OpenBLAS spun here; a 2x129-token forward of the default model took 80 s of
    wall time with its default threads and 6.6 s with one (same machine, same minute)."""
    env = blas.fast_blas_env()
    env.setdefault("OPENBLAS_NUM_THREADS", "1")
    return env


def side_by_side(jobs: list[tuple[list[str], Path]]) -> list[float]:
    """Start every command at once; return each one's own wall time."""
    tic, procs, times = time.perf_counter(), [], {}
    for cmd, log in jobs:
        procs.append(
            (
                subprocess.Popen(cmd, env=bench_env(), stdout=open(log, "w"), stderr=subprocess.STDOUT, cwd=ROOT),
                cmd,
                log,
            )
        )
    while len(times) < len(procs):
        for i, (proc, cmd, log) in enumerate(procs):
            if i not in times and proc.poll() is not None:
                if proc.returncode:
                    raise SystemExit(f"failed ({proc.returncode}): {' '.join(cmd)} — see {log}")
                times[i] = time.perf_counter() - tic
        time.sleep(0.2)
    return [times[i] for i in range(len(procs))]


def run_pair(kind: str, model: Path, data: Path, iters: int, work: Path) -> dict:
    from mlx_persona.sft.config import SFTConfig

    cfg = SFTConfig.from_mapping({**SETTINGS, "fine_tune_type": kind, "iters": iters})
    yaml_cfg = work / f"{kind}_mlx_lm.json"  # mlx_lm reads YAML; JSON is YAML
    yaml_cfg.write_text(
        json.dumps({"lora_parameters": cfg.lora_parameters(), "lr_schedule": cfg.lr_schedule_config(iters)})
    )
    bare_cmd = [
        sys.executable,
        __file__,
        "_bare",
        str(work / f"{kind}_bare.jsonl"),
        "--model",
        str(model),
        "--train",
        "--data",
        str(data),
        "--fine-tune-type",
        kind,
        "--iters",
        str(iters),
        "-c",
        str(yaml_cfg),
        "--adapter-path",
        str(work / f"{kind}_bare"),
        "--mask-prompt",
        *[
            a
            for k in (
                "num_layers",
                "batch_size",
                "learning_rate",
                "steps_per_report",
                "steps_per_eval",
                "val_batches",
                "max_seq_length",
                "seed",
            )
            for a in (f"--{k.replace('_', '-')}", str(SETTINGS[k]))
        ],
        "--save-every",
        str(SETTINGS["save_every"]),
    ]
    ours_cmd = [
        sys.executable,
        "-m",
        "mlx_persona.cli",
        "sft",
        "--model",
        str(model),
        "--data",
        str(data),
        "--out",
        str(work / f"{kind}_ours"),
        "--fine-tune-type",
        kind,
        "--iters",
        str(iters),
        *[a for k, v in SETTINGS.items() for a in (f"--{k.replace('_', '-')}", str(v)) if not isinstance(v, bool)],
        "--mask-prompt",
    ]
    t_bare, t_ours = side_by_side([(bare_cmd, work / f"{kind}_bare.log"), (ours_cmd, work / f"{kind}_ours.log")])
    bare = [json.loads(line) for line in (work / f"{kind}_bare.jsonl").read_text().splitlines()]
    ours = [json.loads(line) for line in (work / f"{kind}_ours" / "metrics.jsonl").read_text().splitlines()]
    vals = [e["val_loss"] for e in ours if "val_loss" in e]
    gen = subprocess.run(
        [
            sys.executable,
            "-m",
            "mlx_lm",
            "generate",
            "--model",
            str(model),
            "--adapter-path",
            str(work / f"{kind}_ours"),
            "--prompt",
            "are we still on for friday?",
            "--max-tokens",
            "24",
        ],
        env=bench_env(),
        capture_output=True,
        text=True,
    )
    reply = gen.stdout.split("==========")[1].strip() if gen.returncode == 0 and "==========" in gen.stdout else ""
    return {
        "kind": kind,
        "t_bare": t_bare,
        "t_ours": t_ours,
        "loss_bare": bare[-1]["train_loss"],
        "loss_ours": [e for e in ours if "train_loss" in e][-1]["train_loss"],
        "val_first": vals[0],
        "val_last": vals[-1],
        "generate_ok": gen.returncode == 0,
        "reply": reply.replace("\n", " ")[:80],
        "peak_gb": max(e.get("peak_memory_gb", 0) for e in ours),
    }


def machine() -> str:
    import mlx.core as mx

    load = os.getloadavg()[0]
    return (
        f"{platform.system()} {platform.machine()}, {os.cpu_count()} cores (shared; load {load:.1f}), "
        f"MLX {mx.__version__} on {mx.default_device()}"
    )


def main() -> None:
    if len(sys.argv) > 2 and sys.argv[1] == "_bare":
        return bare_mlx_lm(sys.argv[2], sys.argv[3:])
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", help="cleaned chat JSONL folder (default: clean data/sample first)")
    p.add_argument("--iters", type=int, default=100)
    p.add_argument("--types", default="lora,dora")
    p.add_argument("--append", action="store_true", help="append the table to bench/RESULTS.md")
    a = p.parse_args()
    from mlx_persona.models.resolve import resolve_model

    model = resolve_model("default")
    work = Path(tempfile.mkdtemp(prefix="sft-overhead-"))
    data = Path(a.data) if a.data else work / "data"
    if not a.data:
        clean_sam(data)
    rows = [run_pair(k, model, data, a.iters, work) for k in a.types.split(",")]
    n_train = sum(1 for _ in open(data / "train.jsonl"))
    lines = [
        "## SFT stage vs bare `mlx_lm lora` (issue 5)",
        "",
        f"`python bench/sft_overhead.py --iters {a.iters}` — SmolLM2-135M-Instruct (embedded default, float32), "
        f"cleaned data/sample ({n_train} train conversations), {a.iters} iterations, peer and ours started together, OPENBLAS_NUM_THREADS={bench_env()['OPENBLAS_NUM_THREADS']}, "
        + ", ".join(f"{k} {v}" for k, v in SETTINGS.items())
        + ". "
        f"Date: {datetime.date.today()}, {machine()}. Work folder: {work}.",
        "",
        "| type | mlx_lm lora (peer) | mlx-persona sft | ratio | final train loss peer / ours | val loss step 0 → end | peak GB | adapter in `mlx_lm generate` |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['kind']} | {r['t_bare']:.1f} s | {r['t_ours']:.1f} s | **{r['t_ours'] / r['t_bare']:.3f}×** | "
            f"{r['loss_bare']:.4f} / {r['loss_ours']:.4f} | {r['val_first']:.3f} → {r['val_last']:.3f} | "
            f"{r['peak_gb']:.2f} | {'loads' if r['generate_ok'] else 'FAILED'}: “{r['reply']}” |"
        )
    text = "\n".join(lines) + "\n"
    print(text)
    if a.append:
        with open(ROOT / "bench" / "RESULTS.md", "a") as f:
            f.write("\n" + text)


if __name__ == "__main__":
    main()
