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

Where a reply ends: the model's own end-of-turn token (``eos_token_id`` in its config), and also
any end-of-text special token its vocabulary has (:data:`END_OF_TEXT`). A chat model's config
often names only the turn's end (SmolLM2: ``<|im_end|>``), while a fine-tuned twin sometimes ends
a reply with the pretraining document's end (``<|endoftext|>``) and then, unstopped, writes an
unrelated web page until ``max_tokens``. Every loader that generates (chat, serve, pairs, eval,
DPO's twin probe) goes through :func:`load_for_generation` or :func:`stop_at_end_of_text`.
"""

from __future__ import annotations

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


def make_sampler(temperature: float, top_p: float):
    from mlx_lm.sample_utils import make_sampler as _make

    return _make(temp=temperature, top_p=top_p if 0 < top_p < 1 else 0.0)


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

    ``stats`` holds generated tokens, seconds and tokens per second (prefill included in the
    time), decode tokens per second (``BatchGenerator``'s own count, prefill excluded) and peak
    memory. A reply's ``first_token_s`` includes waiting for the prompts batched ahead of it.
    """
    from mlx_lm.generate import BatchGenerator

    replies: list[Reply | None] = [None] * len(prompts)
    if not prompts:
        return [], {"generated_tokens": 0, "seconds": 0.0, "tokens_per_sec": 0.0}
    gen = BatchGenerator(
        model,
        max_tokens=max_tokens,
        stop_tokens=[[t] for t in tokenizer.eos_token_ids],
        sampler=sampler,
        completion_batch_size=batch_size,
        prefill_batch_size=batch_size,
    )
    tic = time.perf_counter()
    try:
        uids = gen.insert([list(p) for p in prompts], [max_tokens] * len(prompts))
        where = {uid: i for i, uid in enumerate(uids)}
        tokens: dict[int, list[int]] = {uid: [] for uid in uids}
        first: dict[int, float] = {}
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
    finally:
        gen.close()
    seconds = time.perf_counter() - tic
    made = sum(r.tokens for r in replies if r is not None)
    return list(replies), {
        "generated_tokens": made,
        "seconds": round(seconds, 3),
        "tokens_per_sec": made / seconds if seconds > 0 else 0.0,
        "decode_tokens_per_sec": counts.generation_tps,
        "peak_memory_gb": round(mx.get_peak_memory() / 1e9, 4),
    }
