"""Where a generated reply ends: the config's end-of-turn token and every end-of-text special."""

import json
from pathlib import Path

import pytest
from tiny import build_tiny_llama

from mlx_persona.chat import ChatSession, Target
from mlx_persona.models.generate import chat_prompt, generate_batched, load_for_generation


@pytest.fixture(scope="module")
def ends_at_once(tmp_path_factory) -> Path:
    """A tiny llama whose config names only ``<|im_end|>`` as the end, but whose greedy next token
    is always ``<|endoftext|>`` (id 0): an untied output head of zeros makes every logit equal,
    and argmax picks the first id, as a twin that ends its reply with the document's end."""
    import mlx.core as mx

    out = build_tiny_llama(tmp_path_factory.mktemp("ends-at-once"))
    config = json.loads((out / "config.json").read_text())
    config["tie_word_embeddings"] = False
    (out / "config.json").write_text(json.dumps(config))
    weights = dict(mx.load(str(out / "model.safetensors")))
    weights["lm_head.weight"] = mx.zeros_like(weights["model.embed_tokens.weight"])
    mx.save_safetensors(str(out / "model.safetensors"), weights, metadata={"format": "mlx"})
    return out


def test_end_of_text_specials_join_the_end_ids(ends_at_once):
    from mlx_lm import load

    _, plain = load(str(ends_at_once))
    _, tok = load_for_generation(ends_at_once)
    end_of_text, im_end = tok.convert_tokens_to_ids(["<|endoftext|>", "<|im_end|>"])
    assert set(plain.eos_token_ids) == {im_end}  # what the config alone gives
    assert set(tok.eos_token_ids) == {im_end, end_of_text}


def test_a_reply_stops_at_end_of_text(ends_at_once):
    model, tok = load_for_generation(ends_at_once)
    ids = [chat_prompt(tok, [{"role": "user", "content": "hi"}])]
    replies, _ = generate_batched(model, tok, ids, max_tokens=12, batch_size=1)
    assert (replies[0].finish_reason, replies[0].tokens, replies[0].text) == ("stop", 0, "")

    from mlx_lm import load

    model, plain = load(str(ends_at_once))  # without the end-of-text stop: 12 tokens of it
    replies, _ = generate_batched(model, plain, ids, max_tokens=12, batch_size=1)
    assert (replies[0].finish_reason, replies[0].tokens) == ("length", 12)


def test_chat_reply_stops_at_end_of_text(ends_at_once):
    session = ChatSession(Target(ends_at_once), temp=0.0, max_tokens=12)
    text, stats = session.reply("hello?")
    assert text == ""
    assert stats.tokens <= 1  # the end token itself at most, not 12 tokens of it
