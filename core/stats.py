"""Small pure helpers behind the explorer's pages: class tables, imbalance, sample picks, sizes,
image properties (brightness, contrast, blur) and the images of a confusion-matrix cell. (How
images are drawn on screen is the app's own business: explorer/imaging.py.)

Nothing here imports streamlit; every function takes plain values (DataFrames, arrays) and
returns plain values, so the pages stay thin and the numbers are testable on their own.
"""

from __future__ import annotations

import math
from pathlib import Path

import cv2
import numpy as np
import pandas as pd

from core.images import cv_read, load_rgb, resize_to_height

# A class holding less than this share of the mean class count is flagged as a minority.
MINORITY_SHARE = 0.5


# ----------------------------------------------------------------------------- class tables

def class_counts(df: pd.DataFrame, class_names: list[str]) -> pd.DataFrame:
    """One row per class (all of them, empty ones included): label, name, count, share, minority.

    ``minority`` flags classes under ``MINORITY_SHARE`` x the mean count over all classes,
    so an empty class is always a minority.
    """
    labelled = df.loc[df["label"] >= 0, "label"]
    counts = labelled.value_counts().reindex(range(len(class_names)), fill_value=0)
    total = int(counts.sum())
    mean = total / len(class_names) if class_names else 0.0
    return pd.DataFrame({
        "label": np.arange(len(class_names)),
        "name": list(class_names),
        "count": counts.to_numpy(dtype=int),
        "share": counts.to_numpy(dtype=float) / total if total else 0.0,
        "minority": counts.to_numpy(dtype=float) < MINORITY_SHARE * mean,
    })


def imbalance(counts: pd.DataFrame) -> dict:
    """Largest class / smallest non-empty class, plus which classes are minorities or empty.

    ``counts`` is :func:`class_counts`' table. Empty classes are listed apart (they would make
    the ratio infinite); with no non-empty class at all the ratio is NaN.
    """
    present = counts[counts["count"] > 0]
    if present.empty:
        return {"ratio": math.nan, "largest": None, "smallest": None, "mean": 0.0,
                "minority": [], "empty": list(counts["name"])}
    largest = present.loc[present["count"].idxmax()]
    smallest = present.loc[present["count"].idxmin()]
    return {
        "ratio": float(largest["count"] / smallest["count"]),
        "largest": (str(largest["name"]), int(largest["count"])),
        "smallest": (str(smallest["name"]), int(smallest["count"])),
        "mean": float(counts["count"].mean()),
        "minority": list(counts.loc[counts["minority"] & (counts["count"] > 0), "name"]),
        "empty": list(counts.loc[counts["count"] == 0, "name"]),
    }


def group_counts(df: pd.DataFrame, columns: list[str]) -> pd.DataFrame:
    """Image counts for each combination of ``columns`` (rows without a label left out)."""
    labelled = df[df["label"] >= 0]
    return labelled.groupby(columns, sort=False).size().reset_index(name="images")


def person_counts(df: pd.DataFrame, column: str) -> pd.DataFrame:
    """Distinct persons for each value of ``column`` (gender_name, age_name...)."""
    labelled = df[(df["label"] >= 0) & (df["person"] != "")]
    return labelled.groupby(column, sort=False)["person"].nunique().reset_index(name="persons")


def persons_by_age(df: pd.DataFrame) -> pd.DataFrame:
    """Distinct persons at each numeric age (competition layout), youngest first: columns age, persons.

    How many sit just below 60 is what ``--old-age`` trades on: training with N moves the
    persons aged N..59 into the 60+ group."""
    labelled = df[(df["label"] >= 0) & (df["person"] != "") & (df["age"] >= 0)]
    t = labelled.groupby("age")["person"].nunique().reset_index(name="persons")
    return t.astype({"age": int}).sort_values("age", ignore_index=True)


def size_table(df: pd.DataFrame) -> pd.DataFrame:
    """Image sizes: width, height, aspect (w/h) and how many images have each size, commonest first."""
    t = df.groupby(["width", "height"]).size().reset_index(name="images")
    t["aspect"] = (t["width"] / t["height"]).round(3)
    return t.sort_values("images", ascending=False, ignore_index=True)[["width", "height", "aspect", "images"]]


def corrected_rows(df: pd.DataFrame) -> pd.DataFrame:
    """Rows a label-corrections file changed, with the correction applied and the new label."""
    cols = ["rel", "person", "correction", "label_name"]
    return df.loc[df["corrected"].astype(bool), cols].reset_index(drop=True)


# ----------------------------------------------------------------------------- sample picks

def sample_per_class(df: pd.DataFrame, n: int, seed: int = 0) -> pd.DataFrame:
    """Up to ``n`` seeded-random rows of each class, ordered by class.

    Rows without a label (an eval set without answers) are sampled together as one group
    of up to ``n * 6`` rows, so a sample grid still has something to show.
    """
    labelled = df[df["label"] >= 0]
    if labelled.empty:
        return df.sample(n=min(len(df), n * 6), random_state=seed)
    shuffled = labelled.sample(frac=1.0, random_state=seed)
    return shuffled.groupby("label", sort=True).head(n).sort_values("label", kind="stable")


def image_choices(df: pd.DataFrame, per_class: int = 12, seed: int = 0) -> list[int]:
    """Row positions for an image picker: a few of every class, so the list stays short."""
    picks = sample_per_class(df.reset_index(drop=True), per_class, seed)
    return [int(i) for i in picks.index]


# ----------------------------------------------------------------------------- images

def interpolate(xa: np.ndarray, xb: np.ndarray, gap: float) -> np.ndarray:
    """One SMOTE sample between two uint8 images: xa + gap * (xb - xa), rounded back to uint8."""
    a, b = xa.astype(np.float32), xb.astype(np.float32)
    return np.clip(np.rint(a + gap * (b - a)), 0, 255).astype(np.uint8)


# ----------------------------------------------------------------------------- oversampling view

def split_counts(labels: np.ndarray, train_idx: np.ndarray, val_idx: np.ndarray,
                 after: dict[int, int], class_names: list[str]) -> pd.DataFrame:
    """Per class: train before, train after oversampling (``after`` = plan.counts()) and val."""
    n = len(class_names)
    before = np.bincount(labels[train_idx], minlength=n)[:n]
    val = np.bincount(labels[val_idx], minlength=n)[:n]
    return pd.DataFrame({
        "label": np.arange(n),
        "name": list(class_names),
        "train_before": before,
        "train_after": [int(after.get(c, 0)) for c in range(n)],
        "val": val,
    })


def synthetic_examples(a: np.ndarray, b: np.ndarray, gap: np.ndarray, n: int, seed: int = 0) -> list[int]:
    """Positions of up to ``n`` synthetic plan rows (a != b), seeded-random, spread over classes' order."""
    synth = np.flatnonzero(np.asarray(a) != np.asarray(b))
    if len(synth) <= n:
        return [int(i) for i in synth]
    rng = np.random.default_rng(seed)
    return sorted(int(i) for i in rng.choice(synth, size=n, replace=False))


# ----------------------------------------------------------------------------- image properties

PROPERTY_HEIGHT = 256  # images are measured at this height, so blur compares across image sizes
PROPERTIES = {"brightness": "Brightness (mean grey level, 0-255)",
              "contrast": "Contrast (standard deviation of the grey levels)",
              "laplacian_var": "Blur: variance of the Laplacian (lower = blurrier)"}


def image_properties(path: str | Path) -> dict[str, float]:
    """Brightness, contrast and the variance of the Laplacian (a blur measure: a sharp image has
    strong edges, hence a large variance) of one image's grey levels at PROPERTY_HEIGHT.

    JPEGs are decoded at half size by libjpeg itself (IMREAD_REDUCED_GRAYSCALE_2): a 384x512
    photo is measured at 256 rows anyway, and the reduced decode is several times faster.
    """
    gray = cv_read(path, cv2.IMREAD_REDUCED_GRAYSCALE_2)
    if gray is None:  # a format OpenCV cannot read, or a PNG under 2 pixels: PIL's decoder
        gray = cv2.cvtColor(np.asarray(load_rgb(path)), cv2.COLOR_RGB2GRAY)
    gray = resize_to_height(gray, PROPERTY_HEIGHT)
    return {"brightness": float(gray.mean()), "contrast": float(gray.std()),
            "laplacian_var": float(cv2.Laplacian(gray, cv2.CV_64F).var())}


def property_table(df: pd.DataFrame, per_class: int = 30, seed: int = 0) -> pd.DataFrame:
    """PROPERTIES of up to ``per_class`` seeded-random images of each class (sample_per_class):
    path, label, label_name and one column per property, for box plots by class."""
    picks = sample_per_class(df, per_class, seed)
    values = [image_properties(p) for p in picks["path"]]
    names = picks["label_name"].where(picks["label"] >= 0, "no label") if "label_name" in picks else "no label"
    return pd.concat([pd.DataFrame({"path": picks["path"].to_numpy(), "label": picks["label"].to_numpy(),
                                    "label_name": np.asarray(names)}),
                      pd.DataFrame(values, columns=list(PROPERTIES))], axis=1)


# ----------------------------------------------------------------------------- confusion cells

def cell_rows(predictions: pd.DataFrame, true: int, pred: int) -> pd.DataFrame:
    """The validation predictions (val_predictions.csv rows) of one confusion-matrix cell: true
    class ``true`` predicted as ``pred``, the most confident mistakes (lowest p(true)) first."""
    rows = predictions[(predictions["true"] == true) & (predictions["pred"] == pred)]
    return rows.sort_values("prob_true", kind="stable").reset_index(drop=True)
