"""The labelled dataset a run trains on: index rows, the uint8 image cache, person splits."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np
import pandas as pd

from core.cache import build_cache
from core.dataset import REPORTED_CORRECTIONS, scan
from core.errors import UserError
from core.recipe import Recipe
from core.splits import person_folds, person_split

# ----------------------------------------------------------------------------- data

@dataclass
class TrainData:
    df: pd.DataFrame  # labelled rows of the dataset index
    images: np.ndarray  # (N, H, W, 3) uint8, row i is df row i (memory-mapped cache)
    labels: np.ndarray  # int64 class of each row
    class_names: list[str]


def scan_labelled(data: str, corrections: str | None):
    """The dataset index, keeping rows with a label; UserError when none has one."""
    corrections = str(REPORTED_CORRECTIONS) if corrections == "reported" else corrections
    ds = scan(data, corrections=corrections)
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


def make_splits(df: pd.DataFrame, folds: int, val_ratio: float, seed: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """(train_rows, val_rows) per model; no person is ever on both sides."""
    if folds >= 2:
        return person_folds(df, folds, seed)
    return [person_split(df, val_ratio, seed)]
