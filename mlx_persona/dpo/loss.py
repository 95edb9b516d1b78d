"""The DPO stage's loss: the preference losses on log-probabilities, and the batch losses that
score a batch of pairs with the policy and compare it with the cached reference.

Every loss here documents its formula and its shapes; ``tests/test_dpo_loss.py`` checks each one
against values computed by hand.
"""

from __future__ import annotations

import math

import mlx.core as mx

from mlx_persona.dpo.config import DPOConfig
from mlx_persona.dpo.logps import pair_logps, sequence_logps

LOG2 = math.log(2.0)  # the sigmoid loss when the policy equals the reference


def dpo_loss(policy_chosen: mx.array, policy_rejected: mx.array, ref_chosen: mx.array, ref_rejected: mx.array,
             beta: float = 0.1, loss_type: str = "sigmoid", label_smoothing: float = 0.0):
    """Per-pair preference loss and implicit rewards.

    Let h = (log pi(y_c|x) - log pi(y_r|x)) - (log ref(y_c|x) - log ref(y_r|x)): how much more the
    policy prefers the chosen reply than the reference does.

    - ``sigmoid`` (DPO, Rafailov et al. 2023, https://arxiv.org/abs/2305.18290):
      loss = -log sigmoid(beta * h); with ``label_smoothing`` eps (conservative DPO, labels
      flipped with probability eps): loss = -(1 - eps) log sigmoid(beta h) - eps log sigmoid(-beta h).
      At h = 0 (policy == reference) the loss is log 2 whatever eps.
    - ``ipo`` (IPO, Azar et al. 2023, https://arxiv.org/abs/2310.12036):
      loss = (h - 1 / (2 beta))^2, a squared loss that stops pushing once the margin reaches
      1/(2 beta). Pass per-token *mean* log-probs for IPO (the paper's and TRL's convention).

    Rewards: chosen = beta (log pi(y_c|x) - log ref(y_c|x)), rejected likewise; the margin is
    their difference (= beta h) and a pair counts as "preferred" when it is positive.

    Args: four log-probability tensors, shape (B,) each (B pairs). Returns losses (B,),
    chosen_rewards (B,), rejected_rewards (B,). Use ``losses.mean()`` as the training loss.
    """
    h = (policy_chosen - policy_rejected) - (ref_chosen - ref_rejected)
    if loss_type == "sigmoid":
        # -log sigmoid(x) = softplus(-x) = logaddexp(0, -x), stable for any x
        losses = (1 - label_smoothing) * mx.logaddexp(0.0, -beta * h) + label_smoothing * mx.logaddexp(0.0, beta * h)
    elif loss_type == "ipo":
        losses = mx.square(h - 1 / (2 * beta))
    else:
        raise ValueError(f"unknown loss_type {loss_type!r}")
    chosen_rewards = mx.stop_gradient(beta * (policy_chosen - ref_chosen))
    rejected_rewards = mx.stop_gradient(beta * (policy_rejected - ref_rejected))
    return losses, chosen_rewards, rejected_rewards


def preference_loss(sums: mx.array, counts: mx.array, ref: mx.array, cfg: DPOConfig):
    """The batch's mean preference loss from the policy's log-probs and the cached reference.

    Args: ``sums`` (2B,) the policy's summed reply log-probs, B chosen then B rejected; ``counts``
    (2B,) their reply token counts; ``ref`` (B, 4) per pair: reference chosen sum, reference
    rejected sum, chosen token count, rejected token count. IPO compares per-token means (both the
    policy's and the reference's are divided by their own counts). Returns (loss scalar,
    chosen_rewards (B,), rejected_rewards (B,)).
    """
    b = sums.shape[0] // 2
    pc, pr, rc, rr = sums[:b], sums[b:], ref[:, 0], ref[:, 1]
    if cfg.loss_type == "ipo":  # length-normalised log-probs
        pc, pr = pc / counts[:b], pr / counts[b:]
        rc, rr = rc / ref[:, 2], rr / ref[:, 3]
    losses, chosen_rewards, rejected_rewards = dpo_loss(pc, pr, rc, rr, cfg.beta, cfg.loss_type, cfg.label_smoothing)
    return losses.mean(), chosen_rewards, rejected_rewards


def batch_loss(model, tokens, starts, lengths, reply_pos, ref, cfg: DPOConfig, head=None):
    """:func:`preference_loss` for B collated pairs (rows: B chosen, then B rejected) in one
    forward pass; ref (B, 4) from the cache. Returns (loss, (chosen_rewards, rejected_rewards,
    tokens)); only the loss is differentiated."""
    sums, counts = sequence_logps(model, tokens, starts, lengths, reply_pos, head)  # (2B,)
    loss, cr, rj = preference_loss(sums, counts, ref, cfg)
    return loss, (cr, rj, lengths.sum())


def shared_batch_loss(model, pairs: list, ref, cfg: DPOConfig, head):
    """:func:`batch_loss` for B pairs scored one by one with :func:`pair_logps` (the prompt runs
    once for both replies)."""
    scored = [pair_logps(model, head, p.prompt, p.chosen, p.rejected) for p in pairs]
    sums = mx.concatenate([mx.stack([s[0] for s, _ in scored]), mx.stack([s[1] for s, _ in scored])])  # (2B,)
    counts = mx.concatenate([mx.stack([c[0] for _, c in scored]), mx.stack([c[1] for _, c in scored])])
    loss, cr, rj = preference_loss(sums, counts, ref, cfg)
    tokens = sum(2 * len(p.prompt) + len(p.chosen) + len(p.rejected) for p in pairs)
    return loss, (cr, rj, mx.array(tokens))
