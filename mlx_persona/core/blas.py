"""A fast BLAS for MLX's CPU backend on Linux.

The ``mlx[cpu]`` wheel links a reference BLAS that multiplies float32 matrices at a few GFLOP/s.
The OpenBLAS inside the ``cmeel-openblas`` wheel exports the same plain ``cblas_*`` symbols, so
preloading it (``LD_PRELOAD``) makes every MLX matmul use it. Its one missing piece is
``libgfortran.so.5``, which the mlx-cpu wheel ships under a hashed name: we link it under its
plain name in a cache folder and put that folder on ``LD_LIBRARY_PATH``.

A preload only takes effect at process start, so:

- :func:`fast_blas_env` returns the environment for child processes (every MLX stage);
- :func:`ensure_fast_blas` re-executes the current process once with that environment (the CLI
  calls it first thing).

Set ``MLX_PERSONA_FAST_BLAS=0`` to opt out. On macOS (Accelerate) nothing is done.

OpenBLAS runs one thread unless ``OPENBLAS_NUM_THREADS`` says otherwise: its worker threads
spin while they wait, and on a 2-core machine with anything else running that made forward
passes 10-50x slower (``bench/blas_threads.py``); one thread still gives ~20x the bundled BLAS.

``python -m mlx_persona.core.blas CMD ARGS...`` runs any command with the fast BLAS (the test suite
uses it).
"""

from __future__ import annotations

import glob
import os
import sys
import sysconfig
from collections.abc import Mapping
from pathlib import Path

OPT_OUT_VAR = "MLX_PERSONA_FAST_BLAS"
_REEXEC_MARK = "MLX_PERSONA_BLAS_REEXEC"


def wanted() -> bool:
    """True on Linux unless the user opted out."""
    if not sys.platform.startswith("linux"):
        return False
    return os.environ.get(OPT_OUT_VAR, "1").strip().lower() not in ("0", "false", "no", "off")


def _site_dirs() -> list[Path]:
    dirs = [Path(sysconfig.get_paths()["purelib"]), Path(sysconfig.get_paths()["platlib"])]
    return list(dict.fromkeys(d for d in dirs if d.is_dir()))


def openblas_path() -> Path | None:
    """The OpenBLAS shared library shipped by ``cmeel-openblas``, if installed."""
    for site in _site_dirs():
        for name in ("libopenblas.so.0", "libopenblas.so"):
            p = site / "cmeel.prefix" / "lib" / name
            if p.exists():
                return p
    return None


def _mlx_libs_dir() -> Path | None:
    for site in _site_dirs():
        d = site / "mlx_cpu.libs"
        if d.is_dir():
            return d
    return None


def _gfortran_link_dir() -> Path | None:
    """A folder holding ``libgfortran.so.5`` under its plain name (a link into mlx_cpu.libs)."""
    libs = _mlx_libs_dir()
    if libs is None:
        return None
    found = sorted(glob.glob(str(libs / "libgfortran-*.so*")))
    if not found:
        return None
    from mlx_persona.core.paths import persona_home

    link_dir = persona_home() / "blas"
    link = link_dir / "libgfortran.so.5"
    target = Path(found[0])
    try:
        link_dir.mkdir(parents=True, exist_ok=True)
        if link.is_symlink() and Path(os.readlink(link)) != target:
            link.unlink()
        if not link.exists():
            tmp = link_dir / f".libgfortran.{os.getpid()}"
            if tmp.is_symlink():
                tmp.unlink()
            os.symlink(target, tmp)
            os.replace(tmp, link)
    except OSError:
        return None
    return link_dir


def fast_blas_env(base: Mapping[str, str] | None = None) -> dict[str, str]:
    """``base`` (default: this process's environment) plus the preload, where it applies."""
    env = dict(os.environ if base is None else base)
    if not wanted():
        return env
    lib = openblas_path()
    if lib is None:
        return env
    preload = [p for p in env.get("LD_PRELOAD", "").split() if p]
    if str(lib) not in preload:
        env["LD_PRELOAD"] = " ".join([str(lib), *preload])
    env.setdefault("OPENBLAS_NUM_THREADS", "1")  # a user's own setting wins
    extra = [str(d) for d in (_gfortran_link_dir(), _mlx_libs_dir()) if d is not None]
    paths = [p for p in env.get("LD_LIBRARY_PATH", "").split(":") if p]
    env["LD_LIBRARY_PATH"] = ":".join(dict.fromkeys(extra + paths))
    return env


def fast_blas_active() -> bool:
    """True when an OpenBLAS is mapped into this process."""
    try:
        with open("/proc/self/maps") as f:
            return "libopenblas" in f.read()
    except OSError:
        return False


def ensure_fast_blas(argv: list[str] | None = None) -> None:
    """Re-exec this process once with the fast BLAS preloaded (Linux only; no-op otherwise)."""
    if not wanted() or fast_blas_active() or os.environ.get(_REEXEC_MARK):
        return
    env = fast_blas_env()
    if "LD_PRELOAD" not in env or openblas_path() is None:
        return
    env[_REEXEC_MARK] = "1"
    args = [sys.executable, *(sys.orig_argv[1:] if argv is None else argv)]
    try:
        os.execve(sys.executable, args, env)
    except OSError:
        return  # keep going on the slow BLAS rather than fail


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    if not argv:
        print("usage: python -m mlx_persona.core.blas COMMAND [ARGS...]", file=sys.stderr)
        raise SystemExit(2)
    env = fast_blas_env()
    env[_REEXEC_MARK] = "1"
    os.execvpe(argv[0], argv, env)


if __name__ == "__main__":
    main()
