"""Crop, resize and enhance: the exact pixels the model sees."""

from __future__ import annotations

import numpy as np
from PIL import Image

from core.preprocess import crop_box, equalize, preprocess
from core.recipe import Crop, Recipe


def gradient_image(w=384, h=512) -> Image.Image:
    x = np.linspace(0, 255, w, dtype=np.float32)[None, :, None]
    y = np.linspace(0, 255, h, dtype=np.float32)[:, None, None]
    arr = np.concatenate([np.broadcast_to(x, (h, w, 1)), np.broadcast_to(y, (h, w, 1)), np.full((h, w, 1), 90.0)], 2)
    return Image.fromarray(arr.astype(np.uint8))


def test_default_recipe_only_resizes():
    out = preprocess(gradient_image(), Recipe())
    assert out.shape == (128, 96, 3) and out.dtype == np.uint8
    # left-to-right gradient survives the resize
    assert out[64, 5, 0] < out[64, 90, 0]


def test_fixed_crop_takes_the_box():
    box = crop_box(Crop(mode="fixed", box=(0.25, 0.1, 0.5, 0.5)), (384, 512), None, 0.75)
    assert box == (96, 51, 288, 307)


def test_face_crop_keeps_aspect_and_stays_inside():
    crop = Crop(mode="face", box=(0.0, 0.0, 1.0, 1.0), face_margin=0.5)
    left, top, right, bottom = crop_box(crop, (384, 512), (300.0, 20.0, 80.0, 80.0), 0.75)
    assert 0 <= left and right <= 384 and 0 <= top and bottom <= 512
    assert abs((right - left) / (bottom - top) - 0.75) < 0.02
    assert left <= 300 and right >= 380  # the face is inside
    # no face found -> the fixed box
    assert crop_box(crop, (384, 512), (np.nan,) * 4, 0.75) == (0, 0, 384, 512)
    assert crop_box(crop, (384, 512), None, 0.75) == (0, 0, 384, 512)


def test_enhancement_factors_change_pixels_as_named():
    img = gradient_image()
    base = preprocess(img, Recipe()).astype(int)
    brighter = preprocess(img, Recipe().replace(enhance={"brightness": 1.5})).astype(int)
    assert brighter.mean() > base.mean() + 10
    flat = preprocess(img, Recipe().replace(enhance={"contrast": 0.0})).astype(int)
    assert flat.std() < 2
    grey = preprocess(img, Recipe().replace(enhance={"grayscale": True}))
    assert (grey[..., 0] == grey[..., 1]).all() and (grey[..., 1] == grey[..., 2]).all()
    unchanged = preprocess(img, Recipe().replace(enhance={"brightness": 1.0, "sharpness": 1.0}))
    assert (unchanged == base).all()


def test_equalisation_spreads_a_dull_histogram():
    dull = np.full((64, 48, 3), 100, np.uint8)
    dull[:, 24:] = 110
    for how in ("hist", "clahe"):
        out = equalize(dull, how)
        assert np.ptp(out[..., 0].astype(int)) > 10
    assert (equalize(dull, "none") == dull).all()
