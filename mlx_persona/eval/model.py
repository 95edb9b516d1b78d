"""The model side of evaluation, run inside one child process per model.

Three jobs, each on the held-out test conversations (``{"messages": [...]}``, the last
assistant message being the person's real reply):

1. **Perplexity on the persona's replies only.** Each conversation is tokenized with the chat
   template and every token before the last message is masked: the same tokens and mask as
   training with ``mask_prompt`` (mlx_lm's ``ChatDataset``), so the number is comparable with
   the SFT stage's validation loss (ppl = exp(loss)); padding never counts (:func:`reply_nll`).
   Each conversation's NLL sum and token count are kept too, for the bootstrap intervals.
2. **One reply per prompt, batched.** mlx_lm's ``BatchGenerator`` (continuous batching, greedy),
   driven by :mod:`mlx_persona.models.generate`, which also notes when each prompt gets its
   first token. With ``samples`` > 1, each prompt gets that many replies sampled at
   ``temperature`` (as chat makes them), prompt by prompt: replies ``i*samples .. i*samples +
   samples - 1`` answer conversation ``i``.
3. **Speed.** Generated tokens per second of wall time, decode tokens per second, and time to
   first token. In a batched run the TTFT of a prompt includes waiting for the batch ahead of it;
   the naive sequential mode (one ``stream_generate`` per prompt) exists to measure the gain.
"""

from __future__ import annotations

import math
import statistics
import time
import types
from collections.abc import Callable, Sequence
from pathlib import Path

import mlx.core as mx
import numpy as np

from mlx_persona.core.errors import PersonaError
from mlx_persona.eval.models import ModelSpec
from mlx_persona.models.head import logits_at, output_head

SAMPLING_SEED = 0  # of the sampled test replies (``samples`` > 1)


def load_model(spec: ModelSpec, log: Callable = print):
    """mlx_lm's loader (float32 copy of a quantized base on the CPU backend, as SFT trains),
    then the adapter's LoRA/DoRA layers and weights."""
    from mlx_lm.tuner.utils import load_adapters

    from mlx_persona.train.loop import load_base

    try:
        model, tokenizer = load_base(
            Path(spec.model), types.SimpleNamespace(dequantize_on_cpu=True), log, purpose="evaluating"
        )
    except (OSError, ValueError, KeyError, RuntimeError) as e:  # missing files, unknown architecture
        raise PersonaError(f"{spec.model}: cannot load this model ({type(e).__name__}: {e})") from None
    if spec.adapter is not None:
        try:
            model = load_adapters(model, str(spec.adapter))
        except (OSError, ValueError, KeyError, TypeError, AttributeError, RuntimeError) as e:
            raise PersonaError(
                f"{spec.adapter}: cannot apply this adapter to {spec.model} ({type(e).__name__}: {e})"
            ) from None
    model.eval()
    return model, tokenizer


def _template(tokenizer, messages, add_generation_prompt: bool) -> list[int]:
    return list(tokenizer.apply_chat_template(messages, add_generation_prompt=add_generation_prompt, return_dict=False))


def prompt_tokens(tokenizer, conversations: Sequence[dict], max_prompt_tokens: int) -> list[list[int]]:
    """The chat-templated context before each real reply; long contexts keep their last tokens."""
    out = []
    for conv in conversations:
        toks = _template(tokenizer, conv["messages"][:-1], add_generation_prompt=True)
        out.append(toks[-max_prompt_tokens:])
    return out


def reply_nll(model, batch: mx.array, spans: mx.array, head=None) -> tuple[mx.array, mx.array]:
    """Summed negative log-likelihood of each row's reply tokens, and their count.

    ``batch`` (B, T) token ids, right-padded; ``spans`` (B, 2): ``[offset, length]`` per row, the
    reply being tokens ``offset .. length-1``. Target ``t`` (token ``batch[:, t]``, predicted
    from the tokens before it) counts when ``offset <= t < length``. mlx_lm's ``default_loss``
    uses ``t <= length``, which in a padded row also counts the first pad token; here a row's
    numbers do not depend on the rows batched with it. Returns two arrays of shape (B,).

    With ``head`` = (body, lm_head) (:func:`~mlx_persona.models.head.output_head`) the vocabulary
    projection runs on the reply positions only, as in the SFT loss: the same numbers without
    the prompt's (tokens x vocab) logits.
    """
    import mlx.nn as nn

    if head is None:
        inputs, targets = batch[:, :-1], batch[:, 1:]
        steps = mx.arange(1, targets.shape[1] + 1)  # the position in ``batch`` of each target
        mask = mx.logical_and(steps >= spans[:, 0:1], steps < spans[:, 1:])
        ce = nn.losses.cross_entropy(model(inputs), targets).astype(mx.float32) * mask
        return ce.sum(axis=1), mask.sum(axis=1)
    start = mx.maximum(spans[:, 0:1], 1)
    count = mx.maximum(spans[:, 1:] - start, 0)  # (B, 1)
    slots = mx.arange(max(1, int(count.max().item())))[None]  # (1, R)
    scored = slots < count
    at = mx.where(scored, start + slots, 1)  # a padding slot points at a real position, then counts 0
    ce = nn.losses.cross_entropy(*logits_at(head, batch, at)).astype(mx.float32)
    return (ce * scored).sum(axis=1), scored.sum(axis=1)


def perplexity(
    model, tokenizer, conversations: Sequence[dict], batch_size: int = 8, max_seq_length: int = 2048
) -> dict:
    """Token-weighted perplexity of the last (assistant) message given the rest.

    ``per_sample`` keeps each conversation's summed NLL and reply-token count, in the order of
    ``conversations``, so that the parent can resample conversations (bootstrap intervals):
    ``perplexity = exp(sum(nll_sum) / sum(tokens))``.
    """
    from mlx_lm.tuner.datasets import ChatDataset

    ds = ChatDataset(list(conversations), tokenizer, chat_key="messages", mask_prompt=True)
    items = [ds.process(c) for c in conversations]
    order = sorted(range(len(items)), key=lambda i: len(items[i][0]))  # similar lengths batch together
    nll_sum, ntok = [0.0] * len(items), [0] * len(items)
    head = output_head(model)
    for i in range(0, len(order), batch_size):
        rows = order[i : i + batch_size]
        lengths = [min(len(items[r][0]), max_seq_length) for r in rows]
        arr = np.zeros((len(rows), max(lengths)), np.int32)
        for j, r in enumerate(rows):
            arr[j, : lengths[j]] = items[r][0][: lengths[j]]
        spans = mx.array([[items[r][1], n] for r, n in zip(rows, lengths)])
        nll, n = reply_nll(model, mx.array(arr), spans, head)
        mx.eval(nll, n)
        for r, a, b in zip(rows, nll.tolist(), n.tolist()):
            nll_sum[r], ntok[r] = float(a), int(b)
    total, ntoks = sum(nll_sum), sum(ntok)
    if ntoks == 0:
        return {"tokens": 0}
    nll = total / ntoks
    return {
        "perplexity": math.exp(nll),
        "nll": nll,
        "tokens": int(ntoks),
        "n": len(items),
        "per_sample": {"nll_sum": nll_sum, "tokens": ntok},
    }


def _speed(n_tokens: int, wall: float, ttft: list[float], decode_tps: float | None) -> dict:
    return {
        "generated_tokens": n_tokens,
        "wall_s": round(wall, 3),
        "tokens_per_sec": n_tokens / wall if wall > 0 else None,
        "decode_tokens_per_sec": decode_tps,
        "ttft_mean_s": statistics.fmean(ttft) if ttft else None,
        "ttft_median_s": statistics.median(ttft) if ttft else None,
    }


def generate_batched(model, tokenizer, prompts: list[list[int]], max_tokens: int, batch_size: int, sampler=None):
    """Greedy (or ``sampler``'s) replies for all prompts, batched
    (:func:`mlx_persona.models.generate.generate_batched`); returns (texts, speed)."""
    from mlx_persona.models.generate import generate_batched as generate

    replies, stats = generate(model, tokenizer, prompts, max_tokens, batch_size, sampler)
    made = sum(r.tokens + (r.finish_reason == "stop") for r in replies)  # with the end-of-turn token, as sequential
    ttft = [r.first_token_s for r in replies if r.first_token_s is not None]
    speed = _speed(made, stats["seconds"], ttft, stats.get("decode_tokens_per_sec"))
    return [r.text.strip() for r in replies], speed


def generate_sequential(model, tokenizer, prompts: list[list[int]], max_tokens: int, sampler=None):
    """The naive loop: one ``stream_generate`` per prompt (the baseline for the batched path)."""
    from mlx_lm.generate import stream_generate

    texts, ttft, count, decode_time = [], [], 0, 0.0
    t0 = time.perf_counter()
    for p in prompts:
        tic = time.perf_counter()
        parts, last = [], None
        for resp in stream_generate(model, tokenizer, p, max_tokens=max_tokens, sampler=sampler):
            if last is None:
                ttft.append(time.perf_counter() - tic)
            parts.append(resp.text)
            last = resp
        if last is not None:
            count += last.generation_tokens
            decode_time += last.generation_tokens / last.generation_tps if last.generation_tps else 0.0
        texts.append("".join(parts).strip())
    wall = time.perf_counter() - t0
    return texts, _speed(count, wall, ttft, count / decode_time if decode_time else None)


def evaluate_model(
    spec: ModelSpec,
    conversations: Sequence[dict],
    max_tokens: int = 96,
    batch_size: int = 16,
    mode: str = "batched",
    with_perplexity: bool = True,
    max_prompt_tokens: int = 1024,
    log: Callable = print,
    probes: Sequence[dict] = (),
    samples: int = 1,
    temperature: float = 0.0,
) -> dict:
    """Everything one child measures for one model; JSON-ready. ``probes``: conversations whose
    replies go to ``probe_replies`` (the leakage check's questions), not into any metric.
    ``samples`` replies per conversation, sampled at ``temperature`` (0: greedy) from
    ``SAMPLING_SEED``; ``replies`` holds them conversation by conversation."""
    tic = time.perf_counter()
    mx.reset_peak_memory()
    model, tokenizer = load_model(spec, log)
    out = {
        "name": spec.name,
        "model": str(spec.model),
        "adapter": str(spec.adapter) if spec.adapter else None,
        "load_s": round(time.perf_counter() - tic, 3),
        "mode": mode,
    }
    if with_perplexity:
        tic = time.perf_counter()
        out["perplexity"] = perplexity(model, tokenizer, conversations, batch_size=max(1, batch_size // 2))
        out["perplexity"]["seconds"] = round(time.perf_counter() - tic, 3)
        log(
            f"{spec.name}: perplexity {out['perplexity'].get('perplexity', float('nan')):.3f} "
            f"on {out['perplexity'].get('tokens', 0)} reply tokens"
        )
    prompts = [p for p in prompt_tokens(tokenizer, conversations, max_prompt_tokens) for _ in range(samples)]
    sampler = None
    if temperature > 0:
        from mlx_persona.models.generate import make_sampler

        mx.random.seed(SAMPLING_SEED)  # every model draws from the same seed: the same eval twice is the same
        sampler = make_sampler(temperature, 1.0)
    if mode == "sequential":
        texts, speed = generate_sequential(model, tokenizer, prompts, max_tokens, sampler)
    else:
        texts, speed = generate_batched(model, tokenizer, prompts, max_tokens, batch_size, sampler)
    speed["prompt_tokens"] = sum(len(p) for p in prompts)
    out.update(replies=texts, speed=speed, peak_memory_gb=round(mx.get_peak_memory() / 1e9, 4))
    if probes:  # the leakage probes stay greedy: the most likely answer to each question
        probe_prompts = prompt_tokens(tokenizer, probes, max_prompt_tokens)
        out["probe_replies"] = generate_batched(model, tokenizer, probe_prompts, max_tokens, batch_size)[0]
    log(
        f"{spec.name}: {len(texts)} replies, {speed['generated_tokens']} tokens in {speed['wall_s']:.1f}s "
        f"({speed['tokens_per_sec'] or 0:.1f} tok/s, {mode})"
    )
    return out
