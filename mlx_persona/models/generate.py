"""Batched reply generation: mlx_lm's ``BatchGenerator``, with finish reasons and first-token times.

``mlx_lm.generate.batch_generate`` returns texts only; the pair filters also need to know whether
a reply ended on its own (``stop``: an end-of-turn token) or was cut at ``max_tokens``
(``length``: truncated, filtered out), and the evaluation measures when each prompt got its first
token. So we drive the same ``BatchGenerator`` that ``batch_generate`` drives, keep each
sequence's finish reason and first-token time, and hand every finished reply to a callback at
once, so the caller can append it to disk (a killed run loses only the replies in flight). The
pair generator, the evaluation and DPO's twin probe all generate here.

Continuous batching: up to ``batch_size`` sequences decode together; a finished one leaves the
batch and the next prompt is prefilled into its place.

Shared prefill: when the same prompt comes more than once (the pair generator samples several
replies per prompt, the evaluation several per conversation), it is prefilled once and its cache
starts every copy; the copies then decode side by side. Prefill is most of the work for short
replies on a CPU (``bench/RESULTS.md``: one prefill per prompt), so K samples no longer cost K prefills.

Where a reply ends: the model's own end-of-turn token (``eos_token_id`` in its config), and also
any end-of-text special token its vocabulary has (:data:`END_OF_TEXT`). A chat model's config
often names only the turn's end (SmolLM2: ``<|im_end|>``), while a fine-tuned twin sometimes ends
a reply with the pretraining document's end (``<|endoftext|>``) and then, unstopped, writes an
unrelated web page until ``max_tokens``. Every loader that generates (chat, serve, pairs, eval,
DPO's twin probe) goes through :func:`load_for_generation` or :func:`stop_at_end_of_text`.
"""

from __future__ import annotations

import collections
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import mlx.core as mx

# special tokens that end a text in the vocabularies we know; only those a model has are added
END_OF_TEXT = (
    "<|endoftext|>",
    "<|im_end|>",
    "<|end_of_text|>",
    "<|eot_id|>",
    "<|eom_id|>",
    "<|end|>",
    "<end_of_turn>",
    "</s>",
)


def stop_at_end_of_text(tokenizer):
    """Add each :data:`END_OF_TEXT` token that is a special token of ``tokenizer`` (an mlx_lm
    ``TokenizerWrapper``) to its end-of-sequence ids; returns the same tokenizer."""
    specials = set(getattr(tokenizer, "all_special_tokens", []) or [])
    specials |= set(getattr(tokenizer, "added_tokens_encoder", {}) or {})
    for token in END_OF_TEXT:
        if token in specials:
            tokenizer.add_eos_token(token)
    return tokenizer


def load_for_generation(model_path, adapter_path=None):
    """mlx_lm's ``load`` (with an adapter when given), stopping at every end-of-text token."""
    from mlx_lm import load

    model, tokenizer = load(str(model_path), adapter_path=str(adapter_path) if adapter_path else None)
    return model, stop_at_end_of_text(tokenizer)


@dataclass
class Reply:
    index: int  # position in the prompts list
    text: str
    finish_reason: str  # "stop" (end-of-turn token) or "length" (cut at max_tokens)
    tokens: int  # generated tokens, the end-of-turn token not counted
    first_token_s: float | None = None  # seconds from the start of the batch to its first token


def chat_prompt(tokenizer, messages: list[dict]) -> list[int]:
    """Token ids of ``messages`` under the chat template, ending in the assistant header."""
    ids = tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=True)
    return list(ids["input_ids"] if isinstance(ids, dict) else ids)


# top-p looks for its nucleus among this many of the most likely tokens (see apply_top_p)
TOP_P_CANDIDATES = 1024


def apply_top_p(logprobs: mx.array, top_p: float, candidates: int = TOP_P_CANDIDATES) -> mx.array:
    """Nucleus filter: ``logprobs`` (rows x vocab) with every token outside the row's nucleus set
    to -inf. The nucleus is the fewest most likely tokens whose probability reaches ``top_p``,
    taken before any temperature, as mlx_lm's ``apply_top_p`` does. Where the nucleus would need
    more than ``candidates`` tokens, the ``candidates`` most likely are kept.

    mlx_lm sorts the whole vocabulary for this at every step: 32 ms of a 150 ms decode step at
    batch 8 with SmolLM2's 49k vocabulary on the 2-core CPU. The top ``candidates`` (``mx.topk``)
    cost 3-4 ms, and for a chat model at top_p < 1 the nucleus is a few dozen tokens.
    """
    k = min(candidates, logprobs.shape[-1])
    top = mx.sort(mx.topk(logprobs, k, axis=-1), axis=-1).astype(mx.float32)  # ascending
    probs = mx.exp(top)
    mass_above = mx.cumsum(probs, axis=-1, reverse=True, inclusive=False)
    total = mx.exp(mx.logsumexp(logprobs.astype(mx.float32), axis=-1, keepdims=True))
    dropped = (mass_above >= top_p * total).sum(axis=-1, keepdims=True)
    threshold = mx.take_along_axis(top, dropped, axis=-1)
    return mx.where(logprobs < threshold, -float("inf"), logprobs)


def make_sampler(temperature: float, top_p: float):
    """A sampler for mlx_lm's generators: greedy at temperature 0, else a draw at ``temperature``
    from the :func:`apply_top_p` nucleus (no filter at top_p 0 or 1)."""
    if temperature == 0:
        return lambda logprobs: mx.argmax(logprobs, axis=-1)
    return lambda logprobs: sample_token(logprobs, temperature, top_p)


def sample_token(logprobs: mx.array, temperature: float, top_p: float, key: mx.array | None = None) -> mx.array:
    """One token per row: a draw at ``temperature`` (> 0) from the :func:`apply_top_p` nucleus
    (no filter at top_p 0 or 1), from ``key`` when given (serve's seeded requests), else from
    MLX's global random state."""
    if 0 < top_p < 1:
        logprobs = apply_top_p(logprobs, top_p)
    return mx.random.categorical(logprobs * (1.0 / temperature), key=key)


def generate_batched(
    model,
    tokenizer,
    prompts: Sequence[list[int]],
    max_tokens: int,
    batch_size: int,
    sampler=None,
    on_reply: Callable[[Reply], None] | None = None,
) -> tuple[list[Reply], dict]:
    """Generate one reply per prompt, ``batch_size`` sequences at a time; returns (replies, stats).

    A prompt that appears more than once is prefilled once, and its copies decode from that one
    cache (module docstring). ``stats`` holds generated tokens, seconds and tokens per second
    (prefill included in the time), decode tokens per second (``BatchGenerator``'s own count,
    prefill excluded), prefilled prompt tokens and peak memory. A reply's ``first_token_s``
    includes waiting for the prompts batched ahead of it.
    """
    from mlx_lm.generate import BatchGenerator

    replies: list[Reply | None] = [None] * len(prompts)
    if not prompts:
        return [], {"generated_tokens": 0, "seconds": 0.0, "tokens_per_sec": 0.0}
    groups: dict[tuple[int, ...], list[int]] = {}
    for i, p in enumerate(prompts):
        groups.setdefault(tuple(p), []).append(i)
    shared = len(groups) < len(prompts) and cache_copies_ok(model)
    gen = BatchGenerator(
        model,
        max_tokens=max_tokens,
        stop_tokens=[[t] for t in tokenizer.eos_token_ids],
        sampler=sampler,
        completion_batch_size=batch_size,
        prefill_batch_size=batch_size,
    )
    where: dict[int, int] = {}
    tokens: dict[int, list[int]] = {}
    first: dict[int, float] = {}
    prefilled = 0

    def add(uids: list[int], indices: list[int]) -> None:
        for uid, i in zip(uids, indices, strict=True):
            where[uid], tokens[uid] = i, []

    # copies wait in prompt order, a prompt's copies side by side: a prompt is prefilled when its
    # first copy starts, and its cache is let go when the next prompt's first copy starts
    waiting = collections.deque((key, i) for key, indices in groups.items() for i in indices) if shared else None
    current: tuple[tuple[int, ...], list] | None = None  # (prompt, its cache) whose copies are starting

    def feed() -> None:
        """Start waiting copies while the batch has room, prefilling each prompt once."""
        nonlocal prefilled, current
        while waiting and len(tokens) < batch_size:
            key, i = waiting.popleft()
            if current is None or current[0] != key:
                current = (key, prefill(model, list(key[:-1])))
                prefilled += len(key) - 1
            add(gen.insert([list(key[-1:])], [max_tokens], caches=[current[1]], all_tokens=[list(key[:-1])]), [i])

    tic = time.perf_counter()
    try:
        if shared:
            feed()
        else:  # every prompt once: the generator prefills them in batches itself
            add(gen.insert([list(p) for p in prompts], [max_tokens] * len(prompts)), list(range(len(prompts))))
        with gen.stats() as counts:
            while responses := gen.next_generated():
                now = time.perf_counter() - tic
                for r in responses:
                    first.setdefault(r.uid, now)
                    if r.finish_reason != "stop":  # the end-of-turn token is not part of the reply
                        tokens[r.uid].append(r.token)
                    if r.finish_reason is not None:
                        i, ids = where[r.uid], tokens.pop(r.uid)
                        replies[i] = Reply(i, tokenizer.decode(ids), r.finish_reason, len(ids), first[r.uid])
                        if on_reply is not None:
                            on_reply(replies[i])
                if shared:
                    feed()
    finally:
        gen.close()
    seconds = time.perf_counter() - tic
    made = sum(r.tokens for r in replies if r is not None)
    return list(replies), {
        "generated_tokens": made,
        "seconds": round(seconds, 3),
        "tokens_per_sec": made / seconds if seconds > 0 else 0.0,
        "decode_tokens_per_sec": counts.generation_tps,
        "prompt_tokens": prefilled if shared else counts.prompt_tokens,
        "peak_memory_gb": round(mx.get_peak_memory() / 1e9, 4),
    }


def cache_copies_ok(model) -> bool:
    """True when every layer's prompt cache can join a batch with its history (``merge``), which
    a shared prefill needs; a model whose cache cannot (some recurrent layers) prefills each copy."""
    from mlx_lm.models.cache import make_prompt_cache

    return all(hasattr(c, "merge") for c in make_prompt_cache(model))


def prefill(model, tokens: list[int]) -> list:
    """A fresh prompt cache for ``model`` holding ``tokens`` (mlx_lm's ``make_prompt_cache``);
    read-only afterwards: the batch a copy joins merges it into a new cache of its own."""
    from mlx_lm.models.cache import make_prompt_cache

    cache = make_prompt_cache(model)
    if tokens:
        model(mx.array([tokens]), cache=cache)
        mx.eval([c.state for c in cache])  # the cache alone: the unused logits are never computed
    return cache
