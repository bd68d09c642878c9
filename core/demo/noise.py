"""Planted label errors in the demo's train set, with the truth written beside it.

The competition's train labels hold a few known mistakes (docs/data.md: swapped ``normal`` and
``incorrect_mask`` photos, wrong genders). A label-issue finder is only measurable on data whose
mistakes are known, so ``make_demo(label_noise=RATE)`` plants the same kinds on purpose:

* ``swap``   - the files named ``normal`` and ``incorrect_mask`` are renamed into each other;
* ``gender`` - the folder name and train.csv give the other gender;
* ``age``    - they give an age in a neighbouring age group, drawn from that group's own
  age distribution, so the wrong age looks like any other.

Only the labels change: every photo is drawn from the true person. The plan uses its own
generator, seeded by (seed, NOISE_KEY), so it never draws from the streams the photos use and a
demo with RATE 0 is byte-identical to one made without the option.

Two files go beside ``train/`` and ``eval/`` (never inside them, so no scan of train/ sees them):

* ``label_noise.csv``: person (the folder name as written, i.e. the noisy one), kind, field,
  given (what the labels now say), true (what is correct), stems (the photos whose label is
  wrong, ``;``-separated). For ``swap`` rows, given/true name the labels of the photos that
  truly show (incorrect_mask, normal): given ``normal:incorrect_mask``, true
  ``incorrect_mask:normal``.
* ``label_noise_corrections.csv``: the same truth as ``core.dataset`` label corrections
  (person id, field, value), so ``scan(DIR / "train", corrections=DIR /
  "label_noise_corrections.csv")`` restores the clean labels.
"""

from __future__ import annotations

import csv
import math
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from core.demo.person import Person
from core.demo.population import AGE_WEIGHTS, STEMS
from core.labels import age_group
from core.rulebook import LABEL_NOISE

KINDS = ("swap", "gender", "age")
MAX_LABEL_NOISE = LABEL_NOISE.rule.high  # the rule book says it once
TRUTH_FILE = "label_noise.csv"
CORRECTIONS_FILE = "label_noise_corrections.csv"
NOISE_KEY = 0xBAD  # the noise generator's own seed entry; the photo streams never use it
SWAPPED = ("incorrect_mask", "normal")


@dataclass(frozen=True)
class Plant:
    """One planted error: the person as drawn (true) and as labelled (given)."""

    kind: str
    true: Person
    given: Person  # the same person with the wrong gender or age (swap: unchanged)

    @property
    def field(self) -> str:
        return self.kind  # the core.dataset correction field: swap, gender or age

    @property
    def values(self) -> tuple[str, str]:
        """(given, true) as written in the truth file; true is also the correction value."""
        if self.kind == "swap":
            return ":".join(reversed(SWAPPED)), ":".join(SWAPPED)
        attr = self.kind
        return str(getattr(self.given, attr)), str(getattr(self.true, attr))

    @property
    def stems(self) -> tuple[str, ...]:
        return SWAPPED if self.kind == "swap" else STEMS


def planted_count(people: int, rate: float) -> int:
    """round(rate * people), half up, and at least one person whenever rate > 0."""
    if rate <= 0:
        return 0
    return min(people, max(1, math.floor(rate * people + 0.5)))


def _wrong_age(age: int, rng: np.random.Generator) -> int:
    """An age from the neighbouring group (for 30-59, the one across the nearer boundary)."""
    group = age_group(age)
    other = 1 if group != 1 else (0 if age < 45 else 2)
    table = AGE_WEIGHTS[other]
    p = np.array(list(table.values()), dtype=float)
    return int(rng.choice(np.array(list(table)), p=p / p.sum()))


def plan_label_noise(train: list[Person], rate: float, seed: int) -> list[Plant]:
    """Which training persons get which wrong label, in person order; [] when rate is 0.

    The kinds take turns in a random order, so they are mixed as evenly as the count allows.
    """
    n = planted_count(len(train), rate)
    if n == 0:
        return []
    rng = np.random.default_rng(np.random.SeedSequence([seed, NOISE_KEY]))
    chosen = sorted(int(i) for i in rng.choice(len(train), size=n, replace=False))
    order = [KINDS[int(k)] for k in rng.permutation(len(KINDS))]
    plants = []
    for turn, index in enumerate(chosen):
        p, kind = train[index], order[turn % len(KINDS)]
        if kind == "gender":
            given = replace(p, gender="male" if p.gender == "female" else "female")
        elif kind == "age":
            given = replace(p, age=_wrong_age(p.age, rng))
        else:
            given = p
        plants.append(Plant(kind, p, given))
    return plants


def labelled(train: list[Person], plants: list[Plant]) -> list[Person]:
    """The train persons as their labels (folder names, train.csv) will describe them."""
    given = {plant.true.index: plant.given for plant in plants}
    return [given.get(p.index, p) for p in train]


def plant_on_disk(images: Path, plants: list[Plant]) -> None:
    """Rename the drawn folders and files so that their names carry the planted errors."""
    for plant in plants:
        folder = images / plant.true.folder
        if plant.kind == "swap":
            a, b = (folder / f"{stem}{plant.true.ext}" for stem in SWAPPED)
            parked = folder / f"swapping{plant.true.ext}"
            a.rename(parked)
            b.rename(a)
            parked.rename(b)
        else:
            folder.rename(images / plant.given.folder)


def write_truth(out: Path, plants: list[Plant]) -> tuple[Path, Path]:
    """DIR/label_noise.csv (the truth) and DIR/label_noise_corrections.csv (core.dataset's form)."""
    truth, corrections = out / TRUTH_FILE, out / CORRECTIONS_FILE
    with open(truth, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["person", "kind", "field", "given", "true", "stems"])
        for plant in plants:
            w.writerow([plant.given.folder, plant.kind, plant.field, *plant.values, ";".join(plant.stems)])
    with open(corrections, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["person", "field", "value"])
        for plant in plants:
            w.writerow([f"{plant.true.index + 1:06d}", plant.field, plant.values[1]])
    return truth, corrections
