"""Batch mixing: mixup, cutmix and the vertical (left/right) cutmix, with mixed targets.

A mixed batch pairs each image with another of the same batch (a seeded permutation) and
returns :class:`MixedTarget` (both labels and the share ``lam`` of the first) instead of the
labels; :class:`MixedLoss` turns any of our losses into lam * loss(a) + (1 - lam) * loss(b),
which for cross-entropy is the loss on the soft target ``lam * onehot(a) + (1 - lam) *
onehot(b)`` (:func:`soft_targets`). It runs on the batch where it lives (the GPU on CUDA);
the random numbers come from the batch's own CPU generator, so a batch mixes the same way on
any device.

- ``mixup``: x = lam * x + (1 - lam) * x[perm], lam ~ Beta(alpha, alpha).
- ``cutmix``: a box of area (1 - lam) of the image comes from x[perm]; lam is then the exact
  share of pixels kept.
- ``cutmix-vertical``: the left or the right half comes from x[perm] (lam = the share kept),
  as one strong team of the competition did: faces sit in the middle of the frame, so each
  half holds half a face.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn as nn

from core.rulebook import MIX

MIXES = MIX.values


@dataclass
class MixedTarget:
    """The labels of a mixed batch: the image's own ``a``, its partner's ``b``, and ``lam``,
    the share of the image that is its own."""

    a: torch.Tensor
    b: torch.Tensor
    lam: float

    def __len__(self) -> int:
        return len(self.a)


def soft_targets(target: MixedTarget | torch.Tensor, num_classes: int) -> torch.Tensor:
    """(N, num_classes) target distributions; every row sums to one."""
    if not isinstance(target, MixedTarget):
        return nn.functional.one_hot(target, num_classes).float()
    a = nn.functional.one_hot(target.a, num_classes).float()
    b = nn.functional.one_hot(target.b, num_classes).float()
    return target.lam * a + (1 - target.lam) * b


class MixedLoss(nn.Module):
    """``criterion`` for plain labels, and lam * criterion(a) + (1 - lam) * criterion(b) for mixed ones."""

    def __init__(self, criterion: nn.Module):
        super().__init__()
        self.criterion = criterion

    def forward(self, logits: torch.Tensor, target) -> torch.Tensor:
        if isinstance(target, MixedTarget):
            return target.lam * self.criterion(logits, target.a) + (1 - target.lam) * self.criterion(logits, target.b)
        return self.criterion(logits, target)


def _beta(alpha: float, g: torch.Generator) -> float:
    """One Beta(alpha, alpha) draw, seeded from ``g`` (torch's Beta takes no generator)."""
    seed = int(torch.randint(0, 2**31 - 1, (1,), generator=g))
    return float(np.random.default_rng(seed).beta(alpha, alpha))


def cut_box(h: int, w: int, lam: float, g: torch.Generator) -> tuple[int, int, int, int]:
    """(top, bottom, left, right) of a box of about (1 - lam) of the image, centred at random
    and clipped to it (CutMix's rule)."""
    cut = np.sqrt(1.0 - lam)
    bh, bw = int(h * cut), int(w * cut)
    cy, cx = (int(v) for v in torch.randint(0, 1 << 30, (2,), generator=g) % torch.tensor([h, w]))
    return max(cy - bh // 2, 0), min(cy + bh // 2, h), max(cx - bw // 2, 0), min(cx + bw // 2, w)


def half_box(h: int, w: int, g: torch.Generator) -> tuple[int, int, int, int]:
    """The left or the right half of the image, at random."""
    left = bool(torch.rand(1, generator=g) < 0.5)
    return (0, h, 0, w // 2) if left else (0, h, w - w // 2, w)


def mix_batch(x: torch.Tensor, y: torch.Tensor, kind: str, prob: float, alpha: float,
              g: torch.Generator) -> tuple[torch.Tensor, torch.Tensor | MixedTarget]:
    """Mix the batch with probability ``prob`` (one draw per batch); see the module docstring."""
    if kind == "none" or len(y) < 2 or float(torch.rand(1, generator=g)) >= prob:
        return x, y
    if kind not in MIXES:
        raise ValueError(f"mix {kind!r}; choose one of {MIXES}")
    perm = torch.randperm(len(y), generator=g).to(x.device)
    if kind == "mixup":
        lam = _beta(alpha, g)
        return lam * x + (1 - lam) * x[perm], MixedTarget(y, y[perm], lam)
    n, c, h, w = x.shape
    top, bottom, left, right = half_box(h, w, g) if kind == "cutmix-vertical" else cut_box(h, w, _beta(alpha, g), g)
    x = x.clone()
    x[:, :, top:bottom, left:right] = x[perm][:, :, top:bottom, left:right]
    lam = 1.0 - (bottom - top) * (right - left) / (h * w)
    return x, MixedTarget(y, y[perm], lam)
