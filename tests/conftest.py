import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from tiny import build_tiny_llama  # noqa: E402


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory) -> Path:
    """A tiny random llama model folder (real BPE tokenizer, ChatML template)."""
    return build_tiny_llama(tmp_path_factory.mktemp("tiny-llama"))


@pytest.fixture(autouse=True)
def _isolated_home(tmp_path, monkeypatch):
    """Each test gets its own MLX_PERSONA_HOME so nothing touches the user's cache."""
    monkeypatch.setenv("MLX_PERSONA_HOME", str(tmp_path / "persona-home"))
