"""Where mlx-persona keeps things on the user's machine."""

import os
from pathlib import Path


def persona_home() -> Path:
    """The cache root: ``$MLX_PERSONA_HOME``, default ``~/.cache/mlx-persona``."""
    env = os.environ.get("MLX_PERSONA_HOME")
    if env:
        return Path(env).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg).expanduser() if xdg else Path.home() / ".cache"
    return base / "mlx-persona"


def models_dir() -> Path:
    """Converted and imported models, one folder each."""
    return persona_home() / "models"
