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


@pytest.fixture(scope="session")
def tiny_variant(tmp_path_factory):
    """``tiny_variant(arch, group_size)``: a tiny model folder, built once per session.

    ``arch``: ``llama`` (tests/tiny.py's), ``qwen2`` (tied embeddings, as Qwen2.5 up to 3B) or
    ``qwen2-untied`` (its own lm_head, as Qwen2.5-7B); ``group_size`` None keeps float32, 32 or
    64 quantizes it to 4 bits as mlx_lm's converter does (the Mac recipe's base is such a model)."""
    from tiny import build_tiny_qwen2, quantize_model_dir

    built: dict = {}

    def make(arch: str = "llama", group_size: int | None = None) -> Path:
        key = (arch, group_size)
        if key not in built:
            if group_size is not None:
                src = make(arch, None)
                built[key] = quantize_model_dir(src, tmp_path_factory.mktemp(f"{arch}-q4g{group_size}"), group_size)
            elif arch == "llama":
                built[key] = build_tiny_llama(tmp_path_factory.mktemp("llama"))
            elif arch in ("qwen2", "qwen2-untied"):
                built[key] = build_tiny_qwen2(tmp_path_factory.mktemp(arch), tie=arch == "qwen2")
            else:
                raise ValueError(f"unknown tiny architecture {arch}")
        return built[key]

    return make
