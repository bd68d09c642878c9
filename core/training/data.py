"""The labelled dataset a run trains on: index rows, the uint8 image cache, person splits."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd

from core.cache import build_cache
from core.dataset import REPORTED_CORRECTIONS, scan
from core.errors import UserError
from core.labels import CLASS_NAMES
from core.recipe import Recipe
from core.splits import person_folds, person_split

# ----------------------------------------------------------------------------- data

@dataclass
class TrainData:
    df: pd.DataFrame  # labelled rows of the dataset index
    images: np.ndarray  # (N, H, W, 3) uint8, row i is df row i (memory-mapped cache)
    labels: np.ndarray  # int64 true class of each row: validation and every score use these
    class_names: list[str]
    # the class each row is trained as (None: ``labels``); differs with --old-age (old_age_labels)
    train_labels: np.ndarray | None = None

    def __post_init__(self):
        if self.train_labels is None:
            self.train_labels = self.labels


def old_age_labels(df: pd.DataFrame, class_names: list[str], old_age: int,
                   log: Callable[[str], None] | None = None) -> np.ndarray:
    """The labels to train on with ``--old-age N``: a person aged N or older is in the 60+ group,
    one younger (and 30 or older) in 30-59; the mask and gender parts stay. Only for the
    competition's 18 classes, whose age group is the class % 3; other datasets keep theirs."""
    labels = df["label"].to_numpy(np.int64).copy()
    if old_age == 60:
        return labels
    if list(class_names) != list(CLASS_NAMES):
        if log:
            log(f"--old-age {old_age} ignored: it applies to the competition's 18 classes only")
        return labels
    age = df["age"].to_numpy()
    known = age >= 0
    group = np.where(age >= old_age, 2, np.where(age >= 30, 1, 0))
    labels[known] = labels[known] - labels[known] % 3 + group[known]
    if log:
        changed = labels != df["label"].to_numpy(np.int64)
        log(f"--old-age {old_age}: {int(changed.sum())} images of {df.loc[changed, 'person'].nunique()} persons "
            "trained in another age group (validation keeps the true labels)")
    return labels


def scan_labelled(data: str, corrections: str | None, leave_out: str | None = None):
    """The dataset index, keeping rows with a label (without the images a leave-out file lists);
    UserError when none has one."""
    corrections = str(REPORTED_CORRECTIONS) if corrections == "reported" else corrections
    ds = scan(data, corrections=corrections, leave_out=leave_out)
    df = ds.df[ds.df["label"] >= 0].reset_index(drop=True)
    if df.empty:
        raise UserError(f"{data}: no labelled images to train on (a {ds.layout!r} dataset without answers)")
    if df["label"].nunique() < 2:
        raise UserError(f"{data}: training needs at least 2 classes, found only {df['label_name'].iloc[0]!r}")
    return ds, df


def load_images(df: pd.DataFrame, recipe: Recipe, workers: int, log: Callable[[str], None],
                progress: Callable[[int, int], None]) -> np.ndarray:
    if recipe.crop.mode == "face":
        log("finding faces (cached after the first run)")  # build_cache looks them up
    return build_cache(df, recipe, progress=progress, log=log, workers=workers or None)


def make_splits(df: pd.DataFrame, folds: int, val_ratio: float, seed: int,
                together: dict[str, str] | None = None) -> list[tuple[np.ndarray, np.ndarray]]:
    """(train_rows, val_rows) per model; no person is ever on both sides, nor two persons that
    ``together`` ties (one person under two ids: :func:`health_groups`)."""
    if folds >= 2:
        return person_folds(df, folds, seed, together)
    return [person_split(df, val_ratio, seed, together)]


def health_groups(health: str | None, df: pd.DataFrame, root: Path) -> dict[str, str] | None:
    """person -> fold group from a health.csv (core.health.fold_groups), for the persons of ``df``
    (scanned from the dataset folder ``root``); None without a health file, so that the split is
    exactly the one without it.

    Refused in one line naming the file: a health.csv written for another dataset (a finding
    outside ``root``: same-numbered persons would be tied), and one that ties every person into
    one group (nothing left to validate on)."""
    if not health:
        return None
    from core.health import fold_groups, outside, read_health_csv

    table = read_health_csv(health)
    away = outside(table, root)
    if away.any():
        line = int(np.flatnonzero(away.to_numpy())[0]) + 2  # the file's line: the header is line 1
        raise UserError(f"--health {health}: row {line} names {table['path'][away].iloc[0]}, outside the dataset "
                        f"folder {root}; a health CSV is used only with the dataset it was written for: python -m "
                        f"core health --data {root} writes one")
    persons = set(df["person"].astype(str))
    together = {p: g for p, g in fold_groups(table).items() if p in persons}
    if len(persons) >= 2 and len({together.get(p, p) for p in persons}) < 2:
        raise UserError(f"--health {health}: it ties all {len(persons)} persons of {root} into one group (persons "
                        "whose photos are copies of each other share a fold), so none is left for validation; check "
                        f"that it was written for this dataset (python -m core health --data {root}) or leave "
                        "--health out")
    return together


# ----------------------------------------------------------------------------- resume checks

FILES = "dataset_files.csv"  # in the run directory: what the run trained on, for --resume


def dataset_files(df: pd.DataFrame, splits: list[tuple[np.ndarray, np.ndarray]]) -> pd.DataFrame:
    """One row per training image: path, size in bytes, label, and its validation fold
    (the split it is held out in; -1 for none), so a resume can tell what changed."""
    fold = np.full(len(df), -1, dtype=np.int64)
    for k, (_, val) in enumerate(splits):
        fold[val] = k
    sizes = [Path(p).stat().st_size if Path(p).is_file() else -1 for p in df["path"]]
    return pd.DataFrame({"path": df["path"].astype(str).to_numpy(), "size": sizes,
                         "label": df["label"].to_numpy(np.int64), "val_fold": fold})


def describe_changes(before: pd.DataFrame, now: pd.DataFrame) -> str | None:
    """What differs between two :func:`dataset_files` tables, in one line; None when nothing."""
    old, new = before.set_index("path"), now.set_index("path")
    added, removed = new.index.difference(old.index), old.index.difference(new.index)
    both = old.index.intersection(new.index)
    o, n = old.loc[both], new.loc[both]
    resized, relabelled = both[(o["size"] != n["size"]).to_numpy()], both[(o["label"] != n["label"]).to_numpy()]
    moved = both[(o["val_fold"] != n["val_fold"]).to_numpy()]
    parts = [f"{len(ix)} {what} (e.g. {ix[0]})" for ix, what in
             ((added, "images added"), (removed, "images removed"), (resized, "images changed in size"),
              (relabelled, "labels changed"), (moved, "images moved to another validation split")) if len(ix)]
    return "; ".join(parts) or None
