"""Why a run's model says what it says: Grad-CAM maps and penultimate-layer embeddings.

* :func:`gradcam` - where the model looked for a class, with the grad-cam package
  (pytorch-grad-cam's ``GradCAM``) on the last convolutional stage (:func:`cam_layer`): one
  map in [0, 1] per image, of the image's size, ready for :func:`overlay`.
* :func:`penultimate_features` and :func:`embed_2d` - the vectors the model's head reads,
  reduced to 2-D with scikit-learn (PCA, or t-SNE for up to ``TSNE_MAX`` points), so similar
  images sit together and mistakes show where the classes overlap.

Images are what the model saw: the run's recipe applied (crop, resize, enhance) from the same
preprocessed-image cache the training used (:func:`run_images`), never augmented. With
``--folds K`` each image is explained by the fold model that held it out (:func:`load_fold_model`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import pandas as pd
import torch
import torch.nn as nn

from core.augment import normalize, to_float
from core.errors import UserError
from core.rulebook import EMBED

EMBED_METHODS = EMBED.values
TSNE_MAX = 3000  # t-SNE costs O(n log n) per iteration: beyond a few thousand points use PCA


# ----------------------------------------------------------------------------- a run's model and images

def load_fold_model(run: str | Path, fold: int = 0, device: str | torch.device = "cpu") -> tuple[nn.Module, dict]:
    """The best checkpoint of one fold of ``run`` (fold 0 for a single split), in eval mode,
    and the checkpoint's metadata (model_name, class_names, recipe...)."""
    from core.models import new_model
    from core.runs import checkpoint_paths, load_checkpoint

    paths = checkpoint_paths(run)
    if not 0 <= fold < len(paths):
        raise UserError(f"{run}: has {len(paths)} model(s); fold {fold} does not exist")
    if not paths[fold].is_file():
        raise UserError(f"{paths[fold]}: missing; the run has no best checkpoint yet (it must finish an epoch)")
    ckpt = load_checkpoint(paths[fold])
    model = new_model(ckpt["model_name"], int(ckpt["num_classes"]), ckpt.get("head", "flat"))
    model.load_state_dict(ckpt["model"])
    return model.to(device).eval(), {k: v for k, v in ckpt.items() if k != "model"}


def run_images(run: str | Path, progress: Callable[[int, int], None] | None = None) -> tuple[pd.DataFrame, np.ndarray]:
    """(index, images) of the run's training data: the labelled rows the run trained on and
    their (N, H, W, 3) uint8 pixels as the run's recipe prepares them (the training's cache)."""
    from core.cache import build_cache
    from core.recipe import Recipe
    from core.runs import read_config, read_json, run_path
    from core.training import scan_labelled

    run = run_path(run)
    cfg = read_config(run)["config"]
    _, df = scan_labelled(cfg["data"], cfg.get("corrections"), cfg.get("leave_out"))  # the rows the run saw
    recipe = Recipe.from_dict(read_json(run / "recipe.json"))
    return df, build_cache(df, recipe, progress=progress)


def batch(images: np.ndarray) -> torch.Tensor:
    """uint8 (N, H, W, 3) -> the normalised float (N, 3, H, W) the models take."""
    return normalize(to_float(torch.from_numpy(np.ascontiguousarray(images))))


# ----------------------------------------------------------------------------- Grad-CAM

def cam_layer(model: nn.Module, sample: torch.Tensor) -> nn.Module:
    """The last module, in the order their forward passes end, whose output is a feature map
    (N, C, H, W with H * W > 1) and which runs once per forward: resnet's ``layer4``, the small
    CNN's and densenet's ``features``. Found by running ``sample`` once, so any backbone works."""
    ended: list[tuple[nn.Module, tuple]] = []
    calls: dict[int, int] = {}

    def record(module, _inputs, output):
        calls[id(module)] = calls.get(id(module), 0) + 1
        if isinstance(output, torch.Tensor) and output.dim() == 4 and output.shape[-1] * output.shape[-2] > 1:
            ended.append((module, tuple(output.shape)))

    hooks = [m.register_forward_hook(record) for m in model.modules() if m is not model]
    try:
        with torch.no_grad():
            model(sample[:1])
    finally:
        for h in hooks:
            h.remove()
    once = [m for m, _ in ended if calls[id(m)] == 1]
    if not once:
        raise UserError(f"{model.__class__.__name__}: no convolutional feature map found for Grad-CAM")
    return once[-1]


def gradcam(model: nn.Module, images: np.ndarray, classes: Sequence[int], layer: nn.Module | None = None) -> np.ndarray:
    """(N, H, W) float32 maps in [0, 1]: where ``model`` found evidence for ``classes[i]`` in
    ``images[i]`` (uint8, N x H x W x 3, as the model sees them). Runs on the model's device."""
    from pytorch_grad_cam import GradCAM
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

    if len(images) != len(classes):
        raise ValueError(f"one class per image: {len(images)} images, {len(classes)} classes")
    if len(images) == 0:
        return np.zeros((0, 0, 0), np.float32)
    device = next(model.parameters()).device
    x = batch(images).to(device)
    model.eval()
    layer = layer or cam_layer(model, x)
    with GradCAM(model=model, target_layers=[layer]) as cam:
        maps = cam(input_tensor=x, targets=[ClassifierOutputTarget(int(c)) for c in classes])
    return np.asarray(maps, dtype=np.float32)


def overlay(image: np.ndarray, cam: np.ndarray, weight: float = 0.5) -> np.ndarray:
    """``image`` (uint8 H x W x 3) with ``cam`` (H x W, [0, 1]) drawn over it as a heat map."""
    from pytorch_grad_cam.utils.image import show_cam_on_image

    return show_cam_on_image(image.astype(np.float32) / 255.0, cam, use_rgb=True, image_weight=1.0 - weight)


# ----------------------------------------------------------------------------- embeddings

def head_module(model: nn.Module, model_name: str) -> nn.Module:
    """The classification head whose input is the penultimate-layer feature vector."""
    from core.models import HEAD_PATH, TimmNet

    if isinstance(model, TimmNet):
        return model.head
    module = model
    for part in HEAD_PATH[model_name].split("."):
        module = getattr(module, part)
    return module


def penultimate_features(model: nn.Module, model_name: str, images: np.ndarray, batch_size: int = 128) -> np.ndarray:
    """(N, D) float32: what the head of ``model`` reads for each image (eval mode, no gradients)."""
    captured: list[torch.Tensor] = []
    hook = head_module(model, model_name).register_forward_pre_hook(
        lambda _m, inputs: captured.append(torch.flatten(inputs[0], 1).float().cpu()))
    device = next(model.parameters()).device
    model.eval()
    try:
        with torch.inference_mode():
            for start in range(0, len(images), batch_size):
                model(batch(images[start:start + batch_size]).to(device))
    finally:
        hook.remove()
    return torch.cat(captured).numpy() if captured else np.zeros((0, 0), np.float32)


def embed_2d(features: np.ndarray, method: str = "pca", seed: int = 0) -> np.ndarray:
    """(N, 2) coordinates of ``features`` (standardised first) by PCA or t-SNE."""
    from sklearn.decomposition import PCA
    from sklearn.manifold import TSNE
    from sklearn.preprocessing import StandardScaler

    if method not in EMBED_METHODS:
        raise UserError(f"embedding method {method!r} is not supported; choose one of: {', '.join(EMBED_METHODS)}")
    n = len(features)
    if n < 3:
        raise UserError(f"an embedding map needs at least 3 images, got {n}")
    if method == "tsne" and n > TSNE_MAX:
        raise UserError(f"t-SNE of {n} points would take minutes; it is offered up to {TSNE_MAX} points: use PCA")
    x = StandardScaler().fit_transform(features)
    if method == "pca":
        return PCA(n_components=2, random_state=seed).fit_transform(x).astype(np.float32)
    perplexity = float(min(30.0, max(2.0, (n - 1) / 3)))
    return TSNE(n_components=2, perplexity=perplexity, init="pca", random_state=seed).fit_transform(x).astype(np.float32)
