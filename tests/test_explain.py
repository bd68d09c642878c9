"""Grad-CAM maps and embeddings (core.explain) on small models, without training."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn as nn

from core import explain
from core.errors import UserError
from core.models import new_model


def red_detector() -> nn.Module:
    """Class 1's logit grows with the red-minus-green light in the image, class 0's shrinks:
    Grad-CAM for class 1 must light up exactly where the red is."""
    conv = nn.Conv2d(3, 1, kernel_size=3, padding=1, bias=False)
    with torch.no_grad():
        conv.weight.zero_()
        conv.weight[0, 0, 1, 1], conv.weight[0, 1, 1, 1] = 1.0, -1.0
    head = nn.Linear(1, 2)
    with torch.no_grad():
        head.weight[:] = torch.tensor([[-1.0], [1.0]])
        head.bias.zero_()
    return nn.Sequential(conv, nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), head).eval()


def test_gradcam_returns_one_map_per_image_of_its_size_and_finds_the_evidence():
    images = np.zeros((3, 40, 24, 3), np.uint8)  # taller than wide: a transposed map would not fit
    images[:, :, :, 1] = 60
    images[0, 5:15, 2:10] = (255, 0, 0)  # top left
    images[1, 25:35, 12:22] = (255, 0, 0)  # bottom right
    images[2, 16:24, 8:16] = (255, 0, 0)  # middle
    maps = explain.gradcam(red_detector(), images, [1, 1, 1])
    assert maps.shape == (3, 40, 24) and maps.dtype == np.float32
    assert np.isfinite(maps).all() and maps.min() >= 0.0 and maps.max() <= 1.0
    red = (images[..., 0] == 255)
    for m, inside in zip(maps, red):
        assert m[inside].mean() > 0.5 > m[~inside].mean() + 0.3
    shown = explain.overlay(images[0], maps[0])
    assert shown.shape == (40, 24, 3) and shown.dtype == np.uint8
    with pytest.raises(ValueError, match="one class per image"):
        explain.gradcam(red_detector(), images, [1])


def test_gradcam_on_the_project_models():
    rng = np.random.default_rng(0)
    images = rng.integers(0, 255, size=(12, 64, 48, 3), dtype=np.uint8)
    small = new_model("smallcnn", 18, "factorized").eval()
    maps = explain.gradcam(small, images, list(range(12)))
    assert maps.shape == (12, 64, 48) and np.isfinite(maps).all()
    assert explain.cam_layer(small, explain.batch(images[:1])) is small.features
    resnet = new_model("resnet18", 5).eval()
    assert explain.cam_layer(resnet, explain.batch(images[:1])) is resnet.layer4  # not the shared relu


def test_penultimate_features_and_2d_maps():
    rng = np.random.default_rng(1)
    images = rng.integers(0, 255, size=(20, 32, 32, 3), dtype=np.uint8)
    model = new_model("smallcnn", 18, "factorized").eval()
    feats = explain.penultimate_features(model, "smallcnn", images, batch_size=8)
    assert feats.shape == (20, 192) and np.isfinite(feats).all()
    with torch.inference_mode():  # the hook reads exactly what the head is given
        expected = torch.flatten(nn.functional.adaptive_avg_pool2d(model.features(explain.batch(images[:2])), 1), 1)
    np.testing.assert_allclose(feats[:2], expected.numpy(), rtol=1e-4, atol=1e-5)
    for method in explain.EMBED_METHODS:
        xy = explain.embed_2d(feats, method)
        assert xy.shape == (20, 2) and np.isfinite(xy).all() and xy.std(axis=0).min() > 0
    with pytest.raises(UserError, match="use PCA"):
        explain.embed_2d(np.zeros((explain.TSNE_MAX + 1, 4)), "tsne")
    with pytest.raises(UserError, match="choose one of: pca, tsne"):
        explain.embed_2d(feats, "umap")
