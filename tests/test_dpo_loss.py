"""The DPO losses against values worked out by hand, and the log-prob masking on a toy model."""

from __future__ import annotations

import math

import mlx.core as mx
import pytest

from mlx_persona.dpo.logps import sequence_logps
from mlx_persona.dpo.loss import LOG2, dpo_loss


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
