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


def _prompts(tok):
    a = chat_prompt(tok, [{"role": "user", "content": "should we ship on friday?"}])
    b = chat_prompt(tok, [{"role": "system", "content": "be brief"}, {"role": "user", "content": "lunch at noon?"}])
    return a, b


@pytest.mark.parametrize("batch_size", [1, 2, 3])
def test_repeated_prompts_share_one_prefill_and_give_the_same_greedy_reply(tiny_model_dir, batch_size):
    """A prompt asked several times is prefilled once; greedy copies match the prompt asked alone,
    whichever batch slot they join (the batch sizes below make copies join mid-decode)."""
    model, tok = load_for_generation(tiny_model_dir)
    a, b = _prompts(tok)
    alone = [generate_batched(model, tok, [p], max_tokens=9, batch_size=1)[0][0] for p in (a, b)]
    replies, stats = generate_batched(model, tok, [a, b, a, a, b], max_tokens=9, batch_size=batch_size)
    assert [r.index for r in replies] == [0, 1, 2, 3, 4]
    want = [alone[0], alone[1], alone[0], alone[0], alone[1]]
    assert [(r.text, r.tokens, r.finish_reason) for r in replies] == [(w.text, w.tokens, w.finish_reason) for w in want]
    assert alone[0].tokens > 0
    assert stats["prompt_tokens"] == len(a) - 1 + len(b) - 1  # each prompt once; its last token starts decoding


def test_copies_of_a_prompt_are_separate_samples(tiny_model_dir):
    """Shared prefill shares the prompt, not the draw: sampled copies differ from one another."""
    import mlx.core as mx

    from mlx_persona.models.generate import make_sampler

    model, tok = load_for_generation(tiny_model_dir)
    a, _ = _prompts(tok)
    mx.random.seed(3)
    replies, stats = generate_batched(model, tok, [a] * 6, max_tokens=8, batch_size=4, sampler=make_sampler(1.0, 1.0))
    assert len({r.text for r in replies}) > 1
    assert stats["prompt_tokens"] == len(a) - 1
    seen = []
    replies, _ = generate_batched(
        model, tok, [a] * 6, max_tokens=8, batch_size=4, sampler=make_sampler(1.0, 1.0), on_reply=seen.append
    )
    assert sorted(r.index for r in seen) == list(range(6))


def test_top_p_keeps_the_nucleus_by_hand():
    import math

    import mlx.core as mx

    from mlx_persona.models.generate import apply_top_p

    logprobs = mx.array([[math.log(p) for p in (0.15, 0.5, 0.05, 0.3)]])
    kept = lambda top_p: (apply_top_p(logprobs, top_p) > -math.inf).tolist()[0]  # noqa: E731
    assert kept(0.7) == [False, True, False, True]  # 0.5, then 0.3: 0.8 >= 0.7
    assert kept(0.5) == [False, True, False, False]  # 0.5 alone reaches it
    assert kept(0.85) == [True, True, False, True]
    assert kept(0.99) == [True, True, True, True]


def test_top_p_matches_mlx_lm_and_caps_the_candidates():
    import mlx.core as mx
    from mlx_lm.sample_utils import apply_top_p as full_sort

    from mlx_persona.models.generate import apply_top_p

    mx.random.seed(0)
    logits = mx.random.normal((4, 5000)) * 4  # peaked: the 0.9 nucleus is well inside 1024 tokens
    logprobs = logits - mx.logsumexp(logits, axis=-1, keepdims=True)
    for top_p in (0.3, 0.9):
        want = full_sort(logprobs, top_p) > -mx.inf
        assert mx.array_equal(apply_top_p(logprobs, top_p) > -mx.inf, want).item()
    flat = -mx.arange(5000)[None, :] * 1e-4 * mx.ones((2, 1))  # nearly flat: a nucleus of ~4400 tokens
    flat = flat - mx.logsumexp(flat, axis=-1, keepdims=True)
    assert (apply_top_p(flat, 0.9, candidates=10) > -mx.inf).sum(axis=-1).tolist() == [10, 10]


def test_a_model_whose_cache_cannot_merge_prefills_every_copy(tiny_model_dir, monkeypatch):
    """Without a cache that joins a batch with its history, repeated prompts take the plain path."""
    from mlx_persona.models import generate

    model, tok = load_for_generation(tiny_model_dir)
    a, _ = _prompts(tok)
    assert generate.cache_copies_ok(model)
    monkeypatch.setattr(generate, "cache_copies_ok", lambda m: False)
    replies, stats = generate.generate_batched(model, tok, [a, a], max_tokens=5, batch_size=2)
    assert replies[0].text == replies[1].text  # greedy
    assert stats["prompt_tokens"] >= 2 * (len(a) - 1)  # each copy prefilled
