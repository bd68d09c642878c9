"""Train-time augmentation on whole batches, in torch.

Each sample in a batch draws its own parameters from one ``torch.Generator``, so a batch is
augmented in a handful of tensor ops (one ``affine_grid`` + ``grid_sample`` for flip, rotation,
shift and zoom) instead of a Python loop over PIL images, and the result depends only on the
generator's state. Evaluation uses :func:`to_float` alone: augmentation never reaches
validation or prediction.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from core.recipe import Augment

# ImageNet statistics: what torchvision's pretrained backbones expect, and harmless from scratch.
MEAN = (0.485, 0.456, 0.406)
STD = (0.229, 0.224, 0.225)
# ITU-R 601 luma weights, as torchvision's rgb_to_grayscale.
LUMA = (0.299, 0.587, 0.114)
# Random erasing: box area as a fraction of the image, and its aspect ratio (log-uniform).
ERASE_AREA = (0.02, 0.25)
ERASE_RATIO = (0.3, 3.3)


def to_float(x: torch.Tensor) -> torch.Tensor:
    """uint8 (N, H, W, 3) -> float (N, 3, H, W) in [0, 1]; float (N, 3, H, W) passes through."""
    if x.dtype == torch.uint8:
        return x.permute(0, 3, 1, 2).float().div_(255.0)
    return x.float()


def normalize(x: torch.Tensor, mean=MEAN, std=STD) -> torch.Tensor:
    """(x - mean) / std per channel, for a float (N, 3, H, W) batch in [0, 1]."""
    m = torch.tensor(mean, dtype=x.dtype, device=x.device).view(1, 3, 1, 1)
    s = torch.tensor(std, dtype=x.dtype, device=x.device).view(1, 3, 1, 1)
    return (x - m) / s


def denormalize(x: torch.Tensor, mean=MEAN, std=STD) -> torch.Tensor:
    """Inverse of :func:`normalize`, clamped to [0, 1] (for showing a batch)."""
    m = torch.tensor(mean, dtype=x.dtype, device=x.device).view(1, 3, 1, 1)
    s = torch.tensor(std, dtype=x.dtype, device=x.device).view(1, 3, 1, 1)
    return (x * s + m).clamp(0, 1)


def to_uint8_images(x: torch.Tensor) -> torch.Tensor:
    """float (N, 3, H, W) in [0, 1] -> uint8 (N, H, W, 3), e.g. to display augmented samples."""
    return (x.clamp(0, 1) * 255).round().to(torch.uint8).permute(0, 2, 3, 1).contiguous()


def _uniform(n: int, lo: float, hi: float, g: torch.Generator) -> torch.Tensor:
    return lo + (hi - lo) * torch.rand(n, generator=g)


def _affine_theta(n: int, h: int, w: int, cfg: Augment, g: torch.Generator) -> torch.Tensor:
    """(n, 2, 3) sampling matrices for affine_grid: output coords -> input coords.

    Built in pixel units so a rotation stays a rotation on non-square images:
    theta = S^-1 @ (flip * R(angle) / scale) @ S with S = diag(w/2, h/2), plus the shift.
    """
    angle = torch.deg2rad(_uniform(n, -cfg.rotate, cfg.rotate, g))
    scale = _uniform(n, 1 - cfg.scale, 1 + cfg.scale, g)
    tx = _uniform(n, -cfg.translate, cfg.translate, g) * 2  # normalised coords span 2
    ty = _uniform(n, -cfg.translate, cfg.translate, g) * 2
    flip = torch.where(torch.rand(n, generator=g) < 0.5, -1.0, 1.0) if cfg.hflip else torch.ones(n)
    cos, sin = torch.cos(angle) / scale, torch.sin(angle) / scale
    theta = torch.zeros(n, 2, 3)
    theta[:, 0, 0] = cos * flip
    theta[:, 0, 1] = -sin * h / w
    theta[:, 1, 0] = sin * w / h * flip
    theta[:, 1, 1] = cos
    theta[:, 0, 2] = tx
    theta[:, 1, 2] = ty
    return theta


def _geometric(x: torch.Tensor, cfg: Augment, g: torch.Generator) -> torch.Tensor:
    n, _, h, w = x.shape
    if cfg.rotate == 0 and cfg.translate == 0 and cfg.scale == 0:
        if not cfg.hflip:
            return x
        flip = (torch.rand(n, generator=g) < 0.5).to(x.device)
        return torch.where(flip.view(n, 1, 1, 1), x.flip(3), x)
    theta = _affine_theta(n, h, w, cfg, g).to(device=x.device, dtype=x.dtype)
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)


def _per_sample(v: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    return v.to(device=x.device, dtype=x.dtype).view(-1, 1, 1, 1)


def _luma(x: torch.Tensor) -> torch.Tensor:
    r, g, b = x[:, 0:1], x[:, 1:2], x[:, 2:3]
    return LUMA[0] * r + LUMA[1] * g + LUMA[2] * b


def _colour(x: torch.Tensor, cfg: Augment, g: torch.Generator) -> torch.Tensor:
    """Brightness, contrast and saturation factors in [1 - s, 1 + s], in that order."""
    n = x.shape[0]
    if cfg.brightness > 0:
        x = x * _per_sample(_uniform(n, 1 - cfg.brightness, 1 + cfg.brightness, g), x)
    if cfg.contrast > 0:
        mean = _luma(x).mean(dim=(1, 2, 3), keepdim=True)
        c = _per_sample(_uniform(n, 1 - cfg.contrast, 1 + cfg.contrast, g), x)
        x = (x - mean) * c + mean
    if cfg.saturation > 0:
        grey = _luma(x)
        s = _per_sample(_uniform(n, 1 - cfg.saturation, 1 + cfg.saturation, g), x)
        x = (x - grey) * s + grey
    return x.clamp(0, 1)


def _erase(x: torch.Tensor, p: float, g: torch.Generator, pixels: torch.Generator | None = None) -> torch.Tensor:
    """With probability p per sample, fill one random box with uniform noise.

    The box comes from ``g`` (CPU); the noise from ``pixels`` on x's device when given, else
    from ``g``. The box mask is built where x is, so no image-sized tensor crosses devices.
    """
    n, c, h, w = x.shape
    on = torch.rand(n, generator=g) < p
    area = _uniform(n, *ERASE_AREA, g) * h * w
    ratio = torch.exp(_uniform(n, math.log(ERASE_RATIO[0]), math.log(ERASE_RATIO[1]), g))
    bh = torch.sqrt(area / ratio).clamp(1, h)
    bw = torch.sqrt(area * ratio).clamp(1, w)
    top = torch.rand(n, generator=g) * (h - bh)
    left = torch.rand(n, generator=g) * (w - bw)
    fill = _rand(torch.rand, (n, c, h, w), g, pixels, x)
    top, bh, left, bw, on = (t.to(x.device) for t in (top, bh, left, bw, on))
    ys = torch.arange(h, device=x.device).view(1, h, 1)
    xs = torch.arange(w, device=x.device).view(1, 1, w)
    box = ((ys >= top.view(n, 1, 1)) & (ys < (top + bh).view(n, 1, 1))
           & (xs >= left.view(n, 1, 1)) & (xs < (left + bw).view(n, 1, 1)) & on.view(n, 1, 1))
    return torch.where(box.unsqueeze(1), fill, x)


def _rand(draw, shape, g: torch.Generator, pixels: torch.Generator | None, x: torch.Tensor) -> torch.Tensor:
    """An image-sized random tensor like x: from ``pixels`` on x's device, else from ``g`` on the CPU."""
    if pixels is not None:
        return draw(shape, generator=pixels, device=x.device, dtype=x.dtype)
    return draw(shape, generator=g).to(device=x.device, dtype=x.dtype)


def _noise(x: torch.Tensor, std: float, g: torch.Generator, pixels: torch.Generator | None = None) -> torch.Tensor:
    return (x + std * _rand(torch.randn, x.shape, g, pixels, x)).clamp(0, 1)


def augment_batch(x: torch.Tensor, cfg: Augment, generator: torch.Generator,
                  pixel_generator: torch.Generator | None = None) -> torch.Tensor:
    """Augment a batch: uint8 (N, H, W, 3) or float (N, 3, H, W) in [0, 1] -> float (N, 3, H, W).

    Per sample: horizontal flip, rotation/shift/zoom (one batched affine warp), brightness,
    contrast and saturation jitter, one random erased box, Gaussian noise. Random parameters
    are drawn on the CPU from ``generator`` in a fixed order, so they are the same on any
    device. Image-sized noise comes from ``pixel_generator`` (on x's device) when given, so a
    GPU batch never waits for the CPU to draw millions of numbers; without it ``generator``
    draws those too and the output is a function of the input and that one state.
    """
    x = to_float(x)
    x = _geometric(x, cfg, generator)
    x = _colour(x, cfg, generator)
    if cfg.erasing > 0:
        x = _erase(x, cfg.erasing, generator, pixel_generator)
    if cfg.noise > 0:
        x = _noise(x, cfg.noise, generator, pixel_generator)
    return x
