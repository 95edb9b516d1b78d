"""``mlx-persona export TARGET --to gguf|ollama|lmstudio|mlx``: one command per door out.

TARGET is what ``chat`` takes: a run folder (its twin) or an MLX model folder (or ``default``).
The export runs in this process: GGUF writing streams one tensor at a time and never holds the
whole model as float32, so it needs no child of its own.
"""

from __future__ import annotations

from pathlib import Path

import click

from mlx_persona.export.config import TARGETS
from mlx_persona.models.gguf_export import QUANTS


@click.command("export")
@click.argument("target")
@click.option("--to", "to", required=True, type=click.Choice(TARGETS), help="Where the twin goes.")
@click.option(
    "--quant", default="f16", show_default=True, type=click.Choice(QUANTS), help="GGUF storage (gguf, ollama)."
)
@click.option(
    "--out",
    type=click.Path(path_type=Path),
    help="Folder to create (default: RUN/export/<to>/, or ./<model>-<to>/ for a model folder).",
)
@click.option("--overwrite", is_flag=True, help="Replace --out if it exists (only once the new one is complete).")
@click.option("--temperature", default=0.7, show_default=True, type=float, help="Ollama: PARAMETER temperature.")
@click.option("--num-ctx", default=2048, show_default=True, type=int, help="Ollama: PARAMETER num_ctx.")
@click.option(
    "--lmstudio-dir",
    type=click.Path(path_type=Path),
    help="LM Studio's models folder (default: $LMSTUDIO_MODELS_DIR, else ~/.lmstudio/models).",
)
@click.option("--link", is_flag=True, help="LM Studio: link the weights instead of copying them.")
def export_command(target, to, quant, out, overwrite, temperature, num_ctx, lmstudio_dir, link):
    """Export a run's twin (or a model folder) as GGUF, for Ollama, for LM Studio, or as an MLX folder."""
    from mlx_persona.export.targets import export, resolve_source

    source = resolve_source(target)
    export(
        source,
        to,
        out=out,
        quant=quant,
        temperature=temperature,
        num_ctx=num_ctx,
        lmstudio_dir=lmstudio_dir,
        link=link,
        overwrite=overwrite,
        log=click.echo,
    )
