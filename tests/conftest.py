import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from tiny import build_tiny_llama


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory) -> Path:
    """A tiny random llama model folder (real BPE tokenizer, ChatML template)."""
    return build_tiny_llama(tmp_path_factory.mktemp("tiny-llama"))


@pytest.fixture(autouse=True)
def _isolated_home(tmp_path, monkeypatch):
    """Each test gets its own MLX_PERSONA_HOME so nothing touches the user's cache."""
    monkeypatch.setenv("MLX_PERSONA_HOME", str(tmp_path / "persona-home"))


@pytest.fixture(scope="session")
def default_model_dir() -> Path:
    """The real embedded default model (SmolLM2-135M-Instruct), converted once and kept in
    .pytest_cache/persona-home between runs (or $MLX_PERSONA_TEST_HOME)."""
    import os

    from mlx_persona.models.default import pull_default

    home = os.environ.get("MLX_PERSONA_TEST_HOME") or str(
        Path(__file__).parent.parent / ".pytest_cache" / "persona-home"
    )
    old = os.environ.get("MLX_PERSONA_HOME")
    os.environ["MLX_PERSONA_HOME"] = home
    try:
        return pull_default()
    finally:
        if old is None:
            os.environ.pop("MLX_PERSONA_HOME", None)
        else:
            os.environ["MLX_PERSONA_HOME"] = old
