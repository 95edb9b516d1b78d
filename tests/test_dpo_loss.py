"""The DPO losses against values worked out by hand, and the log-prob masking on a toy model.

The hand values are written out from each loss's formula with plain Python math, on two made-up
pairs whose chosen and rejected replies have different token counts (so a loss that divides by
the wrong count, or forgets to divide, gets a different number)."""

from __future__ import annotations

import math

import mlx.core as mx
import pytest

from mlx_persona.core.errors import PersonaError
from mlx_persona.dpo.config import DPOConfig
from mlx_persona.dpo.logps import sequence_logps
from mlx_persona.dpo.loss import LOG2, dpo_loss, preference_loss


def test_sigmoid_loss_hand_computed():
    # pair 0: policy prefers chosen by 2 nats more than the reference: h = (-10 - -14) - (-11 - -13) = 2
    # pair 1: h = (-8 - -6) - (-9 - -9) = -2
    pc, pr, rc, rr = (mx.array(v) for v in ([-10.0, -8.0], [-14.0, -6.0], [-11.0, -9.0], [-13.0, -9.0]))
    losses, cr, rj = dpo_loss(pc, pr, rc, rr, beta=0.5)
    # beta*h = 1 and -1: -log sigmoid(1) = log(1 + e^-1), -log sigmoid(-1) = log(1 + e)
    assert losses.tolist() == pytest.approx([math.log(1 + math.exp(-1)), math.log(1 + math.e)], rel=1e-6)
    assert cr.tolist() == pytest.approx([0.5 * 1, 0.5 * 1])  # beta * (pc - rc)
    assert rj.tolist() == pytest.approx([0.5 * -1, 0.5 * 3])  # beta * (pr - rr)


def test_sigmoid_label_smoothing_hand_computed():
    pc, pr, rc, rr = (mx.array([v]) for v in (-1.0, -3.0, -2.0, -2.0))  # h = 2
    losses, _, _ = dpo_loss(pc, pr, rc, rr, beta=0.1, label_smoothing=0.2)
    z = 0.2  # beta * h
    want = 0.8 * math.log(1 + math.exp(-z)) + 0.2 * math.log(1 + math.exp(z))
    assert losses.item() == pytest.approx(want, rel=1e-6)


def test_ipo_loss_hand_computed():
    pc, pr, rc, rr = (mx.array([v]) for v in (-1.0, -3.0, -2.0, -2.0))  # h = 2
    losses, _, _ = dpo_loss(pc, pr, rc, rr, beta=0.1, loss_type="ipo")
    assert losses.item() == pytest.approx((2 - 1 / (2 * 0.1)) ** 2)  # (2 - 5)^2 = 9


@pytest.mark.parametrize("smoothing", [0.0, 0.3])
def test_policy_equal_to_reference_gives_log2(smoothing):
    logps = mx.array([-12.5, -3.0, -40.0])
    losses, cr, rj = dpo_loss(logps, logps - 1, logps, logps - 1, beta=0.1, label_smoothing=smoothing)
    assert losses.tolist() == pytest.approx([LOG2] * 3, abs=1e-7)
    assert cr.tolist() == [0.0] * 3 and rj.tolist() == [0.0] * 3


def test_loss_is_stable_for_large_margins():
    big = mx.array([1e4])
    losses, _, _ = dpo_loss(big, -big, mx.array([0.0]), mx.array([0.0]), beta=1.0)
    assert losses.item() == pytest.approx(0.0, abs=1e-6)
    losses, _, _ = dpo_loss(-big, big, mx.array([0.0]), mx.array([0.0]), beta=1.0)
    assert losses.item() == pytest.approx(2e4)


class UniformThenFixed:
    """A toy 'model': logits make token 1 have probability 1/2 and the other 4 tokens 1/8 each."""

    def __call__(self, x):
        row = mx.log(mx.array([1 / 8, 1 / 2, 1 / 8, 1 / 8, 1 / 8]))
        return mx.broadcast_to(row, (*x.shape, 5))


def test_sequence_logps_sums_reply_tokens_only():
    # row 0: prompt [3, 3] then reply [1, 1, 2] (length 5), padding to width 7
    # row 1: prompt [2] then reply [1] (length 2)
    tokens = mx.array([[3, 3, 1, 1, 2, 0, 0], [2, 1, 0, 0, 0, 0, 0]])
    sums, counts = sequence_logps(UniformThenFixed(), tokens, mx.array([2, 1]), mx.array([5, 2]))
    assert counts.tolist() == [3, 1]
    assert sums.tolist() == pytest.approx([2 * math.log(1 / 2) + math.log(1 / 8), math.log(1 / 2)], rel=1e-6)


# ----------------------------------------------------------------------------- preference_loss
# Two pairs. Policy: summed reply log-probs and token counts, chosen then rejected (the layout of
# sums/counts); reference: [chosen sum, rejected sum, chosen tokens, rejected tokens] per pair.
PC, PR = [-6.0, -5.0], [-20.0, -9.0]  # policy sums: chosen, rejected
NC, NR = [3, 2], [10, 6]  # token counts: chosen replies are shorter than rejected ones
RC, RR = [-9.0, -4.0], [-18.0, -10.0]  # reference sums


def batch(ref_rows=None):
    sums = mx.array(PC + PR)
    counts = mx.array(NC + NR, dtype=mx.int32)
    ref = mx.array(ref_rows if ref_rows is not None else [[RC[i], RR[i], NC[i], NR[i]] for i in range(2)])
    return sums, counts, ref


def settings(**kw) -> DPOConfig:
    return DPOConfig.from_mapping(kw)


def softplus(x: float) -> float:  # -log sigmoid(-x)
    return math.log1p(math.exp(x))


def mean(xs):
    return sum(xs) / len(xs)


def run(cfg):
    loss, cr, rj, nll = preference_loss(*batch(), cfg)
    return loss.item(), cr.tolist(), rj.tolist(), nll.tolist()


def test_preference_sigmoid_hand_computed():
    beta = 0.5
    h = [(PC[i] - PR[i]) - (RC[i] - RR[i]) for i in range(2)]  # [14 - 9, 4 - 6] = [5, -2]
    loss, cr, rj, nll = run(settings(beta=beta))
    assert loss == pytest.approx(mean([softplus(-beta * x) for x in h]), rel=1e-6)
    assert cr == pytest.approx([beta * (PC[i] - RC[i]) for i in range(2)])  # [1.5, -0.5]
    assert rj == pytest.approx([beta * (PR[i] - RR[i]) for i in range(2)])  # [-1.0, 0.5]
    assert nll == pytest.approx([-PC[i] / NC[i] for i in range(2)])  # [2.0, 2.5]


def test_preference_sigmoid_label_smoothing_hand_computed():
    beta, eps = 0.5, 0.2
    h = [(PC[i] - PR[i]) - (RC[i] - RR[i]) for i in range(2)]
    loss, *_ = run(settings(beta=beta, label_smoothing=eps))
    want = mean([(1 - eps) * softplus(-beta * x) + eps * softplus(beta * x) for x in h])
    assert loss == pytest.approx(want, rel=1e-6)


def test_preference_ipo_hand_computed():
    beta = 0.5
    # per-token means, each sum by its own count: the policy's by the policy's, the reference's by the reference's
    h = [(PC[i] / NC[i] - PR[i] / NR[i]) - (RC[i] / NC[i] - RR[i] / NR[i]) for i in range(2)]
    # pair 0: (-2 - -2) - (-3 - -1.8) = 1.2; pair 1: (-2.5 - -1.5) - (-2 - -1.667) = -2/3
    loss, cr, rj, _ = run(settings(beta=beta, loss_type="ipo"))
    assert loss == pytest.approx(mean([(x - 1 / (2 * beta)) ** 2 for x in h]), rel=1e-6)
    assert cr == pytest.approx([beta * (PC[i] / NC[i] - RC[i] / NC[i]) for i in range(2)], rel=1e-6)
    assert rj == pytest.approx([beta * (PR[i] / NR[i] - RR[i] / NR[i]) for i in range(2)], rel=1e-6)


def test_preference_ipo_reads_the_reference_counts():
    # the reference's own token counts divide the reference sums: other counts, another loss
    beta = 0.5
    ref = [[RC[i], RR[i], NC[i] + 1, NR[i] + 4] for i in range(2)]
    h = [(PC[i] / NC[i] - PR[i] / NR[i]) - (RC[i] / (NC[i] + 1) - RR[i] / (NR[i] + 4)) for i in range(2)]
    loss, *_ = preference_loss(*batch(ref)[:2], mx.array(ref), settings(beta=beta, loss_type="ipo"))
    assert loss.item() == pytest.approx(mean([(x - 1 / (2 * beta)) ** 2 for x in h]), rel=1e-6)


def test_preference_rpo_hand_computed():
    beta, alpha = 0.5, 0.7
    h = [(PC[i] - PR[i]) - (RC[i] - RR[i]) for i in range(2)]
    nll = [-PC[i] / NC[i] for i in range(2)]  # per-token NLL of the chosen reply: [2.0, 2.5]
    loss, cr, _, got_nll = run(settings(beta=beta, rpo_alpha=alpha))
    assert loss == pytest.approx(mean([softplus(-beta * h[i]) + alpha * nll[i] for i in range(2)]), rel=1e-6)
    assert got_nll == pytest.approx(nll)
    assert cr == pytest.approx([beta * (PC[i] - RC[i]) for i in range(2)])  # rewards stay DPO's


def test_preference_rpo_on_ipo_hand_computed():
    beta, alpha = 0.5, 0.3
    h = [(PC[i] / NC[i] - PR[i] / NR[i]) - (RC[i] / NC[i] - RR[i] / NR[i]) for i in range(2)]
    loss, *_ = run(settings(beta=beta, loss_type="ipo", rpo_alpha=alpha))
    want = mean([(h[i] - 1 / (2 * beta)) ** 2 + alpha * (-PC[i] / NC[i]) for i in range(2)])
    assert loss == pytest.approx(want, rel=1e-6)


def test_preference_rpo_on_the_anchor_reply_hand_computed():
    """rpo_on real: a third block of B rows, the anchor replies; the NLL is theirs, DPO's rewards
    stay those of chosen and rejected."""
    beta, alpha = 0.5, 0.7
    pa, na = [-9.0, -4.0], [3, 8]  # the anchor replies' summed log-probs and token counts
    sums, counts, ref = batch()
    sums = mx.concatenate([sums, mx.array(pa)])
    counts = mx.concatenate([counts, mx.array(na, dtype=mx.int32)])
    h = [(PC[i] - PR[i]) - (RC[i] - RR[i]) for i in range(2)]
    loss, cr, rj, nll = preference_loss(sums, counts, ref, settings(beta=beta, rpo_alpha=alpha, rpo_on="real"))
    want_nll = [-pa[i] / na[i] for i in range(2)]  # [3.0, 0.5]: not the chosen reply's [2.0, 2.5]
    assert nll.tolist() == pytest.approx(want_nll)
    assert loss.item() == pytest.approx(
        mean([softplus(-beta * h[i]) + alpha * want_nll[i] for i in range(2)]), rel=1e-6
    )
    assert cr.tolist() == pytest.approx([beta * (PC[i] - RC[i]) for i in range(2)])
    assert rj.tolist() == pytest.approx([beta * (PR[i] - RR[i]) for i in range(2)])


def test_preference_rdpo_hand_computed():
    beta, alpha = 0.5, 0.1
    h = [(PC[i] - PR[i]) - (RC[i] - RR[i]) for i in range(2)]
    z = [beta * h[i] - alpha * (NC[i] - NR[i]) for i in range(2)]  # [2.5 + 0.7, -1 + 0.4]
    loss, cr, rj, _ = run(settings(beta=beta, length_alpha=alpha))
    assert loss == pytest.approx(mean([softplus(-x) for x in z]), rel=1e-6)
    assert cr == pytest.approx([beta * (PC[i] - RC[i]) for i in range(2)])  # the length term moves the loss only
    assert rj == pytest.approx([beta * (PR[i] - RR[i]) for i in range(2)])


def test_preference_simpo_hand_computed_and_reference_free():
    beta, gamma = 2.0, 0.5
    z = [beta * PC[i] / NC[i] - beta * PR[i] / NR[i] - gamma for i in range(2)]  # [-4 + 4 - 0.5, -5 + 3 - 0.5]
    nan_ref = mx.full((2, 4), float("nan"))  # SimPO never reads the reference
    loss, cr, rj, _ = preference_loss(*batch()[:2], nan_ref, settings(beta=beta, gamma=gamma, loss_type="simpo"))
    assert loss.item() == pytest.approx(mean([softplus(-x) for x in z]), rel=1e-6)
    assert cr.tolist() == pytest.approx([beta * PC[i] / NC[i] for i in range(2)])  # [-4.0, -5.0]
    assert rj.tolist() == pytest.approx([beta * PR[i] / NR[i] for i in range(2)])  # [-4.0, -3.0]
    eps = 0.1
    loss, *_ = preference_loss(
        *batch()[:2], nan_ref, settings(beta=beta, gamma=gamma, loss_type="simpo", label_smoothing=eps)
    )
    want = mean([(1 - eps) * softplus(-x) + eps * softplus(x) for x in z])
    assert loss.item() == pytest.approx(want, rel=1e-6)


@pytest.mark.parametrize(
    "bad, message",
    [
        ({"loss_type": "ipo", "length_alpha": 0.1}, "length_alpha: is a term of the sigmoid loss"),
        ({"loss_type": "ipo", "label_smoothing": 0.1}, "label_smoothing: applies to the sigmoid and simpo"),
        ({"rpo_alpha": -1.0}, "rpo_alpha: must be a number >= 0"),
        ({"loss_type": "orpo"}, "loss_type: must be one of sigmoid, ipo, simpo"),
        ({"select_by": "vibes"}, "select_by: must be one of loss, preference, margin, last, twin"),
        ({"select_max_nll_rise": -0.1}, "select_max_nll_rise: must be a number >= 0"),
        ({"select_prompts": 0}, "select_prompts: must be at least 1"),
        ({"rpo_on": "rejected", "rpo_alpha": 1.0}, "rpo_on: must be one of chosen, real"),
        ({"rpo_on": "real"}, "rpo_on: real is where rpo_alpha's NLL is taken"),
    ],
)
def test_loss_settings_are_checked(bad, message):
    with pytest.raises(PersonaError, match=message):
        DPOConfig.from_mapping(bad)
