"""Model resolution: a local MLX folder, a hub id, or ``default`` (the embedded model)."""

import click


@click.group("models")
def models_group() -> None:
    """Pull, import and list models."""
