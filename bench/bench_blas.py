"""Matmul throughput of MLX's CPU backend: the mlx-cpu wheel's bundled BLAS against the
OpenBLAS that mlx-persona preloads, measured in the same run, each in its own process.

    python bench/bench_blas.py [--n 2048] [--repeats 5]

Prints one line per BLAS and the ratio. The figure in bench/RESULTS.md comes from this script.
"""

import argparse
import json
import os
import platform
import subprocess
import sys

PROBE = """
import json, sys
from mlx_persona.core.blas import fast_blas_active
from mlx_persona.doctor import matmul_gflops
n, r = int(sys.argv[1]), int(sys.argv[2])
print(json.dumps({"active": fast_blas_active(), "gflops": matmul_gflops(n, r)}))
"""


def measure(fast: bool, n: int, repeats: int) -> dict:
    from mlx_persona.core.blas import fast_blas_env

    base = {k: v for k, v in os.environ.items() if k not in ("LD_PRELOAD", "MLX_PERSONA_BLAS_REEXEC")}
    env = fast_blas_env(base) if fast else {**base, "MLX_PERSONA_FAST_BLAS": "0"}
    out = subprocess.run(
        [sys.executable, "-c", PROBE, str(n), str(repeats)], env=env, capture_output=True, text=True, check=True
    )
    return json.loads(out.stdout)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=2048, help="matrix side (float32, n x n @ n x n)")
    ap.add_argument("--repeats", type=int, default=5, help="timed multiplications per measurement")
    args = ap.parse_args()
    bundled = measure(False, args.n, args.repeats)
    fast = measure(True, args.n, args.repeats)
    assert fast["active"] and not bundled["active"], (fast, bundled)
    print(f"machine: {platform.machine()} {os.cpu_count()} cores, {platform.system()}")
    print(f"bundled BLAS : {bundled['gflops']:8.1f} GFLOP/s")
    print(f"OpenBLAS     : {fast['gflops']:8.1f} GFLOP/s")
    print(f"ratio        : {fast['gflops'] / bundled['gflops']:8.1f}x")


if __name__ == "__main__":
    main()
