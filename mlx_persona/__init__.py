"""mlx-persona: turn one person's chat history into a local persona twin."""

__version__ = "0.1.0"
