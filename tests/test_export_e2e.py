"""Export on the real default model (SmolLM2-135M-Instruct): transformers' GGUF loader reads our
F16 file and decodes the same greedy tokens as the MLX model, Q8_0 agrees on the top token, the
GGUF tokenizer gives the MLX ids, and the Modelfile TEMPLATE renders its chat template (with the
default system prompt SmolLM2's template writes when there is none)."""

from __future__ import annotations

import numpy as np
import pytest
from export_helpers import PROMPTS, TEXTS, argmax_mlx, argmax_torch, greedy_mlx, greedy_torch, hf_gguf, prompt_ids
from go_template import ollama_render

from mlx_persona.models.gguf_export import write_gguf

pytestmark = pytest.mark.e2e

CONV = [
    {"role": "system", "content": "You are Sam Okafor. Reply the way Sam Okafor does."},
    {"role": "user", "content": "should we ship friday?"},
    {"role": "assistant", "content": "no. monday, after the tests."},
    {"role": "user", "content": "why not friday?"},
]


@pytest.fixture(scope="module")
def mlx_default(default_model_dir):
    from mlx_lm import load

    return load(str(default_model_dir))


def test_default_model_f16_greedy_tokens_and_tokenizer(default_model_dir, mlx_default, tmp_path):
    model, tokenizer = mlx_default
    path = write_gguf(default_model_dir, tmp_path / "smollm2-f16.gguf", "f16")
    hf_model, hf_tok = hf_gguf(path)
    for prompt in PROMPTS:  # 5 prompts x 20 tokens
        ids = prompt_ids(tokenizer, prompt)
        assert greedy_torch(hf_model, ids) == greedy_mlx(model, ids), prompt
    for text in TEXTS:
        assert hf_tok.encode(text, add_special_tokens=False) == tokenizer.encode(text, add_special_tokens=False)


def test_default_model_q8_0_top_token(default_model_dir, mlx_default, tmp_path):
    model, tokenizer = mlx_default
    path = write_gguf(default_model_dir, tmp_path / "smollm2-q8_0.gguf", "q8_0")
    hf_model, _ = hf_gguf(path, tokenizer=False)
    agree = []
    for prompt in PROMPTS:
        ids = prompt_ids(tokenizer, prompt)
        full = greedy_mlx(model, ids)
        agree.extend(argmax_mlx(model, full)[len(ids) - 1 :] == argmax_torch(hf_model, full)[len(ids) - 1 :])
    assert np.mean(agree) >= 0.95, f"top-1 agrees on {np.mean(agree):.1%}"


def test_default_model_modelfile_template(default_model_dir):
    from transformers import AutoTokenizer

    from mlx_persona.export.ollama import go_template
    from mlx_persona.export.targets import chat_format

    fmt, _ = chat_format(default_model_dir)
    template = go_template(fmt)
    tokenizer = AutoTokenizer.from_pretrained(str(default_model_dir))
    for conv in (CONV, CONV[1:]):
        assert ollama_render(template, conv) == tokenizer.apply_chat_template(
            conv, tokenize=False, add_generation_prompt=True
        )
    assert "SmolLM" in ollama_render(template, CONV[1:])  # its own default system prompt
