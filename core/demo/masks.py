"""Masks, drawn per photo in the photo's jittered frame: worn over nose and mouth, or lowered."""

from __future__ import annotations

import cv2
import numpy as np

from core.demo.person import MASK_STYLES, Person, _jitter_colour
from core.demo.portrait import landmarks
from core.demo.primitives import HEIGHT, WIDTH, _arc, _blend, _mix, _poly, _pts, _transform


def mask_outline(p: Person, kind: str, drop: float) -> np.ndarray:
    """Mask polygon in the person's frame; `drop` moves it down (a lowered mask)."""
    cx, cy, fw, fh = p.cx, p.cy, p.fw, p.fh
    lm = landmarks(p)
    hw = 0.5 * fw * (0.98 if drop == 0 else 0.9)
    top = lm["eye_y"] + 0.1 * fh + drop        # at the sides
    peak = lm["eye_y"] + 0.065 * fh + drop     # over the nose bridge
    side_low = cy + 0.33 * fh + drop
    bottom = lm["chin_y"] + 0.05 * fh + drop
    t = np.linspace(-1, 1, 15)
    if kind == "surgical":
        top_edge = np.stack([cx + hw * t, top - (top - peak) * 0.7 * (1 - t ** 2)], 1)
        bottom_edge = np.stack([cx - 0.95 * hw * t, bottom - (bottom - side_low - 0.05 * fh) * t ** 4], 1)
        return np.concatenate([top_edge, bottom_edge])
    if kind == "kf94":
        # Boat shape with pointed sides halfway down.
        mid = (top + bottom) / 2 - 0.05 * fh
        top_edge = np.stack([cx + 1.04 * hw * t, mid - (mid - peak) * (1 - t ** 2) ** 0.7], 1)
        bottom_edge = np.stack([cx - 1.04 * hw * t,
                                mid + (bottom + 0.02 * fh - mid) * (1 - t ** 2) ** 0.8], 1)
        return np.concatenate([top_edge, bottom_edge])
    # Cloth masks follow the face: peaked over the nose, rounded under the chin.
    top_edge = np.stack([cx + hw * t, top - (top - peak) * (1 - np.abs(t)) ** 1.4], 1)
    bottom_edge = np.stack([cx - 0.92 * hw * t, bottom - (bottom - side_low) * t ** 2], 1)
    return np.concatenate([top_edge, bottom_edge])


def mask_drop(p: Person, incorrect: bool) -> float:
    """How far a lowered mask sits below the worn one: under the nose, or on the chin."""
    if not incorrect:
        return 0.0
    lm = landmarks(p)
    worn_peak = lm["eye_y"] + 0.065 * p.fh
    target = lm["mouth_y"] + 0.07 * p.fh if p.incorrect_chin_only else lm["nose_y"] + 0.075 * p.fh
    return target - worn_peak


def _mask_pattern(layer, kind: str, accent, local, p: Person, top_y: float, bot_y: float):
    """Pleats, seams, dots, stripes or checks on a mask layer; `local` maps frame -> layer points."""
    cx, fw, fh = p.cx, p.fw, p.fh
    thin = max(1, int(round(fw / 100)))
    if kind == "surgical":
        for k in range(1, 4):  # pleats
            y = top_y + (bot_y - top_y) * (0.25 + 0.2 * k) - 0.05 * fh
            _poly(layer, local(_arc(cx, y, 0.47 * fw, -0.01 * fh)), accent, closed=False, thickness=thin + 1)
        _poly(layer, local(_arc(cx, top_y - 0.005 * fh, 0.15 * fw, 0.01 * fh)), accent, closed=False,
              thickness=thin + 1)  # nose wire
    elif kind == "kf94":
        mid = (top_y + bot_y) / 2 - 0.02 * fh
        _poly(layer, local(_arc(cx, mid, 0.52 * fw, 0.02 * fh)), accent, closed=False, thickness=thin)
    elif kind == "cloth":
        _poly(layer, local([(cx, top_y - 0.04 * fh), (cx, bot_y + 0.01 * fh)]), accent, closed=False,
              thickness=thin)
    elif kind == "dots":
        step = 0.085 * fw
        gx, gy = np.meshgrid(np.arange(cx - 0.55 * fw, cx + 0.55 * fw, step),
                             np.arange(top_y - 0.05 * fh, bot_y + 0.02 * fh, step))
        gx = gx + (np.arange(gx.shape[0]) % 2)[:, None] * step / 2  # staggered rows
        radius = max(1, int(round(0.018 * fw * 16)))
        for c in _pts(local(np.stack([gx.ravel(), gy.ravel()], 1))):
            cv2.circle(layer, (int(c[0]), int(c[1])), radius, accent, -1, cv2.LINE_AA, shift=4)
    elif kind == "stripes":
        for gy in np.arange(top_y - 0.05 * fh, bot_y + 0.02 * fh, 0.06 * fw):
            _poly(layer, local([(cx - 0.6 * fw, gy), (cx + 0.6 * fw, gy)]), accent, closed=False,
                  thickness=max(1, int(round(fw / 45))))
    elif kind == "check":
        step = 0.1 * fw
        for gy in np.arange(top_y - 0.05 * fh, bot_y + 0.02 * fh, step):
            _poly(layer, local([(cx - 0.6 * fw, gy), (cx + 0.6 * fw, gy)]), accent, closed=False,
                  thickness=thin + 1)
        for gx in np.arange(cx - 0.6 * fw, cx + 0.6 * fw, step):
            _poly(layer, local([(gx, top_y - 0.1 * fh), (gx, bot_y + 0.05 * fh)]), accent, closed=False,
                  thickness=thin + 1)


def draw_mask(img, p: Person, style: int, incorrect: bool, M: np.ndarray, rng):
    """Draw mask `style` worn (over nose and mouth) or lowered, with ear loops and shading."""
    _name, kind, colour, accent = MASK_STYLES[style]
    colour = _jitter_colour(rng, colour, 3)
    drop = mask_drop(p, incorrect)
    outline = mask_outline(p, kind, drop)
    cx, cy, fw, fh = p.cx, p.cy, p.fw, p.fh
    lm = landmarks(p)
    # Ear loops from the mask's upper and lower corners to the ear (white on light masks).
    loop = (228, 228, 228) if kind in ("surgical", "kf94") and sum(colour) > 300 else colour
    loop = _mix(loop, (0, 0, 0), 0.1)
    loop_w = max(1, int(round(fw / 70)))
    n = len(outline) // 2  # the outline is the top edge left->right, then the bottom edge back
    for s, (upper, lower) in ((1, (outline[n - 1], outline[n])), (-1, (outline[0], outline[-1]))):
        ear_top = (cx + s * 0.54 * fw, lm["eye_y"] - 0.03 * fh)
        ear_low = (cx + s * 0.53 * fw, lm["eye_y"] + 0.1 * fh)
        _poly(img, _transform(M, [upper, ear_top]), loop, closed=False, thickness=loop_w)
        _poly(img, _transform(M, [lower, ear_low]), loop, closed=False, thickness=loop_w)
    poly = _transform(M, outline)
    x0, y0 = np.floor(poly.min(0)).astype(int) - 2
    x1, y1 = np.ceil(poly.max(0)).astype(int) + 3
    x0, y0, x1, y1 = max(0, x0), max(0, y0), min(WIDTH, x1), min(HEIGHT, y1)
    if x1 <= x0 or y1 <= y0:
        return
    box_w, box_h = x1 - x0, y1 - y0
    layer = np.empty((box_h, box_w, 3), np.uint8)
    layer[:] = np.array(colour).round().astype(np.uint8)
    top_y = lm["eye_y"] + 0.08 * fh + drop
    bot_y = lm["chin_y"] + 0.05 * fh + drop
    _mask_pattern(layer, kind, accent, lambda pts: _transform(M, pts) - (x0, y0), p, top_y, bot_y)
    # Alpha from the outline, shading darker to the bottom and the sides (the mask wraps the face).
    alpha = np.zeros((box_h, box_w), np.uint8)
    cv2.fillPoly(alpha, [_pts(poly - (x0, y0))], 255, cv2.LINE_AA, shift=4)
    xs, ys = np.meshgrid(np.arange(x0, x1, dtype=np.float32), np.arange(y0, y1, dtype=np.float32))
    mcx, mcy = _transform(M, [(cx, (top_y + bot_y) / 2)])[0]
    u = (xs - mcx) / (0.5 * fw)
    v = (ys - mcy) / max(1.0, bot_y - top_y)
    shade = 1.0 - 0.18 * np.abs(u) ** 3 - 0.12 * np.clip(v, 0, None) + 0.04 * np.clip(-v, 0, None)
    layer = np.clip(layer.astype(np.float32) * shade[..., None], 0, 255)
    _blend(img[y0:y1, x0:x1], layer, alpha.astype(np.float32) / 255)
