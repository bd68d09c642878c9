"""The logits loop that training's validation and prediction share: uint8 images in, logits
out, under ``model.eval()`` and ``torch.inference_mode()``, never augmented (test-time
mirroring is a choice, ``tta``)."""

from __future__ import annotations

import contextlib

import numpy as np
import torch
import torch.nn as nn

from core.augment import normalize, to_float


def _rows(images, idx: np.ndarray, device) -> torch.Tensor:
    """uint8 rows on ``device``: from an ImageStore (core.training.batches) that may already
    hold them there, or from a numpy array, copied as uint8 (not float: 4x fewer bytes)."""
    if hasattr(images, "rows"):
        return images.rows(idx)
    return torch.from_numpy(np.ascontiguousarray(images[idx])).to(device)


def predict_logits(model: nn.Module, images: np.ndarray, rows: np.ndarray | None = None, batch_size: int = 128,
                   device: torch.device | str = "cpu", channels_last: bool = False,
                   autocast=contextlib.nullcontext, tta: bool = False) -> np.ndarray:
    """(len(rows), C) float32 logits for uint8 (N, H, W, 3) ``images``, under eval() + inference_mode.

    ``tta``: also run the mirrored images and return the log of the two softmaxes' mean
    (for recipes that flip in training, i.e. whose labels do not change in a mirror).
    """
    model.eval()
    rows = np.arange(len(images)) if rows is None else np.asarray(rows)
    out = []
    with torch.inference_mode():
        for start in range(0, len(rows), batch_size):
            idx = rows[start:start + batch_size]
            x = normalize(to_float(_rows(images, idx, device)))
            if channels_last:
                x = x.contiguous(memory_format=torch.channels_last)
            with autocast():
                logits = model(x).float()
                if tta:
                    probs = (logits.softmax(1) + model(x.flip(3)).float().softmax(1)) / 2
                    logits = probs.clamp_min(1e-12).log()
            out.append(logits)  # stays on the device: one copy back at the end, no sync per batch
    return torch.cat(out).cpu().numpy() if out else np.zeros((0, 0), dtype=np.float32)
