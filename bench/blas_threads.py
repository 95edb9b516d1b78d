"""Decode-step time of the default model with OpenBLAS's default threads against one thread.

    python bench/blas_threads.py

Each setting runs in its own child (the thread count is read when OpenBLAS loads): a 48-token
prefill and 5 decode steps at batch 1 and batch 8, SmolLM2-135M-Instruct float32. On a CPU that
other processes keep busy, OpenBLAS's spinning worker threads are what makes eval slow; the eval
children therefore default to ``OPENBLAS_NUM_THREADS=1``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

CHILD = r"""
import json, sys, time
import mlx.core as mx
from mlx_lm import load
from mlx_lm.models.cache import make_prompt_cache
model, _ = load(sys.argv[1])
out = {}
for b in (1, 8):
    cache = make_prompt_cache(model)
    tic = time.perf_counter(); mx.eval(model(mx.array([[1] * 48] * b), cache=cache)); prefill = time.perf_counter() - tic
    tic = time.perf_counter()
    for _ in range(5):
        mx.eval(model(mx.array([[1]] * b), cache=cache))
    out[b] = {"prefill_s": round(prefill, 3), "decode_step_s": round((time.perf_counter() - tic) / 5, 3)}
print(json.dumps(out))
"""


def main() -> None:
    from mlx_persona.core.blas import fast_blas_env
    from mlx_persona.models.resolve import resolve_model

    model = str(resolve_model("default"))
    print(f"1-min load average: {os.getloadavg()[0]:.1f}, {os.cpu_count()} cores")
    for threads in (None, "1"):
        env = fast_blas_env()
        env.pop("OPENBLAS_NUM_THREADS", None)
        if threads:
            env["OPENBLAS_NUM_THREADS"] = threads
        res = json.loads(
            subprocess.run([sys.executable, "-c", CHILD, model], env=env, capture_output=True, text=True, check=True)
            .stdout.strip()
            .splitlines()[-1]
        )
        label = f"OPENBLAS_NUM_THREADS={threads}" if threads else "OpenBLAS default threads"
        for b, r in res.items():
            print(
                f"{label:<28} batch {b}: prefill 48 tok {r['prefill_s']:.3f} s, decode step {r['decode_step_s']:.3f} s"
            )


if __name__ == "__main__":
    main()
