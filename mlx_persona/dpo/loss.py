"""The DPO stage's loss: the preference losses on log-probabilities, one assembly of them for a
batch (:func:`preference_loss`), and the batch losses that score a batch of pairs with the policy.

Why more than one loss: on a persona, the person's real reply (chosen) is usually much shorter
than the base model's (rejected), so plain DPO can win by making every reply short ("be short",
not "be the person"), and it may lower the chosen reply's own likelihood while it widens the
margin. The options below are the published answers to exactly that (the default is still plain
sigmoid DPO, until a benchmark picks another):

- ``loss_type: sigmoid``: DPO, Rafailov et al. 2023 (optionally conservative: ``label_smoothing``);
- ``loss_type: ipo``: IPO, Azar et al. 2023, a squared loss on per-token mean log-probs;
- ``loss_type: simpo``: SimPO, Meng et al. 2024, reference-free and length-normalised, with a
  target margin ``gamma`` (no reference pass at all);
- ``rpo_alpha``: RPO, Pang et al. 2024, adds the chosen reply's NLL to any of them;
- ``length_alpha``: R-DPO, Park et al. 2024, a length term inside the sigmoid loss.

Every loss documents its formula and its shapes; ``tests/test_dpo_loss.py`` checks each one
against values worked out by hand from the formula, with chosen and rejected replies of
different lengths.
"""

from __future__ import annotations

import math

import mlx.core as mx

from mlx_persona.dpo.config import DPOConfig
from mlx_persona.dpo.logps import pair_logps, sequence_logps

LOG2 = math.log(2.0)  # the sigmoid loss when the policy equals the reference


def logistic_loss(z: mx.array, label_smoothing: float = 0.0) -> mx.array:
    """-(1 - eps) log sigmoid(z) - eps log sigmoid(-z), elementwise, stable for any z.

    The Bradley-Terry loss on a preference score z (eps = ``label_smoothing``: the assumed share
    of pairs whose labels are flipped). -log sigmoid(z) = softplus(-z) = logaddexp(0, -z)."""
    return (1 - label_smoothing) * mx.logaddexp(0.0, -z) + label_smoothing * mx.logaddexp(0.0, z)


def dpo_loss(
    policy_chosen: mx.array,
    policy_rejected: mx.array,
    ref_chosen: mx.array,
    ref_rejected: mx.array,
    beta: float = 0.1,
    loss_type: str = "sigmoid",
    label_smoothing: float = 0.0,
    *,
    length_alpha: float = 0.0,
    length_gap: mx.array | float = 0.0,
):
    """Per-pair preference loss and implicit rewards, for the losses that compare with a reference.

    Let h = (log pi(y_c|x) - log pi(y_r|x)) - (log ref(y_c|x) - log ref(y_r|x)): how much more the
    policy prefers the chosen reply than the reference does.

    - ``sigmoid`` (DPO, Rafailov et al. 2023, https://arxiv.org/abs/2305.18290):
      loss = -log sigmoid(beta * h); with ``label_smoothing`` eps (conservative DPO, labels
      flipped with probability eps): loss = -(1 - eps) log sigmoid(z) - eps log sigmoid(-z),
      z = beta h. At h = 0 (policy == reference) the loss is log 2 whatever eps.
      R-DPO (Park et al. 2024, https://arxiv.org/abs/2403.19159): with ``length_alpha`` a and
      ``length_gap`` = |y_c| - |y_r| (reply tokens), z = beta h - a (|y_c| - |y_r|): a chosen reply
      that is shorter than the rejected one no longer wins the pair by its length alone.
    - ``ipo`` (IPO, Azar et al. 2023, https://arxiv.org/abs/2310.12036):
      loss = (h - 1 / (2 beta))^2, a squared loss that stops pushing once the margin reaches
      1/(2 beta). Pass per-token *mean* log-probs for IPO (the paper's and TRL's convention;
      :func:`preference_loss` does).

    Rewards: chosen = beta (log pi(y_c|x) - log ref(y_c|x)), rejected likewise; the margin is
    their difference (= beta h) and a pair counts as "preferred" when it is positive. The length
    term changes the loss, not the rewards.

    Args: four log-probability tensors, shape (B,) each (B pairs); ``length_gap`` (B,) or a
    scalar. Returns losses (B,), chosen_rewards (B,), rejected_rewards (B,).
    """
    h = (policy_chosen - policy_rejected) - (ref_chosen - ref_rejected)
    if loss_type == "sigmoid":
        losses = logistic_loss(beta * h - length_alpha * length_gap, label_smoothing)
    elif loss_type == "ipo":
        losses = mx.square(h - 1 / (2 * beta))
    else:
        raise ValueError(f"unknown loss_type {loss_type!r}")
    chosen_rewards = mx.stop_gradient(beta * (policy_chosen - ref_chosen))
    rejected_rewards = mx.stop_gradient(beta * (policy_rejected - ref_rejected))
    return losses, chosen_rewards, rejected_rewards


def simpo_loss(
    chosen_mean: mx.array, rejected_mean: mx.array, beta: float = 2.0, gamma: float = 0.5, label_smoothing: float = 0.0
):
    """SimPO (Meng et al. 2024, https://arxiv.org/abs/2405.14734): no reference model.

    The reward of a reply is its length-normalised log-likelihood, r(y) = beta / |y| log pi(y|x),
    and the loss asks the chosen reward to beat the rejected one by a target margin gamma:

        loss = -log sigmoid(beta / |y_c| log pi(y_c|x) - beta / |y_r| log pi(y_r|x) - gamma)

    (with ``label_smoothing`` eps: -(1 - eps) log sigmoid(z) - eps log sigmoid(-z), as for DPO).
    Args: per-token mean log-probs log pi(y|x) / |y| of the chosen and rejected replies, shape
    (B,) each. Returns losses (B,), chosen_rewards (B,) = beta / |y_c| log pi(y_c|x),
    rejected_rewards (B,) likewise; their difference is the margin before gamma.
    """
    chosen_rewards, rejected_rewards = beta * chosen_mean, beta * rejected_mean
    losses = logistic_loss(chosen_rewards - rejected_rewards - gamma, label_smoothing)
    return losses, mx.stop_gradient(chosen_rewards), mx.stop_gradient(rejected_rewards)


def preference_loss(sums: mx.array, counts: mx.array, ref: mx.array, cfg: DPOConfig):
    """The batch's mean training loss, as ``cfg`` sets it up: the one place the losses are assembled.

    Args: ``sums`` (2B,) the policy's summed reply log-probs, B chosen then B rejected (then B
    anchor replies under ``rpo_on: real``: (3B,)); ``counts`` the same shape, their reply token
    counts; ``ref`` (B, 4) per pair from the reference cache: reference
    chosen sum, reference rejected sum, chosen token count, rejected token count (unused by
    SimPO, which has no reference: any (B, 4) array will do).

    - ``sigmoid``: :func:`dpo_loss` on summed log-probs; R-DPO's length gap |y_c| - |y_r| is
      taken from the policy's token counts.
    - ``ipo``: :func:`dpo_loss` on per-token means (the policy's sums by the policy's counts, the
      reference's sums by the reference's counts).
    - ``simpo``: :func:`simpo_loss` on the policy's per-token means.
    - RPO (``rpo_alpha`` a, Pang et al. 2024, https://arxiv.org/abs/2404.19733), added to any of
      them: loss_i += a * NLL_i, NLL_i = -log pi(y_c|x) / |y_c|, the chosen reply's per-token
      negative log-likelihood, so the person's replies keep (or gain) likelihood while the margin
      grows. Under ``rpo_on: real`` the NLL is the anchor reply's, -log pi(y_a|x) / |y_a|: the
      person's own reply where the chosen one is the twin's (pairs ``chosen: closest``).

    Returns (loss scalar: mean over the B pairs, chosen_rewards (B,), rejected_rewards (B,),
    nll (B,): the per-token NLL of the chosen reply, or of the anchor one, under the policy,
    reported for every loss).
    """
    b = ref.shape[0]
    pc, pr = sums[:b], sums[b : 2 * b]
    nc, nr = counts[:b].astype(mx.float32), counts[b : 2 * b].astype(mx.float32)
    if sums.shape[0] == 3 * b:  # anchor rows
        chosen_nll = -sums[2 * b :] / counts[2 * b :].astype(mx.float32)
    else:
        chosen_nll = -pc / nc  # (B,)
    if cfg.loss_type == "simpo":
        losses, cr, rj = simpo_loss(pc / nc, pr / nr, cfg.beta, cfg.gamma, cfg.label_smoothing)
    elif cfg.loss_type == "ipo":  # length-normalised log-probs, each by its own count
        losses, cr, rj = dpo_loss(pc / nc, pr / nr, ref[:, 0] / ref[:, 2], ref[:, 1] / ref[:, 3], cfg.beta, "ipo")
    else:
        losses, cr, rj = dpo_loss(
            pc,
            pr,
            ref[:, 0],
            ref[:, 1],
            cfg.beta,
            cfg.loss_type,
            cfg.label_smoothing,
            length_alpha=cfg.length_alpha,
            length_gap=nc - nr,
        )
    if cfg.rpo_alpha:
        losses = losses + cfg.rpo_alpha * chosen_nll
    return losses.mean(), cr, rj, mx.stop_gradient(chosen_nll)


def batch_loss(model, tokens, starts, lengths, reply_pos, ref, cfg: DPOConfig, head=None):
    """:func:`preference_loss` for B collated pairs (rows: B chosen, then B rejected, then B anchor
    replies under ``rpo_on: real``) in one forward pass; ref (B, 4) from the cache. Returns (loss, (chosen_rewards, rejected_rewards,
    chosen_nll, tokens)); only the loss is differentiated."""
    sums, counts = sequence_logps(model, tokens, starts, lengths, reply_pos, head)  # (2B,)
    loss, cr, rj, nll = preference_loss(sums, counts, ref, cfg)
    return loss, (cr, rj, nll, lengths.sum())


def shared_batch_loss(model, pairs: list, ref, cfg: DPOConfig, head):
    """:func:`batch_loss` for B pairs scored one by one with :func:`pair_logps` (the prompt runs
    once for all the pair's replies: chosen, rejected, and the anchor reply the pairs were loaded
    with under ``rpo_on: real``)."""
    scored = [pair_logps(model, head, p.prompt, *p.replies()) for p in pairs]  # anchor too, when loaded
    k = len(pairs[0].replies())
    sums = mx.concatenate(
        [mx.stack([s[j] for s, _ in scored]) for j in range(k)]
    )  # (kB,): all chosen, all rejected, ...
    counts = mx.concatenate([mx.stack([c[j] for _, c in scored]) for j in range(k)])
    loss, cr, rj, nll = preference_loss(sums, counts, ref, cfg)
    tokens = sum(k * len(p.prompt) + sum(map(len, p.replies())) for p in pairs)
    return loss, (cr, rj, nll, mx.array(tokens))
