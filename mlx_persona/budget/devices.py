"""Device profiles: how much memory a training run may use on each machine.

On Apple Silicon the limit is Metal's ``recommendedMaxWorkingSetSize``: past it, buffers page
out and a run slows to a crawl or is killed. macOS sets it to 2/3 of RAM up to 32 GB and 3/4 of
RAM above (64 GB); the figures below are that rule, each checked against a value printed by
llama.cpp's ``ggml_metal_init`` (MiB) or MLX's ``mx.device_info()`` on a real Mac (source on each
line). All sizes here are GB = 1e9 bytes, the unit of ``mx.get_peak_memory() / 1e9``.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass

from mlx_persona.core.errors import PersonaError

GIB = 1024**3 / 1e9  # one GiB in GB: working sets are whole fractions of GiB of RAM


@dataclass(frozen=True)
class Device:
    name: str
    usable_gb: float  # memory a training run may use (Metal working set, or RAM)
    source: str  # where the number comes from
    backend: str = "metal"  # whose measured constants the estimate uses (estimate.BACKENDS)


PROFILES: dict[str, Device] = {
    d.name: d
    for d in [
        # 2/3 x 8 GiB = 5.33 GiB: "On an 8 GB Mac the ceiling is ~5.3 GB" (SceneWorks/SceneWorks#1552)
        Device("m-series-8gb", 8 * GIB * 2 / 3, "2/3 of 8 GiB; ~5.3 GiB reported in SceneWorks/SceneWorks#1552"),
        # 2/3 x 16 GiB = 10922.67 MiB: M1 16 GB log in abetlen/llama-cpp-python#687; "~10.67 GB on
        # 16GB M4" in exo-explore/exo#1672
        Device(
            "m-series-16gb",
            16 * GIB * 2 / 3,
            "recommendedMaxWorkingSetSize 10922.67 MiB (abetlen/llama-cpp-python#687; exo-explore/exo#1672)",
        ),
        # 2/3 x 24 GiB = 16 GiB: the 2/3 rule that the 8/16/32 GB logs all follow
        Device("m-series-24gb", 24 * GIB * 2 / 3, "2/3 of 24 GiB, the rule the 8/16/32 GB logs follow"),
        # 2/3 x 32 GiB = 21845.34 MiB: M2 Max 32 GB log in ollama/ollama#434, M1 Max in llama.cpp#2011
        Device(
            "m-series-32gb",
            32 * GIB * 2 / 3,
            "recommendedMaxWorkingSetSize 21845.34 MiB (ollama/ollama#434; ggml-org/llama.cpp#2011)",
        ),
        # 3/4 x 64 GiB = 49152 MiB: M2 Max 64 GB log in ggml-org/llama.cpp#1870
        Device(
            "m-series-64gb", 64 * GIB * 3 / 4, "recommendedMaxWorkingSetSize 49152.00 MiB (ggml-org/llama.cpp#1870)"
        ),
    ]
}


def ram_gb() -> float:
    """This machine's physical RAM in GB."""
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 1e9
    except (ValueError, OSError, AttributeError):  # platforms without these sysconf names
        import psutil  # pragma: no cover

        return psutil.virtual_memory().total / 1e9  # pragma: no cover


def current_device() -> Device:
    """The machine we run on: Metal's working set on macOS, physical RAM elsewhere."""
    if sys.platform == "darwin":
        try:
            import mlx.core as mx

            ws = mx.device_info().get("max_recommended_working_set_size")
            if ws:
                return Device("this-mac", ws / 1e9, "mx.device_info()['max_recommended_working_set_size']")
        except Exception:  # MLX without Metal: fall back to RAM
            pass
    return Device("cpu", ram_gb(), "physical RAM of this machine (sysconf)", "cpu")


def this_backend() -> str:
    """metal on macOS, cpu elsewhere: the backend a run on this machine uses."""
    return "metal" if sys.platform == "darwin" else "cpu"


def get_device(device: str | None = None, memory_gb: float | None = None) -> Device:
    """Resolve ``--device`` / ``--memory-gb``; ``memory_gb`` wins when both are given."""
    if memory_gb is not None:
        if memory_gb <= 0:
            raise PersonaError(f"--memory-gb must be positive, got {memory_gb}")
        return Device(f"{memory_gb:g}gb", float(memory_gb), "--memory-gb", this_backend())
    if device is None:
        return current_device()
    if device == "cpu":
        return Device("cpu", ram_gb(), "physical RAM of this machine (sysconf)", "cpu")
    if device in PROFILES:
        return PROFILES[device]
    names = ", ".join(["cpu", *PROFILES])
    raise PersonaError(f"unknown device {device!r}: use one of {names}, or --memory-gb N")
