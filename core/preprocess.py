"""The deterministic part of a recipe: crop -> resize to the input size -> enhance.

Enhancement runs after the resize, on exactly the pixels the model sees, so the explorer's
preview and the training cache agree pixel for pixel (and it is cheaper on small images).
"""

from __future__ import annotations

import math
from pathlib import Path

import cv2
import numpy as np
from PIL import Image, ImageEnhance

from core.images import load_rgb
from core.recipe import Crop, Enhance, Recipe

Box = tuple[float, float, float, float]  # x, y, w, h in pixels


def _fit_aspect(x0: float, y0: float, x1: float, y1: float, aspect: float, W: int, H: int) -> tuple[int, int, int, int]:
    """Grow the box (never shrink) to width/height == aspect, then slide it inside the image."""
    w, h = x1 - x0, y1 - y0
    if w / h < aspect:
        w = h * aspect
    else:
        h = w / aspect
    w, h = min(w, W), min(h, H)
    cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
    left = min(max(cx - w / 2, 0), W - w)
    top = min(max(cy - h / 2, 0), H - h)
    return int(round(left)), int(round(top)), int(round(left + w)), int(round(top + h))


def crop_box(crop: Crop, size: tuple[int, int], face: Box | None, aspect: float) -> tuple[int, int, int, int]:
    """Pixel box (left, top, right, bottom) that the recipe's crop takes from an image of ``size``.

    ``face`` is this image's detected face box, or None. ``aspect`` is the input width/height;
    face crops are grown to it so resizing never distorts a face.
    """
    W, H = size
    if crop.mode == "none":
        return 0, 0, W, H
    if crop.mode == "face" and face is not None and not any(math.isnan(v) for v in face):
        fx, fy, fw, fh = face
        m = crop.face_margin
        return _fit_aspect(max(fx - m * fw, 0), max(fy - m * fh, 0), min(fx + fw * (1 + m), W),
                           min(fy + fh * (1 + m), H), aspect, W, H)
    bx, by, bw, bh = crop.box
    left, top = int(round(bx * W)), int(round(by * H))
    right, bottom = int(round((bx + bw) * W)), int(round((by + bh) * H))
    return left, top, max(right, left + 1), max(bottom, top + 1)


def equalize(arr: np.ndarray, how: str) -> np.ndarray:
    """Histogram equalisation of the luminance only, so colours keep their hue."""
    if how == "none":
        return arr
    lab = cv2.cvtColor(arr, cv2.COLOR_RGB2LAB)
    if how == "hist":
        lab[..., 0] = cv2.equalizeHist(lab[..., 0])
    else:
        lab[..., 0] = cv2.createCLAHE(clipLimit=2.0, tileGridSize=(8, 8)).apply(lab[..., 0])
    return cv2.cvtColor(lab, cv2.COLOR_LAB2RGB)


def enhance(img: Image.Image, e: Enhance) -> np.ndarray:
    """Apply the enhancement settings; returns an RGB uint8 array."""
    for factor, op in ((e.brightness, ImageEnhance.Brightness), (e.contrast, ImageEnhance.Contrast),
                       (e.sharpness, ImageEnhance.Sharpness), (e.color, ImageEnhance.Color)):
        if factor != 1.0:
            img = op(img).enhance(factor)
    if e.grayscale:
        img = img.convert("L").convert("RGB")
    return equalize(np.asarray(img), e.equalize)


def preprocess(img: Image.Image, recipe: Recipe, face: Box | None = None) -> np.ndarray:
    """Crop, resize to ``recipe.input_size`` and enhance: the (H, W, 3) uint8 the model sees."""
    out_w, out_h = recipe.input_size
    box = crop_box(recipe.crop, img.size, face, out_w / out_h)
    arr = np.asarray(img)[box[1]:box[3], box[0]:box[2]]
    # INTER_AREA averages the pixels it drops: no aliasing on the typical 4x downscale.
    interp = cv2.INTER_AREA if arr.shape[1] > out_w else cv2.INTER_LINEAR
    small = cv2.resize(np.ascontiguousarray(arr), (out_w, out_h), interpolation=interp)
    return enhance(Image.fromarray(small), recipe.enhance)


def preprocess_path(path: str | Path, recipe: Recipe, face: Box | None = None) -> np.ndarray:
    return preprocess(load_rgb(path), recipe, face)
