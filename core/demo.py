"""Synthetic demo dataset in the mask-status competition's exact layout.

The real photos are private, so ``make_demo`` draws people instead: a background, shoulders in
clothing, a neck and a head with a shaded face (eyes, brows, nose, mouth, ears), hair that tells
the gender, wrinkles and grey hair that grow with the age, and one of five masks, a lowered mask
or no mask. Everything is drawn with OpenCV primitives and a few small numpy shading passes, so
the default size (270 + 81 people, 2,457 images) takes well under 30 s on two cores.

Layout written (the competition's)::

    OUT/train/train.csv                                   id,gender,race,age,path
    OUT/train/images/000001_female_Asian_45/mask1.jpg     mask1..mask5, incorrect_mask, normal
    OUT/train/images/000001_female_Asian_45/._mask1.jpg   AppleDouble trap in ~3 % of folders
    OUT/eval/info.csv, OUT/eval/gt.csv                    ImageID,ans (0 / the true class)
    OUT/eval/images/<sha1>.jpg

plus one marker file, ``OUT/.masklab_demo.json``, that lets a later call regenerate the folder
without ever overwriting a real dataset.

Determinism: every person draws from its own generator seeded by (seed, split, person index),
and the population (genders, ages, extensions, traps) from one seeded by (seed, split), so the
files are byte-identical for the same arguments however the work is scheduled. Two worker
processes draw people in parallel (small demos are drawn in the calling process).
"""

from __future__ import annotations

import csv
import hashlib
import json
import math
import shutil
from multiprocessing import get_context
from dataclasses import dataclass, replace
from functools import lru_cache
from pathlib import Path
from typing import Callable

import cv2
import numpy as np

from core.errors import UserError
from core.labels import STEM_TO_MASK, age_group, encode

WIDTH, HEIGHT = 384, 512
STEMS = ("mask1", "mask2", "mask3", "mask4", "mask5", "incorrect_mask", "normal")
RACE = "Asian"
JPEG_QUALITY = 90
MARKER = ".masklab_demo.json"
MAX_PEOPLE = 999_999  # ids are six digits

# Real population of the competition's 2,700 training people.
GENDER_COUNTS = {"male": 1042, "female": 1658}
AGE_GROUP_COUNTS = (1281, 1227, 192)  # <30, 30-59, 60+
# Share of folders per extension (all seven files of a person share it) and with a trap.
EXTENSION_SHARES = {".jpg": 0.85, ".jpeg": 0.10, ".png": 0.05}
APPLEDOUBLE_SHARE = 0.03

# Numeric ages inside each group, as relative weights. Like the real data, most people sit far
# from the 30 and 60 boundaries; 28-31 and 57-59 are rare.
AGE_WEIGHTS = (
    {18: 5, 19: 10, 20: 12, 21: 12, 22: 11, 23: 10, 24: 9, 25: 8, 26: 7, 27: 3, 28: 1.2, 29: 0.8},
    {30: 0.4, 31: 0.4, 32: 0.6, 33: 0.8, 34: 1.5, 35: 2, 36: 2.5, 37: 3.5,
     **{a: 6 for a in range(38, 57)}, 57: 0.8, 58: 0.6, 59: 0.5},
    {60: 95, 61: 2, 62: 1.5, 63: 1, 64: 0.5},
)


class DemoError(UserError, ValueError):
    """A bad argument to make_demo (a ValueError the CLI prints as one line)."""


# --------------------------------------------------------------------------------------------
# Population
# --------------------------------------------------------------------------------------------

def _allocate(n: int, weights) -> list[int]:
    """Split n into integer counts proportional to weights (largest remainder)."""
    weights = np.asarray(weights, dtype=float)
    exact = n * weights / weights.sum()
    counts = np.floor(exact).astype(int)
    order = np.argsort(-(exact - counts), kind="stable")
    for i in order[: n - counts.sum()]:
        counts[i] += 1
    return counts.tolist()


def sample_population(n: int, rng: np.random.Generator) -> list[tuple[str, int]]:
    """n (gender, age) pairs whose gender and age-group counts match the real ratios.

    Counts are allocated exactly by rounding, then shuffled independently, so even a small n
    gets the real proportions as closely as integers allow.
    """
    genders = [g for g, c in zip(GENDER_COUNTS, _allocate(n, list(GENDER_COUNTS.values())))
               for _ in range(c)]
    groups = [grp for grp, c in enumerate(_allocate(n, AGE_GROUP_COUNTS)) for _ in range(c)]
    rng.shuffle(genders)
    rng.shuffle(groups)
    ages = []
    for grp in groups:
        table = AGE_WEIGHTS[grp]
        values = np.array(list(table))
        p = np.array(list(table.values()), dtype=float)
        ages.append(int(rng.choice(values, p=p / p.sum())))
    return list(zip(genders, ages))


def _spread(n: int, shares: dict, rng: np.random.Generator, at_least_one: bool) -> list:
    """n labels with exact shares (each label at least once when asked and n allows)."""
    counts = _allocate(n, list(shares.values()))
    if at_least_one:
        for i in range(1, len(counts)):
            if counts[i] == 0 and counts[0] > 1:
                counts[i], counts[0] = 1, counts[0] - 1
    labels = [k for k, c in zip(shares, counts) for _ in range(c)]
    rng.shuffle(labels)
    return labels


# --------------------------------------------------------------------------------------------
# Per-person attributes
# --------------------------------------------------------------------------------------------

# Mask styles: (name, kind, main colour RGB, accent colour RGB). Each person wears five distinct
# styles as mask1..mask5; the lowered mask reuses one of them.
MASK_STYLES = (
    ("white surgical", "surgical", (236, 238, 240), (200, 205, 212)),
    ("blue surgical", "surgical", (125, 175, 215), (95, 145, 190)),
    ("mint surgical", "surgical", (150, 205, 195), (120, 175, 165)),
    ("black cloth", "cloth", (34, 34, 38), (60, 60, 66)),
    ("grey cloth", "cloth", (128, 128, 132), (100, 100, 105)),
    ("navy cloth", "cloth", (40, 50, 90), (70, 80, 125)),
    ("pink dots", "dots", (230, 170, 185), (250, 245, 245)),
    ("striped", "stripes", (210, 200, 170), (120, 90, 70)),
    ("check", "check", (90, 130, 95), (175, 200, 170)),
    ("white KF94", "kf94", (242, 242, 240), (205, 205, 205)),
    ("black KF94", "kf94", (45, 45, 48), (75, 75, 80)),
    ("beige KF94", "kf94", (225, 205, 180), (190, 170, 150)),
)

SKIN_TONES = ((238, 206, 180), (226, 188, 158), (214, 174, 142), (200, 158, 126), (186, 142, 112))
HAIR_COLOURS = ((22, 20, 22), (30, 26, 26), (42, 32, 28), (60, 44, 34), (88, 62, 44))
CLOTH_COLOURS = ((30, 30, 35), (235, 235, 235), (40, 60, 110), (120, 30, 40), (70, 90, 60),
                 (150, 150, 155), (200, 170, 120), (90, 120, 170), (160, 80, 120), (60, 60, 60))
BG_COLOURS = ((225, 225, 220), (200, 205, 210), (180, 195, 205), (215, 205, 185), (160, 160, 160),
              (235, 230, 215), (120, 130, 140), (190, 210, 190), (90, 95, 105), (210, 190, 190))
GREY_HAIR = (172, 170, 168)
WHITE_HAIR = (236, 235, 232)


def age_marks_strength(age: int) -> float:
    """Wrinkle strength 0..1: nil up to 27, ~0.1 at 30, ~0.4 at 34, ~0.65 at 38, 1 at 60.

    Steep through the thirties so that people far from the 30 boundary differ clearly, and
    smooth, so that those near it are genuinely hard to tell apart.
    """
    x = np.clip((age - 27) / 13, 0, 1)
    return float(0.7 * x * x * (3 - 2 * x) + 0.3 * np.clip((age - 40) / 20, 0, 1))


def grey_hair_fraction(age: int) -> float:
    """Share of grey hair: none under 40, about a third at 52, all grey/white at 60."""
    return float(np.clip((age - 40) / 20, 0, 1) ** 2)


@dataclass(frozen=True)
class Person:
    """One person's constant look; photos add small jitter, lighting and a mask."""

    split: str
    index: int
    gender: str
    age: int
    ext: str
    appledouble: bool
    # Face geometry in a 384x512 frame: centre, width and height of the skin ellipse.
    cx: float
    cy: float
    fw: float
    fh: float
    jaw_taper: float          # how much narrower the chin is than the cheeks
    skin: tuple
    lips: tuple
    iris: tuple
    hair: tuple
    hair_style: int           # 0..3 within the gender's styles
    part: float               # hair parting offset, -1..1
    grey: float               # grey hair fraction
    wrinkles: float           # age-mark strength
    cloth: tuple
    neckline: int
    bg: tuple                 # two background colours
    bg_vertical: bool
    mask_styles: tuple        # indices into MASK_STYLES for mask1..mask5
    incorrect_style: int
    incorrect_chin_only: bool

    @property
    def folder(self) -> str:
        return f"{self.index + 1:06d}_{self.gender}_{RACE}_{self.age}"

    @property
    def gender_code(self) -> int:
        return 0 if self.gender == "male" else 1


def _jitter_colour(rng, colour, spread):
    return tuple(float(np.clip(c + rng.normal(0, spread), 0, 255)) for c in colour)


def _mix(a, b, t):
    return tuple(float(x * (1 - t) + y * t) for x, y in zip(a, b))


def make_person(rng: np.random.Generator, split: str, index: int, gender: str, age: int,
                ext: str, appledouble: bool) -> Person:
    female = gender == "female"
    fw = float(rng.uniform(90, 170))
    fh = fw * float(rng.uniform(1.26, 1.36))
    skin = _jitter_colour(rng, SKIN_TONES[rng.integers(len(SKIN_TONES))], 6)
    hair = HAIR_COLOURS[rng.choice(len(HAIR_COLOURS), p=[0.35, 0.25, 0.2, 0.12, 0.08])]
    p = Person(
        split=split, index=index, gender=gender, age=age, ext=ext, appledouble=appledouble,
        cx=float(rng.uniform(0.35, 0.65) * WIDTH),
        cy=float(rng.uniform(0.22, 0.42) * HEIGHT),
        fw=fw, fh=fh,
        jaw_taper=float(rng.uniform(0.22, 0.32) if female else rng.uniform(0.10, 0.20)),
        skin=skin,
        lips=_mix(skin, (175, 80, 85) if female else (165, 95, 90), float(rng.uniform(0.35, 0.6))),
        iris=_jitter_colour(rng, (52, 36, 30), 6),
        hair=_jitter_colour(rng, hair, 4),
        hair_style=int(rng.integers(4)),
        part=float(rng.uniform(-1, 1)),
        grey=grey_hair_fraction(age),
        wrinkles=age_marks_strength(age),
        cloth=_jitter_colour(rng, CLOTH_COLOURS[rng.integers(len(CLOTH_COLOURS))], 10),
        neckline=int(rng.integers(3)),
        bg=(_jitter_colour(rng, BG_COLOURS[rng.integers(len(BG_COLOURS))], 8),
            _jitter_colour(rng, BG_COLOURS[rng.integers(len(BG_COLOURS))], 8)),
        bg_vertical=bool(rng.random() < 0.5),
        mask_styles=tuple(int(i) for i in rng.permutation(len(MASK_STYLES))[:5]),
        incorrect_style=int(rng.integers(5)),
        incorrect_chin_only=bool(rng.random() < 0.2),
    )
    return replace(p, bg=tuple(_behind_hair(c, _hair_colour(p)) for c in p.bg))


# Least luminance gap between the hair and the wall behind it. White hair on a pale wall
# hid the outline of long hair, the demo's gender cue, so that a 60-year-old woman looked
# short-haired; in a photo, shading and texture would still show it.
HAIR_BG_GAP = 55.0


def _luma(c) -> float:
    return 0.299 * c[0] + 0.587 * c[1] + 0.114 * c[2]


def _behind_hair(bg, hair):
    """``bg`` darkened, if need be, to sit at least HAIR_BG_GAP below light hair."""
    limit = _luma(hair) - HAIR_BG_GAP
    if _luma(hair) < 170 or _luma(bg) <= limit:  # dark hair stands out on any wall here
        return bg
    return tuple(float(v) * limit / _luma(bg) for v in bg)


# --------------------------------------------------------------------------------------------
# Drawing helpers
# --------------------------------------------------------------------------------------------

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


# --------------------------------------------------------------------------------------------
# The person (drawn once, then warped per photo)
# --------------------------------------------------------------------------------------------

def draw_background(p: Person, rng) -> np.ndarray:
    """Two-colour gradient wall with a faint large blob, like a room wall or a door."""
    t = np.linspace(0, 1, HEIGHT if p.bg_vertical else WIDTH, dtype=np.float32)
    t = t[:, None, None] if p.bg_vertical else t[None, :, None]
    c1, c2 = np.array(p.bg[0], np.float32), np.array(p.bg[1], np.float32)
    ramp = c1 * (1 - 0.5 * t) + c2 * (0.5 * t)
    img = np.broadcast_to(ramp, (HEIGHT, WIDTH, 3)).astype(np.uint8)
    img = np.ascontiguousarray(img)
    if rng.random() < 0.4:  # a door frame or shelf edge
        x = int(rng.uniform(0.05, 0.95) * WIDTH)
        cv2.line(img, (x, 0), (x, HEIGHT), tuple(float(v) * 0.8 for v in p.bg[1]),
                 int(rng.integers(3, 12)), cv2.LINE_AA)
    _shade(img, rng.uniform(0, WIDTH), rng.uniform(0, HEIGHT), 150, 150, rng.uniform(-0.08, 0.1))
    return img


def draw_hair_back(img, p: Person, rng):
    """Long hair behind the head, falling past the jaw onto the shoulders (women)."""
    if p.gender != "female":
        return
    cx, cy, a, b = p.cx, p.cy, p.fw / 2, p.fh / 2
    length = (0.95, 1.15, 0.65, 0.8)[p.hair_style]  # how far below the chin it falls
    bottom = cy + b + length * p.fh
    width = a * (1.45, 1.35, 1.55, 1.3)[p.hair_style]
    # Rounded crown (a half ellipse over the head), then straight down to the ends.
    t = np.linspace(math.pi, 2 * math.pi, 13)
    crown = np.stack([cx + 1.08 * a * np.cos(t), cy - 0.1 * b + 1.08 * b * np.sin(t)], 1)
    outline = [(cx - width, bottom), (cx - width * 1.02, cy + 0.2 * b), *crown,
               (cx + width * 1.02, cy + 0.2 * b), (cx + width, bottom)]
    ends = [(cx + width * s, bottom + rng.uniform(-0.08, 0.05) * p.fh) for s in np.linspace(1, -1, 7)]
    box = _roi(cx, (cy - b * 1.2 + bottom + 0.1 * p.fh) / 2, width * 1.05,
               (bottom - cy + b * 1.2) / 2 + 0.1 * p.fh)
    x0, y0, x1, y1 = box
    alpha = np.zeros((y1 - y0, x1 - x0), np.uint8)
    cv2.fillPoly(alpha, [_pts(np.asarray(outline + ends) - (x0, y0))], 255, cv2.LINE_AA, shift=4)
    _hair_layer(img, p, rng, box, alpha.astype(np.float32) / 255, cy - b * 1.2, bottom, width,
                temples=_temple_grey(p.age))


def _hair_colour(p: Person):
    """Natural colour, greying with age, turning white over the last few years before 60."""
    return _mix(_mix(p.hair, GREY_HAIR, p.grey), WHITE_HAIR, _whitening(p.age))


def _whitening(age: int) -> float:
    return float(np.clip((age - 55) / 5, 0, 1) ** 2)


def _temple_grey(age: int) -> float:
    """Greying at the temples, which starts a little before the rest of the hair."""
    return float(np.clip((age - 36) / 14, 0, 1))


def _hair_layer(img, p: Person, rng, box, alpha, top, bottom, half_w, temples=0.0):
    """Fill `alpha`'s shape (in `box`) with textured hair and blend it onto img."""
    x0, y0, x1, y1 = box
    layer = np.empty((y1 - y0, x1 - x0, 3), np.uint8)
    layer[:] = np.array(_hair_colour(p)).round().astype(np.uint8)
    _hair_strands(layer, p, rng, top, bottom, half_w, offset=(x0, y0))
    if temples > 0:
        # Lighten the hair beside the eyes and above the ears.
        xs, ys = _grid(box)
        near = np.exp(-(((np.abs(xs - p.cx) - 0.52 * p.fw) / (0.15 * p.fw)) ** 2
                        + ((ys - (p.cy - 0.1 * p.fh)) / (0.2 * p.fh)) ** 2))
        t = (0.75 * temples * near)[..., None]
        layer[:] = (layer * (1 - t) + np.array(GREY_HAIR, np.float32) * t).astype(np.uint8)
    _blend(img[y0:y1, x0:x1], layer, alpha)


def _hair_strands(img, p: Person, rng, top, bottom, half_w, n=None, offset=(0, 0), x_mid=None):
    """Thin light/dark strands; a share p.grey of them grey, which shows as salt-and-pepper.

    `offset` is the frame position of img's top-left corner when img is a cut-out layer.
    """
    n = int(60 + p.fw / 2) if n is None else n
    x_mid = p.cx if x_mid is None else x_mid
    ox, oy = offset
    u = rng.uniform(-1, 1, n)
    x = x_mid + half_w * u - ox
    y0 = rng.uniform(top, top + 0.3 * (bottom - top), n) - oy
    y1 = y0 + rng.uniform(0.2, 1, n) * (bottom - oy - y0)
    bend = u * rng.uniform(0, 0.25, n) * (y1 - y0)  # strands fall outwards
    curves = _pts(np.stack([np.stack([x, y0], 1), np.stack([x + bend * 0.6, (y0 + y1) / 2], 1),
                            np.stack([x + bend, y1], 1)], 1))
    grey = rng.random(n) < p.grey
    dark = ~grey & (rng.random(n) < 0.5)
    for which, colour in ((dark, _mix(p.hair, (0, 0, 0), 0.35)),
                          (~grey & ~dark, _mix(p.hair, (255, 255, 255), 0.07)),
                          (grey, _mix(GREY_HAIR, WHITE_HAIR, _whitening(p.age)))):
        if which.any():
            cv2.polylines(img, list(curves[which]), False, colour, 1, cv2.LINE_AA, shift=4)


def draw_torso(img, p: Person, rng):
    """Neck, shoulders in clothing and a neckline."""
    cx, cy, fw, fh = p.cx, p.cy, p.fw, p.fh
    neck_shade = _mix(p.skin, (60, 40, 30), 0.12)
    neck_top, shoulder_y = cy + 0.25 * fh, cy + 0.5 * fh + 0.3 * fh
    _poly(img, [(cx - 0.26 * fw, neck_top), (cx + 0.26 * fw, neck_top),
                (cx + 0.3 * fw, shoulder_y + 0.2 * fh), (cx - 0.3 * fw, shoulder_y + 0.2 * fh)],
          neck_shade)
    _shade(img, cx, cy + 0.55 * fh, 0.3 * fw, 0.07 * fh, 0.3)  # shadow under the chin
    # Shoulders: a wide rounded shape going off the bottom of the frame.
    sw = fw * rng.uniform(1.3, 1.6)
    cloth = p.cloth
    _ellipse(img, (cx, shoulder_y + 0.5 * fh), (sw, 0.55 * fh), cloth)
    cv2.rectangle(img, (int(cx - sw), int(shoulder_y + 0.5 * fh)), (int(cx + sw), HEIGHT), cloth, -1)
    # Neckline: V, round, or a shirt collar.
    if p.neckline == 0:
        _poly(img, [(cx - 0.28 * fw, shoulder_y - 0.02 * fh), (cx + 0.28 * fw, shoulder_y - 0.02 * fh),
                    (cx, shoulder_y + 0.38 * fh)], neck_shade)
    elif p.neckline == 1:
        _ellipse(img, (cx, shoulder_y), (0.3 * fw, 0.14 * fh), neck_shade)
    else:
        _poly(img, [(cx - 0.24 * fw, shoulder_y - 0.02 * fh), (cx + 0.24 * fw, shoulder_y - 0.02 * fh),
                    (cx, shoulder_y + 0.22 * fh)], neck_shade)
        collar = _mix(cloth, (255, 255, 255), 0.6)
        for s in (-1, 1):
            _poly(img, [(cx + s * 0.3 * fw, shoulder_y - 0.05 * fh),
                        (cx + s * 0.02 * fw, shoulder_y + 0.24 * fh),
                        (cx + s * 0.42 * fw, shoulder_y + 0.12 * fh)], collar)
    # Folds and side shading of the clothes.
    for s in (-1, 1):
        _shade(img, cx + s * sw * 0.95, HEIGHT, 0.35 * sw, 0.6 * (HEIGHT - shoulder_y), 0.25)


def draw_head(img, p: Person):
    """Ears, the shaded face and its features."""
    cx, cy, fw, fh = p.cx, p.cy, p.fw, p.fh
    a, b = fw / 2, fh / 2
    ear = _mix(p.skin, (150, 80, 70), 0.12)
    ear_y = cy - 0.01 * fh
    for s in (-1, 1):
        _ellipse(img, (cx + s * (a + 0.01 * fw), ear_y), (0.08 * fw, 0.13 * fh), ear)
        _ellipse(img, (cx + s * (a + 0.03 * fw), ear_y), (0.035 * fw, 0.08 * fh),
                 _mix(ear, (60, 30, 30), 0.25), 1)
    _face_skin(img, p)
    _face_features(img, p)


def _face_skin(img, p: Person):
    """Egg-shaped face, darker towards its rim and lit from the upper left."""
    cx, cy, a, b = p.cx, p.cy, p.fw / 2, p.fh / 2
    box = _roi(cx, cy, a + 2, b + 2)
    x0, y0, x1, y1 = box
    xs, ys = _grid(box)
    dy = (ys - cy) / b
    a_eff = a * (1 - p.jaw_taper * np.clip(dy, 0, 1) ** 2)  # narrower towards the chin
    r = np.sqrt(((xs - cx) / a_eff) ** 2 + dy ** 2)
    alpha = np.clip((1 - r) * min(a, b) + 0.5, 0, 1)
    light = 1.04 - 0.22 * r ** 4 - 0.05 * (xs - cx) / a - 0.03 * dy
    colour = np.array(p.skin, np.float32)[None, None, :] * light[..., None]
    roi = img[y0:y1, x0:x1].astype(np.float32)
    roi = roi * (1 - alpha[..., None]) + colour * alpha[..., None]
    img[y0:y1, x0:x1] = np.clip(roi, 0, 255).astype(np.uint8)


def landmarks(p: Person) -> dict:
    """Key points of the face (frame coordinates before the photo's jitter)."""
    cx, cy, fw, fh = p.cx, p.cy, p.fw, p.fh
    return {
        "eye_y": cy - 0.04 * fh, "eye_dx": 0.2 * fw,
        "brow_y": cy - 0.14 * fh,
        "nose_y": cy + 0.16 * fh,
        "mouth_y": cy + 0.29 * fh,
        "chin_y": cy + 0.5 * fh,
    }


def _face_features(img, p: Person):
    cx, fw, fh = p.cx, p.fw, p.fh
    lm = landmarks(p)
    eye_y, dx = lm["eye_y"], lm["eye_dx"]
    skin = p.skin
    dark_skin = _mix(skin, (40, 20, 15), 0.45)
    # Eye sockets: the dark band Haar cascades look for; brighter cheeks below and nose bridge.
    for s in (-1, 1):
        _shade(img, cx + s * dx, eye_y - 0.01 * fh, 0.16 * fw, 0.07 * fh, 0.22)
        _shade(img, cx + s * 0.2 * fw, eye_y + 0.15 * fh, 0.14 * fw, 0.07 * fh, -0.06)
    _shade(img, cx, eye_y + 0.06 * fh, 0.05 * fw, 0.14 * fh, -0.08)
    # Eyes.
    ew, eh = 0.105 * fw, 0.042 * fw
    for s in (-1, 1):
        ex = cx + s * dx
        _eye(img, ex, eye_y, ew, eh, p.iris, s)
        # Upper lid crease and lashes.
        _poly(img, _arc(ex, eye_y - eh * 0.2, ew * 1.02, eh * 1.25), _mix(dark_skin, (0, 0, 0), 0.5),
              closed=False, thickness=max(1, int(round(fw / 80))))
        _poly(img, _arc(ex, eye_y - eh * 1.6, ew * 0.9, eh * 0.9), _mix(skin, (60, 30, 20), 0.25),
              closed=False, thickness=1)
    # Brows (go grey more slowly than the hair).
    brow = _mix(_mix(p.hair, (0, 0, 0), 0.2), GREY_HAIR, 0.5 * p.grey)
    bt = 0.028 * fw + (0.01 * fw if p.gender == "male" else 0)
    for s in (-1, 1):
        bx = cx + s * (dx + 0.01 * fw)
        inner, outer = bx - s * 0.11 * fw, bx + s * 0.12 * fw
        top = [(inner, lm["brow_y"] + 0.005 * fh), (bx, lm["brow_y"] - 0.022 * fh),
               (outer, lm["brow_y"] + 0.01 * fh)]
        bottom = [(outer, lm["brow_y"] + 0.01 * fh + 0.3 * bt), (bx, lm["brow_y"] - 0.022 * fh + bt),
                  (inner, lm["brow_y"] + 0.005 * fh + bt)]
        _poly(img, top + bottom, brow)
    # Nose: shaded sides, lit tip, nostrils and the shadow beneath.
    ny = lm["nose_y"]
    for s in (-1, 1):
        _shade(img, cx + s * 0.075 * fw, eye_y + 0.12 * fh, 0.03 * fw, 0.11 * fh, 0.12)
        _poly(img, _arc(cx + s * 0.07 * fw, ny, 0.035 * fw, 0.025 * fh, 6), dark_skin,
              closed=False, thickness=1)
        _ellipse(img, (cx + s * 0.045 * fw, ny + 0.012 * fh), (0.022 * fw, 0.011 * fw),
                 _mix(skin, (30, 10, 10), 0.6), angle=s * 15)
    _shade(img, cx, ny - 0.02 * fh, 0.05 * fw, 0.03 * fh, -0.08)
    _shade(img, cx, ny + 0.045 * fh, 0.1 * fw, 0.02 * fh, 0.12)
    # Mouth: lips, the dark line between them, shadow under the lower lip.
    my, mw = lm["mouth_y"], 0.17 * fw
    upper = [(cx - mw, my), (cx - mw * 0.4, my - 0.035 * fh), (cx, my - 0.025 * fh),
             (cx + mw * 0.4, my - 0.035 * fh), (cx + mw, my)]
    lower = [(cx + mw, my), (cx + mw * 0.5, my + 0.045 * fh), (cx - mw * 0.5, my + 0.045 * fh)]
    _poly(img, upper + lower, p.lips)
    _poly(img, [(cx - mw, my), (cx - mw * 0.4, my + 0.004 * fh), (cx + mw * 0.4, my + 0.004 * fh),
                (cx + mw, my)], _mix(p.lips, (30, 10, 10), 0.6), closed=False,
          thickness=max(1, int(round(fw / 90))))
    _shade(img, cx, my + 0.075 * fh, 0.1 * fw, 0.02 * fh, 0.1)


def _eye(img, ex, ey, ew, eh, iris, side):
    """Almond-shaped white with an iris and pupil, clipped to the eye opening."""
    box = _roi(ex, ey, ew + 1, eh + 1)
    x0, y0, x1, y1 = box
    xs, ys = _grid(box)
    u = (xs - ex) / ew
    half = eh * np.clip(1 - u ** 2, 0, 1) ** 0.8          # almond opening
    inside = np.clip(np.minimum(half - np.abs(ys - ey), 1 - np.abs(u) * 1.0) + 0.5, 0, 1)
    r = np.hypot(xs - (ex - side * 0.05 * ew), ys - ey)
    iris_r = 0.5 * ew
    colour = np.empty(xs.shape + (3,), np.float32)
    colour[:] = (228, 224, 220)
    colour[r < iris_r] = iris
    colour[r < iris_r * 0.45] = (12, 10, 12)
    colour[(r < iris_r * 0.15) & (ys < ey)] = (240, 240, 240)  # catch light
    roi = img[y0:y1, x0:x1].astype(np.float32)
    a = inside[..., None]
    img[y0:y1, x0:x1] = np.clip(roi * (1 - a) + colour * a, 0, 255).astype(np.uint8)


def add_age_marks(img, p: Person, rng):
    """Forehead lines, crow's feet and eye bags: thin low-contrast marks growing with age."""
    w = p.wrinkles
    if w <= 0.02:
        return
    cx, fw, fh = p.cx, p.fw, p.fh
    lm = landmarks(p)
    # A few percent darker than the skin at 30, about a fifth darker at 60.
    line = _mix(p.skin, (70, 40, 30), 0.05 + 0.27 * w)
    thick = 2 if (w > 0.35 and fw >= 110) else 1
    # Forehead: 1-5 arcs between the brows and the hairline.
    for i in range(int(round(1 + 4 * w))):
        y = lm["brow_y"] - (0.035 + 0.026 * i) * fh + rng.uniform(-0.005, 0.005) * fh
        half = (0.18 + 0.12 * w + rng.uniform(-0.03, 0.03)) * fw
        _poly(img, _arc(cx + rng.uniform(-0.03, 0.03) * fw, y, half, rng.uniform(0.006, 0.02) * fh),
              line, closed=False, thickness=thick)
    # A frown line between the brows.
    if w > 0.3:
        for s in (-1, 1):
            _poly(img, [(cx + s * 0.03 * fw, lm["brow_y"] - 0.01 * fh),
                        (cx + s * 0.02 * fw, lm["brow_y"] + 0.05 * fh)],
                  line, closed=False, thickness=1)
    for s in (-1, 1):
        # Crow's feet fanning out from the outer eye corner.
        ox = cx + s * (lm["eye_dx"] + 0.12 * fw)
        for k in range(int(round(1 + 3 * w))):
            ang = math.radians(-30 + 20 * k + rng.uniform(-6, 6))
            ln = (0.04 + 0.05 * w) * fw
            _poly(img, [(ox, lm["eye_y"] + 0.01 * fh),
                        (ox + s * ln * math.cos(ang), lm["eye_y"] + 0.01 * fh + ln * math.sin(ang))],
                  line, closed=False, thickness=1)
        # Eye bag: a soft shadow crescent under the eye and its lower line.
        ex = cx + s * lm["eye_dx"]
        _shade(img, ex, lm["eye_y"] + 0.065 * fh, 0.11 * fw, 0.03 * fh, 0.3 * w)
        _poly(img, _arc(ex, lm["eye_y"] + 0.08 * fh, 0.08 * fw, -0.02 * fh, 8), line,
              closed=False, thickness=1)
        # Fold from the nose to the mouth corner (hidden by masks).
        _poly(img, [(cx + s * 0.1 * fw, lm["nose_y"]), (cx + s * 0.2 * fw, lm["mouth_y"] + 0.01 * fh)],
              line, closed=False, thickness=1)


def draw_hair_front(img, p: Person, rng):
    """Hair on top of the head: hairline and parting; for women also locks framing the face."""
    cx, cy, fw, fh = p.cx, p.cy, p.fw, p.fh
    a, b = fw / 2, fh / 2
    female = p.gender == "female"
    box = _roi(cx, cy - 0.1 * fh, 0.75 * fw, 0.6 * fh)
    x0, y0, x1, y1 = box
    xs, ys = _grid(box)
    # Skull outline: a bit larger than the face and higher (a buzz cut hugs it).
    bulk = 1.1 if female else (1.03, 1.06, 1.02, 1.09)[p.hair_style]
    head = np.hypot((xs - cx) / (a * bulk), (ys - (cy - 0.04 * fh)) / (b * (bulk + 0.02)))
    # Hairline: high in the middle, coming down at the temples, tilted by the parting.
    u = np.clip(np.abs(xs - cx - p.part * 0.08 * fw) / a, 0, 1.3)
    top = cy - (0.36 if not female else 0.33) * fh + 0.02 * fh * p.part * np.sign(xs - cx)
    side = cy - (0.06 if not female else -0.02) * fh
    hairline = top + (side - top) * u ** 3
    if not female and p.age > 35:
        # Receding temples (an M-shaped hairline) from the late thirties on.
        recede = min(1.0, (p.age - 35) / 25) * 0.12 * fh
        hairline = hairline - recede * np.exp(-((u - 0.6) / 0.25) ** 2)
    inside = np.minimum((1 - head) * min(a, b), hairline - ys)
    if female:
        # Locks over the face's edges: widest at the temples, gone by the cheekbones.
        dy = np.clip((ys - cy) / b, -1, 1)
        face_half = a * np.sqrt(1 - dy ** 2)
        overlap = 0.22 * a * np.clip((cy + 0.05 * fh - ys) / (0.35 * fh), 0, 1)
        lock = np.minimum(np.abs(xs - cx) - (face_half - overlap), (cy + 0.35 * fh) - ys)
        inside = np.maximum(inside, np.minimum(lock, (1.05 - head) * min(a, b)))
    alpha = np.clip(inside + 0.5, 0, 1)
    _hair_layer(img, p, rng, box, alpha, cy - b * 1.15, cy + (0.4 if female else -0.1) * fh, 0.6 * fw,
                temples=_temple_grey(p.age))
    if female and p.hair_style == 1:  # hair band on the crown
        _poly(img, _arc(cx, cy - 0.42 * fh, 0.42 * fw, 0.08 * fh), _mix(p.cloth, (255, 255, 255), 0.2),
              closed=False, thickness=max(2, int(fw / 30)))
    if female and p.hair_style == 3:  # ponytail swept over one shoulder
        s = 1 if p.part >= 0 else -1
        x = cx + s * 0.55 * fw
        tail = [(x - 0.08 * fw, cy + 0.1 * fh), (x + 0.1 * fw, cy + 0.1 * fh),
                (x + s * 0.2 * fw + 0.06 * fw, cy + 0.95 * fh), (x + s * 0.15 * fw - 0.1 * fw, cy + 0.9 * fh)]
        tbox = _roi(x + s * 0.1 * fw, cy + 0.55 * fh, 0.3 * fw, 0.5 * fh)
        alpha = np.zeros((tbox[3] - tbox[1], tbox[2] - tbox[0]), np.uint8)
        cv2.fillPoly(alpha, [_pts(np.asarray(tail) - tbox[:2])], 255, cv2.LINE_AA, shift=4)
        _hair_layer(img, p, rng, tbox, alpha.astype(np.float32) / 255, cy + 0.1 * fh, cy + 0.95 * fh,
                    0.2 * fw)


def draw_person(p: Person, rng) -> np.ndarray:
    img = draw_background(p, rng)
    draw_hair_back(img, p, rng)
    draw_torso(img, p, rng)
    draw_head(img, p)
    add_age_marks(img, p, rng)
    draw_hair_front(img, p, rng)
    return cv2.GaussianBlur(img, (3, 3), 0.6)


# --------------------------------------------------------------------------------------------
# Masks (drawn per photo, in the photo's jittered frame)
# --------------------------------------------------------------------------------------------

def _transform(M, points) -> np.ndarray:
    pts = np.asarray(points, dtype=np.float64).reshape(-1, 2)
    return pts @ M[:, :2].T + M[:, 2]


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


# --------------------------------------------------------------------------------------------
# Photos
# --------------------------------------------------------------------------------------------

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


def encode_image(rgb: np.ndarray, ext: str) -> bytes:
    bgr = cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR)
    if ext == ".png":
        ok, buf = cv2.imencode(".png", bgr, [cv2.IMWRITE_PNG_COMPRESSION, 3])
    else:
        ok, buf = cv2.imencode(".jpg", bgr, [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])
    if not ok:  # pragma: no cover - OpenCV always encodes these
        raise RuntimeError(f"could not encode a {ext} image")
    return buf.tobytes()


def appledouble_bytes(rng) -> bytes:
    """A macOS '._' resource-fork file: AppleDouble magic, a header, then junk. Not an image."""
    header = bytes.fromhex("00051607" "00020000") + b"Mac OS X        " + bytes.fromhex("0002")
    body = rng.integers(0, 256, size=4096 - len(header), dtype=np.uint8).tobytes()
    return header + body


# --------------------------------------------------------------------------------------------
# The dataset
# --------------------------------------------------------------------------------------------

def _person_rng(seed: int, split: str, index: int, stream: int = 0) -> np.random.Generator:
    return np.random.default_rng(np.random.SeedSequence([seed, _SPLIT_KEYS[split], index, stream]))


_SPLIT_KEYS = {"train": 1, "eval": 2}


def plan_people(n: int, seed: int, split: str) -> list[Person]:
    """Everyone in one split, without drawing: genders, ages, extensions, traps, looks."""
    pop_rng = np.random.default_rng(np.random.SeedSequence([seed, _SPLIT_KEYS[split], 0xB0B]))
    population = sample_population(n, pop_rng)
    if split == "train":
        exts = _spread(n, EXTENSION_SHARES, pop_rng, at_least_one=n >= 3)
        traps = _spread(n, {False: 1 - APPLEDOUBLE_SHARE, True: APPLEDOUBLE_SHARE}, pop_rng,
                        at_least_one=n >= 2)
    else:
        exts, traps = [".jpg"] * n, [False] * n
    return [make_person(_person_rng(seed, split, i), split, i, g, age, exts[i], traps[i])
            for i, (g, age) in enumerate(population)]


def eval_image_id(seed: int, index: int, stem: str) -> str:
    return hashlib.sha1(f"masklab-demo:{seed}:{index}:{stem}".encode()).hexdigest() + ".jpg"


# Below this many people a worker pool costs more to start than it saves.
MIN_PEOPLE_FOR_PROCESSES = 40


def _write_person(job: tuple[Person, int, Path]) -> list[tuple[str, int]]:
    """Draw and write one person's photos; returns eval (ImageID, class) rows (none for train)."""
    p, seed, root = job
    rng = _person_rng(seed, p.split, p.index, stream=1)  # make_person used stream 0
    photos = render_photos(p, rng)
    rows = []
    if p.split == "train":
        folder = root / "train" / "images" / p.folder
        folder.mkdir(parents=True, exist_ok=True)
        for stem, img in photos.items():
            (folder / f"{stem}{p.ext}").write_bytes(encode_image(img, p.ext))
        if p.appledouble:
            for stem in rng.choice(STEMS, size=int(rng.integers(1, 4)), replace=False):
                (folder / f"._{stem}{p.ext}").write_bytes(appledouble_bytes(rng))
    else:
        for stem, img in photos.items():
            image_id = eval_image_id(seed, p.index, stem)
            (root / "eval" / "images" / image_id).write_bytes(encode_image(img, ".jpg"))
            rows.append((image_id, encode(STEM_TO_MASK[stem], p.gender_code, age_group(p.age))))
    return rows


def _check_int(name: str, value, low: int, high: int | None = None) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise DemoError(f"{name} must be a whole number, got {value!r}")
    if value < low or (high is not None and value > high):
        rule = f">= {low}" if high is None else f"between {low} and {high}"
        raise DemoError(f"{name} must be {rule}, got {value}")
    return int(value)


def _prepare_out(out: Path) -> None:
    """Create `out`, or clear a previous demo in it; never touch anything else."""
    if out.exists() and not out.is_dir():
        raise DemoError(f"demo output {out} exists and is not a folder; choose another path")
    if out.is_dir() and any(out.iterdir()):
        if not (out / MARKER).is_file():
            raise DemoError(f"demo output {out} is a non-empty folder that is not a previous demo; "
                            "choose an empty or new folder (a demo folder can be regenerated)")
        for sub in ("train", "eval"):
            if (out / sub).is_dir():
                shutil.rmtree(out / sub)
    out.mkdir(parents=True, exist_ok=True)


def make_demo(out: str | Path, people: int = 270, seed: int = 0, eval_people: int | None = None,
              progress: Callable[[int, int], None] | None = None, workers: int = 2) -> dict:
    """Write a synthetic dataset in the competition's layout to `out` and summarise it.

    people: training people (7 photos each); eval_people: distinct evaluation people
    (default round(0.3 * people)); seed: same seed and arguments -> byte-identical files;
    progress(done, total): called with image counts as people are written; workers: drawing
    processes (the files do not depend on it; small demos are drawn in this process).

    The workers are spawned, so a script that calls this at import time needs the usual
    ``if __name__ == "__main__":`` guard (``python -m core demo`` and Streamlit are fine).
    """
    people = _check_int("people", people, 1, MAX_PEOPLE)
    seed = _check_int("seed", seed, 0)
    if eval_people is None:
        eval_people = int(round(people * 0.3))
    eval_people = _check_int("eval_people", eval_people, 0, MAX_PEOPLE)
    workers = _check_int("workers", workers, 1, 64)
    out = Path(out)
    _prepare_out(out)
    (out / MARKER).write_text(json.dumps(
        {"generator": "core.demo.make_demo", "seed": seed, "people": people,
         "eval_people": eval_people}, indent=1) + "\n")
    (out / "train" / "images").mkdir(parents=True)
    (out / "eval" / "images").mkdir(parents=True)

    train = plan_people(people, seed, "train")
    evals = plan_people(eval_people, seed, "eval")
    total = 7 * (people + eval_people)
    done = 0
    eval_rows: list[tuple[str, int]] = []
    jobs = [(p, seed, out) for p in train + evals]
    if workers == 1 or len(jobs) < MIN_PEOPLE_FOR_PROCESSES:
        results = map(_write_person, jobs)
        pool = None
    else:
        # spawn, not fork: forking a threaded process (Streamlit) can copy a held lock into
        # the child. imap keeps the submission order, so nothing depends on process timing.
        pool = get_context("spawn").Pool(workers)
        results = pool.imap(_write_person, jobs, chunksize=2)
    try:
        for rows in results:
            eval_rows.extend(rows)
            done += 7
            if progress is not None:
                progress(done, total)
    finally:
        if pool is not None:
            # Like `with Pool()`: idle workers go; after an error, or a progress callback that
            # raised to stop, nobody draws on.
            pool.terminate()
            pool.join()

    with open(out / "train" / "train.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["id", "gender", "race", "age", "path"])
        for p in train:
            w.writerow([f"{p.index + 1:06d}", p.gender, RACE, p.age, p.folder])
    order = np.random.default_rng(np.random.SeedSequence([seed, 3])).permutation(len(eval_rows))
    eval_rows = [eval_rows[i] for i in order]
    for name, with_answers in (("info.csv", False), ("gt.csv", True)):
        with open(out / "eval" / name, "w", newline="") as f:
            w = csv.writer(f)
            w.writerow(["ImageID", "ans"])
            for image_id, label in eval_rows:
                w.writerow([image_id, label if with_answers else 0])
    return {
        "out": str(out),
        "seed": seed,
        "people": people,
        "eval_people": eval_people,
        "train_images": 7 * people,
        "eval_images": 7 * eval_people,
        "appledouble_files": sum(1 for _ in (out / "train" / "images").glob("*/._*")),
    }
