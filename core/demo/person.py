"""One person's constant look (face geometry, colours, hair, clothes, masks) and a split's plan.

A person is planned without drawing anything, so tests and the label-noise planner can ask who
is in a split cheaply; the look depends only on (seed, split, index, gender, age).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from core.demo.population import APPLEDOUBLE_SHARE, EXTENSION_SHARES, RACE, _spread, sample_population
from core.demo.primitives import HEIGHT, WIDTH, _jitter_colour, _mix

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


def _hair_colour(p: Person):
    """Natural colour, greying with age, turning white over the last few years before 60."""
    return _mix(_mix(p.hair, GREY_HAIR, p.grey), WHITE_HAIR, _whitening(p.age))


def _whitening(age: int) -> float:
    return float(np.clip((age - 55) / 5, 0, 1) ** 2)


def _temple_grey(age: int) -> float:
    """Greying at the temples, which starts a little before the rest of the hair."""
    return float(np.clip((age - 36) / 14, 0, 1))


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
