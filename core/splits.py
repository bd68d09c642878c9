"""Person-level validation splits and k folds.

No person ever appears on both sides of a split: the 7 photos of one person are near
duplicates, and splitting by image (as the widely used baseline does) inflates validation
scores. Splits are stratified by class as far as the grouping allows.

``together`` (person -> group key, from a health check: core.health.fold_groups) keeps
persons whose photos are copies of each other (one person filed under two ids) in one fold;
without it the groups are the persons, exactly as before.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from fractions import Fraction

import numpy as np
import pandas as pd
from sklearn.model_selection import StratifiedGroupKFold

from core.errors import UserError


def _groups(df: pd.DataFrame, together: Mapping[str, str] | None = None) -> np.ndarray:
    """Group key of each row: the person where known, else the image itself; with ``together``,
    a person listed there takes its group's key."""
    person = df["person"].astype(str).to_numpy()
    if together:
        person = np.array([together.get(p, p) for p in person], dtype=object)
    return np.where(person != "", person, df["path"].astype(str).to_numpy())


TIED = " once the persons the health check ties together (copies of each other) count as one"


def _count(n_groups: int, together: Mapping[str, str] | None) -> str:
    """``the dataset has N``, saying so when a health check's groups made persons one."""
    return f"the dataset has {n_groups}" + (TIED if together else "")


def person_folds(df: pd.DataFrame, k: int, seed: int = 0,
                 together: Mapping[str, str] | None = None) -> list[tuple[np.ndarray, np.ndarray]]:
    """K (train_idx, val_idx) pairs of row positions, grouped by person (and by ``together``),
    stratified by class."""
    groups = _groups(df, together)
    n_groups = len(np.unique(groups))
    if k < 2:
        raise UserError(f"folds must be >= 2, got {k}")
    if n_groups < k:
        raise UserError(f"folds={k} needs at least {k} persons, but {_count(n_groups, together)}; use fewer folds")
    y = df["label"].to_numpy()
    splitter = StratifiedGroupKFold(n_splits=k, shuffle=True, random_state=seed)
    with warnings.catch_warnings():
        # sklearn warns when a class has fewer groups than folds; stratification is then best effort.
        warnings.simplefilter("ignore", UserWarning)
        return [(np.sort(tr), np.sort(va)) for tr, va in splitter.split(np.zeros(len(y)), y, groups)]


def person_split(df: pd.DataFrame, val_ratio: float = 0.2, seed: int = 0,
                 together: Mapping[str, str] | None = None) -> tuple[np.ndarray, np.ndarray]:
    """One (train_idx, val_idx) split holding out ``val_ratio`` of the persons.

    The ratio is written as a fraction m/k with k <= 20 (0.2 = 1/5, 0.4 = 2/5, 0.3 = 3/10),
    and validation is m of k stratified person folds. (Taking one of round(1 / ratio) folds,
    as before, turned 0.4 into 0.5.)
    """
    if not 0.0 < val_ratio < 1.0:
        raise UserError(f"val-ratio must be between 0 and 1 (exclusive), got {val_ratio}")
    n_groups = len(np.unique(_groups(df, together)))
    if n_groups < 2:
        way = "check the health file or leave it out" if together else "use a dataset with more persons"
        raise UserError(f"a validation split needs at least 2 persons, but {_count(n_groups, together)}; {way}")
    share = Fraction(val_ratio).limit_denominator(min(20, max(2, n_groups)))
    m, k = share.numerator, share.denominator
    if m == 0 or m == k:
        raise UserError(f"val-ratio {val_ratio} leaves {'no' if m == 0 else 'every'} person for validation among "
                        f"{n_groups} persons; choose a ratio between {1 / n_groups:.2f} and {1 - 1 / n_groups:.2f}")
    folds = person_folds(df, k, seed, together)
    if m == 1:
        return folds[0]
    val = np.sort(np.concatenate([va for _, va in folds[:m]]))
    return np.setdiff1d(np.arange(len(df)), val), val
