"""Our DPO stage vs mlx-lm-lora's ``--train-mode dpo``: same model, pairs, rank, batch, steps.

    python -m mlx_persona.core.blas python bench/dpo_vs_peer.py --peer-python /tmp/peer-venv/bin/python [--iters 20]

The peer (PyPI ``mlx-lm-lora``) lives in its own venv (its pins differ from ours):
``python3.11 -m venv /tmp/peer-venv && /tmp/peer-venv/bin/pip install mlx-lm-lora "mlx[cpu]==0.32.4"``.
It keeps a second full model in memory as the reference and runs four forward passes per step;
ours caches the reference log-probs once and runs chosen + rejected in one batch.

On Linux its trainer reads ``mx.device_info()["max_recommended_working_set_size"]``, a key only
Metal reports; the bench runs it through ``runpy`` after wrapping ``mx.device_info`` to add the
key (the machine's memory size). Both sides get the same environment (the fast BLAS preload).

Pairs: the cleaned sample persona, prompt = last user turn + system line (mlx-lm-lora's layout,
which both sides read the same way), chosen = the person's real reply, rejected = a fixed
assistant-voice reply. seconds/step: mean over report windows after the first (which holds the
compile; the peer's last window is dropped too, its timer restarts at the final validation).
Peak memory: ``mx.get_peak_memory()`` as each side reports it (ours: metrics.jsonl).
"""

from __future__ import annotations

import argparse
import json
import platform
import re
import subprocess
import sys
import tempfile
from datetime import date
from pathlib import Path

from _sample_data import clean_sam

ROOT = Path(__file__).resolve().parent.parent
ASSISTANT_VOICE = [
    "Great question! Let's break this down step by step so you can decide with confidence.",
    "I'd be happy to help you with that! Here are a few things to consider.",
    "Certainly! As an AI assistant, I can offer some general guidance on this topic.",
    "That's a great point. There are several factors that could be relevant here.",
]
PEER_WRAPPER = """
import runpy, sys
import mlx.core as mx
_info = mx.device_info
def device_info():
    d = dict(_info())
    d.setdefault("max_recommended_working_set_size", int(d.get("memory_size", 8 << 30)))
    return d
mx.device_info = device_info
sys.argv = ["mlx_lm_lora.train", "--config", sys.argv[1]]
runpy.run_module("mlx_lm_lora.train", run_name="__main__")
"""


def make_pairs(folder: Path) -> Path:
    clean = folder / "clean"
    clean_sam(clean)
    pairs = folder / "pairs"
    pairs.mkdir()
    for split in ("train", "valid"):
        rows = []
        for i, line in enumerate((clean / f"{split}.jsonl").read_text().splitlines()):
            msgs = json.loads(line)["messages"]
            rows.append(
                {
                    "prompt": msgs[-2]["content"],
                    "chosen": msgs[-1]["content"],
                    "rejected": ASSISTANT_VOICE[i % len(ASSISTANT_VOICE)],
                    "system": msgs[0]["content"],
                }
            )
        (pairs / f"{split}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return pairs


def run_ours(model: Path, pairs: Path, out: Path, a, env) -> dict:
    cfg = {
        "rank": a.rank,
        "scale": 20.0,
        "num_layers": -1,
        "batch_size": a.batch_size,
        "iters": a.iters,
        "learning_rate": 1e-5,
        "steps_per_report": a.report,
        "steps_per_eval": a.iters,
        "val_batches": 1,
        "save_every": a.iters,
        "max_seq_length": 512,
        "seed": 0,
    }
    (out.parent / "ours.json").write_text(json.dumps(cfg))
    subprocess.run(
        [
            sys.executable,
            "-m",
            "mlx_persona.dpo",
            "--model",
            str(model),
            "--pairs",
            str(pairs),
            "--out",
            str(out),
            "--config",
            str(out.parent / "ours.json"),
        ],
        check=True,
        env=env,
        capture_output=True,
    )
    events = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    train = [e for e in events if "sec_per_step" in e]
    return {
        "sec_per_step": sum(e["sec_per_step"] for e in train[1:]) / len(train[1:]),
        "peak_memory_gb": max(e["peak_memory_gb"] for e in train),
    }


def run_peer(peer_python: str, model: Path, pairs: Path, out: Path, a, env) -> dict:
    import yaml

    cfg = {
        "model": str(model),
        "train": True,
        "train_mode": "dpo",
        "train_type": "lora",
        "data": str(pairs),
        "batch_size": a.batch_size,
        "iters": a.iters,
        "num_layers": -1,
        "learning_rate": 1e-5,
        "steps_per_report": a.report,
        "steps_per_eval": 10 * a.iters,
        "val_batches": 1,
        "save_every": 10 * a.iters,
        "max_seq_length": 512,
        "adapter_path": str(out),
        "seed": 0,
        "beta": 0.1,
        "fuse": False,
        "lora_parameters": {"rank": a.rank, "scale": 20.0, "dropout": 0.0},
    }
    (out.parent / "peer.yaml").write_text(yaml.safe_dump(cfg))
    (out.parent / "peer_run.py").write_text(PEER_WRAPPER)
    proc = subprocess.run(
        [peer_python, str(out.parent / "peer_run.py"), str(out.parent / "peer.yaml")],
        env=env,
        capture_output=True,
        text=True,
    )
    log = proc.stdout + proc.stderr
    (out.parent / "peer.log").write_text(log)
    reports = re.findall(r"Iter (\d+): loss [^\n]*?it/s ([\d.]+)[^\n]*?peak_mem ([\d.]+)GB", log)
    if proc.returncode != 0 or len(reports) < 3:
        raise SystemExit(f"peer failed (rc {proc.returncode}); log in {out.parent / 'peer.log'}:\n{log[-2000:]}")
    # its last window is timed from the final validation, not from the previous report: drop it
    timed = reports[1:-1] if len(reports) > 2 else reports[1:]
    return {
        "sec_per_step": sum(1 / float(r[1]) for r in timed) / len(timed),
        "peak_memory_gb": max(float(r[2]) for r in reports),
    }


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--peer-python", default="/tmp/peer-venv/bin/python")
    p.add_argument("--model", default="default")
    p.add_argument("--pairs", help="A pairs folder (default: built from the sample persona).")
    p.add_argument("--iters", type=int, default=20)
    p.add_argument("--report", type=int, default=5, help="Steps per report window.")
    p.add_argument("--rank", type=int, default=8)
    p.add_argument("--batch-size", type=int, default=2)
    p.add_argument("--append", action="store_true", help="Append the figures to bench/RESULTS.md.")
    a = p.parse_args()

    from mlx_persona.core import blas
    from mlx_persona.models.resolve import resolve_model

    model = resolve_model(a.model)
    work = Path(tempfile.mkdtemp(prefix="dpo-vs-peer-"))
    pairs = Path(a.pairs) if a.pairs else make_pairs(work)
    env = blas.fast_blas_env()
    ours = run_ours(model, pairs, work / "ours", a, env)
    peer = run_peer(a.peer_python, model, pairs, work / "peer", a, env)
    row = {
        "model": model.name,
        "pairs": str(pairs),
        "rank": a.rank,
        "batch_size": a.batch_size,
        "iters": a.iters,
        "ours": ours,
        "peer": peer,
        "memory_ratio": round(ours["peak_memory_gb"] / peer["peak_memory_gb"], 3),
        "step_time_ratio": round(ours["sec_per_step"] / peer["sec_per_step"], 3),
        "machine": platform.machine(),
        "date": date.today().isoformat(),
        "work": str(work),
    }
    print(json.dumps(row))
    if a.append:
        cmd = f"python -m mlx_persona.core.blas python bench/dpo_vs_peer.py --iters {a.iters} --rank {a.rank} --batch-size {a.batch_size}"
        with open(ROOT / "bench" / "RESULTS.md", "a") as f:
            f.write(
                f"\n| `{cmd}` | {row['date']} | {row['model']} | {ours['peak_memory_gb']:.3f} / {peer['peak_memory_gb']:.3f} GB "
                f"(**{row['memory_ratio']}×**) | {ours['sec_per_step']:.2f} / {peer['sec_per_step']:.2f} s "
                f"(**{row['step_time_ratio']}×**) |\n"
            )


if __name__ == "__main__":
    main()
