"""Each loss against a reference worked out by hand for two samples.

Logits: sample 1 = [2, 1, 0] with target 0; sample 2 = [0, 0, 0] with target 2.
log-softmax of sample 1 is [2, 1, 0] - L with L = log(e^2 + e + 1); sample 2 is uniform.
"""

from __future__ import annotations

import math

import pytest
import torch

from core.errors import UserError
from core.losses import build_loss

LOGITS = torch.tensor([[2.0, 1.0, 0.0], [0.0, 0.0, 0.0]])
TARGET = torch.tensor([0, 2])
L = math.log(math.exp(2) + math.exp(1) + 1)
LOGP1 = [2 - L, 1 - L, 0 - L]  # log-probabilities of sample 1
P1 = [math.exp(v) for v in LOGP1]


def test_cross_entropy_matches_hand_value():
    expected = ((L - 2) + math.log(3)) / 2
    assert build_loss("ce", 3)(LOGITS, TARGET).item() == pytest.approx(expected, rel=1e-6)


def test_focal_matches_hand_value():
    gamma = 2.0
    loss1 = -((1 - P1[0]) ** gamma) * LOGP1[0]
    loss2 = -((1 - 1 / 3) ** gamma) * math.log(1 / 3)
    assert build_loss("focal", 3, focal_gamma=gamma)(LOGITS, TARGET).item() == pytest.approx((loss1 + loss2) / 2, rel=1e-6)


def test_focal_with_gamma_zero_is_cross_entropy():
    assert build_loss("focal", 3, focal_gamma=0.0)(LOGITS, TARGET).item() == pytest.approx(
        build_loss("ce", 3)(LOGITS, TARGET).item(), rel=1e-6)


def test_label_smoothing_matches_hand_value():
    eps, c = 0.1, 3
    q1 = [1 - eps + eps / c, eps / c, eps / c]
    loss1 = -sum(q * lp for q, lp in zip(q1, LOGP1))
    loss2 = math.log(3)  # any q summing to 1 against a uniform prediction
    assert build_loss("label_smoothing", 3, smoothing=eps)(LOGITS, TARGET).item() == pytest.approx(
        (loss1 + loss2) / 2, rel=1e-6)


def test_label_smoothing_spreads_over_the_given_number_of_classes():
    """With 5 classes the smoothing mass is eps/5 per class, not eps/3 (the baseline's bug)."""
    logits = torch.tensor([[1.0, 0.0, 0.0, 0.0, 0.0]])
    eps = 0.2
    lse = math.log(math.e + 4)
    logp = [1 - lse] + [-lse] * 4
    q = [1 - eps + eps / 5] + [eps / 5] * 4
    expected = -sum(a * b for a, b in zip(q, logp))
    assert build_loss("label_smoothing", 5, smoothing=eps)(logits, torch.tensor([0])).item() == pytest.approx(expected, rel=1e-6)


def test_soft_f1_matches_hand_value():
    p2 = [1 / 3] * 3
    # class 0: sample 1 is positive, sample 2 negative
    tp0, fp0, fn0 = P1[0], p2[0], 1 - P1[0]
    # class 1: no positives
    tp1, fp1, fn1 = 0.0, P1[1] + p2[1], 0.0
    # class 2: sample 2 is positive
    tp2, fp2, fn2 = p2[2], P1[2], 1 - p2[2]
    f1s = [2 * tp / (2 * tp + fp + fn) for tp, fp, fn in ((tp0, fp0, fn0), (tp1, fp1, fn1), (tp2, fp2, fn2))]
    expected = 1 - sum(f1s) / 3
    assert build_loss("f1", 3)(LOGITS, TARGET).item() == pytest.approx(expected, rel=1e-5)


def test_soft_f1_is_low_for_confident_correct_predictions():
    logits = torch.eye(4) * 20
    assert build_loss("f1", 4)(logits, torch.arange(4)).item() < 1e-6


@pytest.mark.parametrize("name", ["ce", "focal", "label_smoothing", "f1"])
def test_every_loss_backpropagates_for_18_classes(name):
    logits = torch.randn(6, 18, requires_grad=True)
    loss = build_loss(name, 18)(logits, torch.tensor([0, 5, 17, 3, 3, 9]))
    loss.backward()
    assert torch.isfinite(loss) and logits.grad is not None and logits.grad.abs().sum() > 0


def test_unknown_loss_names_the_choices():
    with pytest.raises(UserError, match=r"'hinge'.*ce, focal, label_smoothing, f1"):
        build_loss("hinge", 3)


def test_bad_smoothing_is_refused():
    with pytest.raises(UserError, match="1.5"):
        build_loss("label_smoothing", 3, smoothing=1.5)
