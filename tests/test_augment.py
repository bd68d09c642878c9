"""Batched augmentation: deterministic per generator, different per sample, never on eval."""

from __future__ import annotations

import torch

from core.augment import augment_batch, denormalize, normalize, to_float, to_uint8_images
from core.recipe import Augment

ALL_OFF = Augment(hflip=False, rotate=0, translate=0, scale=0, brightness=0, contrast=0, saturation=0,
                  erasing=0, noise=0)
STRONG = Augment(hflip=True, rotate=20, translate=0.1, scale=0.2, brightness=0.4, contrast=0.4, saturation=0.4,
                 erasing=0.5, noise=0.05)


def _image_batch(n: int = 8) -> torch.Tensor:
    """n copies of one asymmetric uint8 image (N, H, W, 3)."""
    g = torch.Generator().manual_seed(0)
    one = torch.randint(0, 256, (32, 24, 3), generator=g, dtype=torch.uint8)
    one[:, :8] = 255  # a bright left edge makes flips visible
    return one.expand(n, -1, -1, -1).contiguous()


def test_same_generator_state_gives_the_same_batch():
    x = _image_batch()
    a = augment_batch(x, STRONG, torch.Generator().manual_seed(7))
    b = augment_batch(x, STRONG, torch.Generator().manual_seed(7))
    c = augment_batch(x, STRONG, torch.Generator().manual_seed(8))
    assert torch.equal(a, b)
    assert not torch.equal(a, c)


def test_each_sample_draws_its_own_parameters():
    out = augment_batch(_image_batch(8), STRONG, torch.Generator().manual_seed(0))
    flat = out.flatten(1)
    distinct = {tuple(row[:50].tolist()) for row in flat}
    assert len(distinct) == 8  # copies of one image all come out different


def test_output_is_float_nchw_in_unit_range():
    out = augment_batch(_image_batch(4), STRONG, torch.Generator().manual_seed(1))
    assert out.shape == (4, 3, 32, 24) and out.dtype == torch.float32
    assert out.min() >= 0 and out.max() <= 1


def test_all_off_is_exactly_to_float():
    x = _image_batch(3)
    assert torch.equal(augment_batch(x, ALL_OFF, torch.Generator().manual_seed(0)), to_float(x))


def test_uint8_and_float_inputs_agree():
    x = _image_batch(4)
    a = augment_batch(x, STRONG, torch.Generator().manual_seed(3))
    b = augment_batch(to_float(x), STRONG, torch.Generator().manual_seed(3))
    assert torch.allclose(a, b)


def test_flip_only_mirrors_some_samples_and_keeps_the_others():
    x = to_float(_image_batch(16))
    out = augment_batch(x, Augment(**{**ALL_OFF.__dict__, "hflip": True}), torch.Generator().manual_seed(0))
    flipped = [torch.equal(o, x[0].flip(2)) for o in out]
    kept = [torch.equal(o, x[0]) for o in out]
    assert all(f or k for f, k in zip(flipped, kept))
    assert 0 < sum(flipped) < 16


def test_small_rotation_keeps_the_image_close():
    x = to_float(_image_batch(4))
    out = augment_batch(x, Augment(**{**ALL_OFF.__dict__, "rotate": 1.0}), torch.Generator().manual_seed(0))
    assert (out - x).abs().mean() < 0.1


def test_normalize_round_trips_and_uint8_conversion():
    x = to_float(_image_batch(2))
    assert torch.allclose(denormalize(normalize(x)), x, atol=1e-6)
    assert torch.equal(to_uint8_images(x), _image_batch(2))
