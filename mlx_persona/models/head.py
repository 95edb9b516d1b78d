"""A model split into its body and its vocabulary projection, so a loss can project only the
positions it scores.

The DPO log-probabilities (:mod:`mlx_persona.dpo.logps`), the SFT loss
(:func:`mlx_persona.sft.train.reply_loss`) and the evaluation's perplexity score reply tokens
only, and a persona sample is mostly prompt. The (tokens x vocab) logits of the prompt are most
of a forward pass's vocabulary projection (49k x 576 for SmolLM2: about a fifth of its FLOPs per
token), so with (body, head) they are never built.
"""

from __future__ import annotations

import mlx.core as mx


def output_head(model):
    """(body, head) such that ``model(x) == head(body(x))``, checked on a few tokens, or None.

    With them the vocabulary projection runs on the reply positions only: the prompt's
    (tokens x vocab) logits are never built, which saves memory and time (the prompt is most of
    a persona sample). Models whose output is more than ``head(body(x))`` (logit scaling,
    soft-capping) fail the check and use the full forward pass."""
    body = getattr(model, "model", None)
    head = getattr(model, "lm_head", None)
    if head is None and body is not None and hasattr(getattr(body, "embed_tokens", None), "as_linear"):
        head = body.embed_tokens.as_linear
    if body is None or head is None:
        return None
    x = mx.array([[1, 2, 3, 4, 5]])
    try:
        same = mx.allclose(model(x), head(body(x)), rtol=1e-4, atol=1e-4).item()
    except (TypeError, ValueError):
        return None
    return (body, head) if same else None


def logits_at(head, tokens: mx.array, positions: mx.array) -> tuple[mx.array, mx.array]:
    """The logits that predict the tokens at ``positions``, and those tokens.

    ``head`` = (body, lm_head) from :func:`output_head`; ``tokens`` (B, W); ``positions`` (B, R),
    each in 1..W-1 (a padding slot points at any real position; the caller masks it). The body
    runs on ``tokens[:, :-1]``, the head only on the hidden states before ``positions``. Returns
    logits (B, R, vocab) and targets (B, R). The SFT loss, the DPO log-probabilities and the
    eval's perplexity score reply tokens through it."""
    body, lm_head = head
    hidden = mx.take_along_axis(body(tokens[:, :-1]), (positions - 1)[..., None], axis=1)  # (B, R, D)
    return lm_head(hidden), mx.take_along_axis(tokens, positions, axis=1)
