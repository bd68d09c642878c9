"""Who the demo's people are: how many of each gender and age group, and which ages.

The counts follow the competition's 2,700 training people, so even a small demo keeps the real
class imbalance; extensions and AppleDouble traps are spread over folders the same exact way.
"""

from __future__ import annotations

import numpy as np

STEMS = ("mask1", "mask2", "mask3", "mask4", "mask5", "incorrect_mask", "normal")
RACE = "Asian"
MAX_PEOPLE = 999_999  # ids are six digits

# Real population of the competition's 2,700 training people.
GENDER_COUNTS = {"male": 1042, "female": 1658}
AGE_GROUP_COUNTS = (1281, 1227, 192)  # <30, 30-59, 60+
# Share of folders per extension (all seven files of a person share it) and with a trap.
EXTENSION_SHARES = {".jpg": 0.85, ".jpeg": 0.10, ".png": 0.05}
APPLEDOUBLE_SHARE = 0.03

# Numeric ages inside each group, as relative weights. Under 30 most people sit far from the
# boundary (28-29 are rare). At the other end the demo follows the real data (docs/data.md): the oldest age is 60
# (so the 60+ group is age 60 only), and the 59/60 boundary is hard to learn, which needs people
# just below it: the fifties are the densest part of the 30-59 group, up to 59. At 57-59 the
# wrinkles are within 5% of a 60-year-old's and the hair 72-90% grey (all grey at 60), under
# varying light: close to 60, the ambiguity the top teams' "--old-age 58" trick trades on.
AGE_WEIGHTS = (
    {18: 5, 19: 10, 20: 12, 21: 12, 22: 11, 23: 10, 24: 9, 25: 8, 26: 7, 27: 3, 28: 1.2, 29: 0.8},
    {30: 0.4, 31: 0.4, 32: 0.6, 33: 0.8, 34: 1.5, 35: 2, 36: 2.5, 37: 3.5,
     **{a: 5 for a in range(38, 50)}, **{a: 7 for a in range(50, 60)}},
    {60: 1},
)


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
