"""Model resolution: a local MLX folder, a hub id, or ``default`` (the embedded model).

Every stage calls :func:`resolve_model` to turn what the user wrote into a local folder.
"""

from __future__ import annotations

from pathlib import Path

import click

from .errors import PersonaError

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
        from .default_model import default_model_dir

        return default_model_dir(pull=pull)
    if spec.count("/") == 1 and not p.exists():
        return _hub_model(spec)
    raise PersonaError(f"model not found: {spec} (give a model folder, a hub id, or 'default')")


def _hub_model(repo: str) -> Path:
    try:
        from huggingface_hub import snapshot_download

        return Path(snapshot_download(repo, allow_patterns=["*.json", "*.safetensors", "*.py", "*.model", "*.tiktoken", "*.txt", "*.jinja"]))
    except Exception as e:  # network errors, unknown repo, no access
        raise PersonaError(f"could not fetch {repo} from the hub ({type(e).__name__}); "
                           "give a local model folder or 'default' instead") from None


@click.group("models")
def models_group() -> None:
    """Pull, import and list models."""
