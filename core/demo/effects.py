"""Photo effects: per-photo jitter, lighting, colour cast, sensor noise and slight blur.

``render_photos`` turns one drawn person into the seven photos of the competition's layout.
"""

from __future__ import annotations

from functools import lru_cache

import cv2
import numpy as np

from core.demo.masks import draw_mask
from core.demo.person import Person
from core.demo.population import STEMS
from core.demo.portrait import draw_person
from core.demo.primitives import HEIGHT, WIDTH
from core.labels import STEM_TO_MASK


def photo_jitter(p: Person, rng) -> np.ndarray:
    """2x3 affine of one photo: small shift, scale and tilt around the face."""
    angle = float(np.clip(rng.normal(0, 1.5), -4, 4))
    scale = float(np.clip(rng.normal(1, 0.025), 0.94, 1.06))
    M = cv2.getRotationMatrix2D((p.cx, p.cy), angle, scale)
    M[:, 2] += rng.uniform(-8, 8, size=2)
    return M


NOISE_SIGMAS = (2.0, 3.5, 5.0)


@lru_cache(maxsize=1)
def _noise_banks() -> tuple:
    """Shared sensor-noise textures, one (positive, negative) uint8 pair per sigma.

    Photos add a random window of the positive part and subtract the negative part: two
    saturating uint8 operations instead of float arithmetic on the whole image.
    """
    rng = np.random.default_rng(0x5EED)
    unit = rng.standard_normal((2 * HEIGHT, 2 * WIDTH, 3), dtype=np.float32)
    banks = []
    for sigma in NOISE_SIGMAS:
        noise = np.round(unit * sigma)
        banks.append((np.clip(noise, 0, 255).astype(np.uint8), np.clip(-noise, 0, 255).astype(np.uint8)))
    return tuple(banks)


def apply_lighting(img: np.ndarray, rng) -> np.ndarray:
    """Brightness gain, a left-right or top-bottom light gradient, a colour cast, sensor noise."""
    gain = rng.uniform(0.6, 1.4)
    slope = rng.uniform(-0.25, 0.25)
    horizontal = rng.random() < 0.5
    cast = rng.uniform(0.93, 1.07, size=3)
    # The light map is one row (or column) repeated; uint8 with 128 = x1 keeps cv2.multiply fast.
    ramp = gain * (1 + np.linspace(-slope, slope, WIDTH if horizontal else HEIGHT))
    line = np.clip(np.round(128 * ramp[:, None] * cast[None, :]), 0, 255).astype(np.uint8)
    light = np.empty((HEIGHT, WIDTH, 3), np.uint8)
    light[:] = line[None] if horizontal else line[:, None]
    out = cv2.multiply(img, light, scale=1 / 128)
    plus, minus = _noise_banks()[rng.integers(len(NOISE_SIGMAS))]
    dy, dx = rng.integers(0, plus.shape[0] - HEIGHT), rng.integers(0, plus.shape[1] - WIDTH)
    out = cv2.add(out, plus[dy:dy + HEIGHT, dx:dx + WIDTH])
    out = cv2.subtract(out, minus[dy:dy + HEIGHT, dx:dx + WIDTH])
    if rng.random() < 0.15:  # slightly out of focus
        out = cv2.GaussianBlur(out, (0, 0), rng.uniform(0.7, 1.4))
    return out


def render_photos(p: Person, rng) -> dict[str, np.ndarray]:
    """The person's seven RGB photos, keyed by stem."""
    base = draw_person(p, rng)
    photos = {}
    for stem in STEMS:
        M = photo_jitter(p, rng)
        img = cv2.warpAffine(base, M, (WIDTH, HEIGHT), flags=cv2.INTER_LINEAR,
                             borderMode=cv2.BORDER_REPLICATE)  # no mirrored heads at the top
        state = STEM_TO_MASK[stem]
        if state == 0:
            draw_mask(img, p, p.mask_styles[int(stem[-1]) - 1], False, M, rng)
        elif state == 1:
            draw_mask(img, p, p.mask_styles[p.incorrect_style], True, M, rng)
        photos[stem] = apply_lighting(img, rng)
    return photos
