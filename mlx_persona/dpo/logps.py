"""Log-probabilities of replies under a model: what the DPO loss compares.

Three ways to score the same thing, checked against each other (tests/test_dpo.py):

- :func:`sequence_logps`: a padded batch of full rows (prompt + reply), one forward pass;
- the same with ``head`` (:func:`mlx_persona.models.head.output_head`): the vocabulary projection on reply positions only;
- :func:`pair_logps`: one pair with its prompt run once and shared by both replies through a KV
  cache (the default in training, when :func:`shared_prompt_ok` says the model allows it).

Every variant sums ``log p(token | earlier tokens)`` over the reply tokens only, after the chat
template with the generation prompt; prompt and padding never count.
"""

from __future__ import annotations

import mlx.core as mx
import numpy as np

from mlx_persona.models.head import logits_at


def sequence_logps(
    model, tokens: mx.array, prompt_lengths: mx.array, lengths: mx.array, reply_pos: mx.array | None = None, head=None
) -> tuple[mx.array, mx.array]:
    """Summed log-probability of each row's reply tokens, and how many there are.

    Row i holds ``prompt_lengths[i]`` prompt tokens (the chat template up to the assistant
    header), then its reply tokens, up to ``lengths[i]``, then padding. The model predicts token
    t from tokens < t, so a reply token at position t scores ``log_softmax(logits[t-1])[tokens[t]]``
    and positions ``prompt_lengths[i] <= t < lengths[i]`` are summed; prompt and padding are not.

    Shapes: tokens (N, W) int; prompt_lengths, lengths (N,) int; reply_pos (N, R) int, the
    positions prompt_lengths[i] + 0..R-1 (from :func:`mlx_persona.dpo.data.collate`). Returns
    sums (N,) float32 and counts (N,) int32. With ``head`` (:func:`~mlx_persona.models.head.output_head`) and
    ``reply_pos`` the logits are (N, R, vocab) instead of (N, W-1, vocab); logsumexp minus the
    picked logit is log_softmax without another copy of them.
    """
    if head is None or reply_pos is None:
        logits = model(tokens[:, :-1]).astype(mx.float32)  # (N, W-1, V)
        targets = tokens[:, 1:]  # (N, W-1)
        pos = mx.arange(1, tokens.shape[1])[None, :]  # position of each target in the row
        mask = (pos >= prompt_lengths[:, None]) & (pos < lengths[:, None])
    else:
        mask = reply_pos < lengths[:, None]  # (N, R)
        pos = mx.minimum(reply_pos, tokens.shape[1] - 1)  # padding slots point at a real position
        logits, targets = logits_at(head, tokens, pos)  # (N, R, V), (N, R)
        logits = logits.astype(mx.float32)
    picked = mx.take_along_axis(logits, targets[..., None], axis=-1).squeeze(-1)
    token_logps = picked - mx.logsumexp(logits, axis=-1)
    return (token_logps * mask).sum(axis=-1), mask.sum(axis=-1)


def pair_logps(model, head, prompt: list, *replies: list) -> tuple[mx.array, mx.array]:
    """The same sums and counts as :func:`sequence_logps` for one pair, with the shared prompt run once.

    Chosen and rejected (and, under ``rpo_on: real``, the anchor reply) continue the same prompt,
    and the prompt is most of a persona sample, so: run the prompt through the model into a KV
    cache (gradients flow through it), copy the cache for one row per reply, then run the replies
    on top: P + kR positions instead of k(P + R). The last prompt position predicts each reply's
    first token. Shapes: returns sums (k,) [chosen, rejected, ...] and counts (k,), k = the number
    of replies. Needs plain KV caches (see :func:`shared_prompt_ok`).
    """
    from mlx_lm.models.cache import make_prompt_cache

    body, lm_head = head
    k = len(replies)
    cache = make_prompt_cache(model)
    last = body(mx.array([prompt]), cache=cache)[:, -1:, :]  # (1, 1, D)
    for c in cache:  # one prompt, k continuations
        c.keys, c.values = (mx.repeat(x[..., : c.offset, :], k, axis=0) for x in (c.keys, c.values))
    width = max(map(len, replies))
    rows = np.zeros((k, width), np.int32)
    for i, r in enumerate(replies):
        rows[i, : len(r)] = r
    rows = mx.array(rows)
    hidden = mx.repeat(last, k, axis=0)  # (k, 1, D)
    if width > 1:
        hidden = mx.concatenate([hidden, body(rows[:, :-1], cache=cache)], axis=1)  # (k, R, D)
    logits = lm_head(hidden).astype(mx.float32)  # (k, R, V)
    picked = mx.take_along_axis(logits, rows[..., None], axis=-1).squeeze(-1)
    mask = mx.arange(width)[None, :] < mx.array([len(r) for r in replies])[:, None]
    return ((picked - mx.logsumexp(logits, axis=-1)) * mask).sum(axis=-1), mask.sum(axis=-1)


def shared_prompt_ok(model, head) -> bool:
    """True when :func:`pair_logps` is available and agrees with the batched pass on this model."""
    from mlx_lm.models.cache import KVCache, make_prompt_cache

    if head is None or not all(type(c) is KVCache for c in make_prompt_cache(model)):
        return False
    prompt, chosen, rejected = [1, 2, 3, 4], [5, 6, 7], [8, 9]
    rows = mx.array([prompt + chosen, prompt + rejected + [0]])
    want, _ = sequence_logps(model, rows, mx.array([4, 4]), mx.array([7, 6]))
    try:  # blocks wrapped for gradient checkpointing replay the cache writes, and fail here
        got, _ = pair_logps(model, head, prompt, chosen, rejected)
    except ValueError:
        return False
    return mx.allclose(want, got, rtol=1e-4, atol=1e-4).item()
