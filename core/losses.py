"""Classification losses. The number of classes always comes from the data, never a constant.

Every loss takes raw logits (N, C) and integer targets (N,) and returns the batch mean.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from core.errors import UserError
from core.rulebook import LOSS

LOSSES = LOSS.values


class FocalLoss(nn.Module):
    """-(1 - p_t)^gamma * log(p_t): down-weights examples the model already gets right."""

    def __init__(self, gamma: float = 2.0):
        super().__init__()
        self.gamma = gamma

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        log_p = F.log_softmax(logits.float(), dim=1).gather(1, target[:, None]).squeeze(1)
        return (-(1 - log_p.exp()) ** self.gamma * log_p).mean()


class LabelSmoothingLoss(nn.Module):
    """Cross-entropy against (1 - eps) * one_hot + eps / C, with C = this model's classes."""

    def __init__(self, num_classes: int, smoothing: float = 0.1):
        super().__init__()
        self.num_classes, self.smoothing = num_classes, smoothing

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        log_p = F.log_softmax(logits.float(), dim=1)
        q = torch.full_like(log_p, self.smoothing / self.num_classes)
        q.scatter_(1, target[:, None], 1 - self.smoothing + self.smoothing / self.num_classes)
        return -(q * log_p).sum(1).mean()


class SoftF1Loss(nn.Module):
    """1 - macro F1 over all C classes, with softmax probabilities as soft counts.

    tp = sum p * y, fp = sum p * (1 - y), fn = sum (1 - p) * y per class;
    F1_c = 2 tp / (2 tp + fp + fn + eps).
    """

    def __init__(self, num_classes: int, eps: float = 1e-7):
        super().__init__()
        self.num_classes, self.eps = num_classes, eps

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        p = F.softmax(logits.float(), dim=1)
        y = F.one_hot(target, self.num_classes).to(p.dtype)
        tp = (p * y).sum(0)
        fp = (p * (1 - y)).sum(0)
        fn = ((1 - p) * y).sum(0)
        f1 = 2 * tp / (2 * tp + fp + fn + self.eps)
        return 1 - f1.mean()


def build_loss(name: str, num_classes: int, focal_gamma: float = 2.0, smoothing: float = 0.1) -> nn.Module:
    """The loss called ``name`` (ce | focal | label_smoothing | f1) for ``num_classes`` classes."""
    if num_classes < 2:
        raise UserError(f"a classifier needs at least 2 classes, got num_classes={num_classes}")
    if name == "ce":
        return nn.CrossEntropyLoss()
    if name == "focal":
        if focal_gamma < 0:
            raise UserError(f"focal gamma must be >= 0, got {focal_gamma}")
        return FocalLoss(focal_gamma)
    if name == "label_smoothing":
        if not 0.0 <= smoothing < 1.0:
            raise UserError(f"label smoothing must be in [0, 1), got {smoothing}")
        return LabelSmoothingLoss(num_classes, smoothing)
    if name == "f1":
        return SoftF1Loss(num_classes)
    LOSS.check(name, "--loss")
    raise AssertionError(f"loss {name!r} is in the rule book but has no implementation")
