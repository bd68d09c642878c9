"""Drawing primitives for the 384x512 frame: anti-aliased shapes, soft shading and blending.

Points are floats drawn with OpenCV's 4-bit sub-pixel shift, so small faces stay smooth.
"""

from __future__ import annotations

import math

import cv2
import numpy as np

WIDTH, HEIGHT = 384, 512


def _jitter_colour(rng, colour, spread):
    return tuple(float(np.clip(c + rng.normal(0, spread), 0, 255)) for c in colour)


def _mix(a, b, t):
    return tuple(float(x * (1 - t) + y * t) for x, y in zip(a, b))


def _roi(cx, cy, rx, ry):
    """Clipped integer box around a centre: (x0, y0, x1, y1)."""
    return (max(0, int(cx - rx)), max(0, int(cy - ry)),
            min(WIDTH, int(math.ceil(cx + rx)) + 1), min(HEIGHT, int(math.ceil(cy + ry)) + 1))


def _grid(box):
    x0, y0, x1, y1 = box
    return np.meshgrid(np.arange(x0, x1, dtype=np.float32), np.arange(y0, y1, dtype=np.float32))


def _shade(img, cx, cy, ax, ay, strength):
    """Soft Gaussian light (strength < 0) or shadow (> 0) centred at (cx, cy)."""
    box = _roi(cx, cy, 2.2 * ax, 2.2 * ay)
    x0, y0, x1, y1 = box
    if x1 <= x0 or y1 <= y0:
        return
    xs, ys = _grid(box)
    w = np.exp(-(((xs - cx) / ax) ** 2 + ((ys - cy) / ay) ** 2))
    roi = img[y0:y1, x0:x1].astype(np.float32)
    roi *= (1 - strength * w)[..., None]
    img[y0:y1, x0:x1] = np.clip(roi, 0, 255).astype(np.uint8)


def _pts(points):
    return np.round(np.asarray(points, dtype=np.float64) * 16).astype(np.int32)


def _poly(img, points, colour, closed=True, thickness=-1):
    """Anti-aliased polygon (thickness -1: filled) with sub-pixel points."""
    pts = _pts(points)
    if thickness < 0:
        cv2.fillPoly(img, [pts], colour, cv2.LINE_AA, shift=4)
    else:
        cv2.polylines(img, [pts], closed, colour, thickness, cv2.LINE_AA, shift=4)


def _ellipse(img, c, axes, colour, thickness=-1, angle=0.0, start=0, end=360):
    cv2.ellipse(img, (int(round(c[0] * 16)), int(round(c[1] * 16))),
                (max(1, int(round(axes[0] * 16))), max(1, int(round(axes[1] * 16)))),
                angle, start, end, colour, thickness, cv2.LINE_AA, shift=4)


def _arc(cx, cy, half_w, rise, n=12):
    """Points of a gentle arc from cx-half_w to cx+half_w whose middle is `rise` above cy."""
    t = np.linspace(-1, 1, n)
    return np.stack([cx + half_w * t, cy - rise * (1 - t ** 2)], axis=1)


def _blend(img, layer, alpha):
    """img = img * (1 - alpha) + layer * alpha, alpha float HxW in 0..1 (in place)."""
    a = alpha[..., None]
    img[:] = (img.astype(np.float32) * (1 - a) + layer.astype(np.float32) * a).astype(np.uint8)


def _transform(M, points) -> np.ndarray:
    pts = np.asarray(points, dtype=np.float64).reshape(-1, 2)
    return pts @ M[:, :2].T + M[:, 2]
