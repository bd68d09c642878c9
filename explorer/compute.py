"""Cached core calls the pages share: images, thumbnails, face boxes, the person split, the
preprocessed training split, SMOTE features and oversampling plans.

Everything is cached per dataset key (:attr:`explorer.data.Loaded.key`), so a rerun after a
slider move only redoes what the slider changed. ``st.cache_data`` hands each session its own
copy; ``st.cache_resource`` objects are shared by every session and never modified in place.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import streamlit as st
from PIL import Image

from core import rulebook as rb
from core.images import load_rgb, resize_to_height
from core.recipe import Recipe
from explorer.data import loaded, scan_cached
from explorer.recipe_state import get_recipe

VAL_RATIO, SPLIT_SEED = 0.2, 0  # the oversampling page's person split (training uses the same defaults)
# Face detection starts its worker pool with "spawn" (a fresh interpreter per worker), which is
# safe from the threaded Streamlit server: use every core. (The image cache spawns too.)
WORKERS = None
# The Faces page runs every detector without a click up to this many images; above, on a click.
FACES_AUTO_LIMIT = 1000


def clear_caches() -> None:
    """Forget everything derived from dataset files (the sidebar's Rescan and Clear buttons)."""
    for cached in (scan_cached, _faces, _face_lookup, image_pil, thumbnail, image_choices, samples, split,
                   smote_features, sample_plan):
        cached.clear()
    _face_keys().clear()


# ----------------------------------------------------------------------------- images

@st.cache_resource(show_spinner=False, max_entries=128)
def image_pil(path: str) -> Image.Image:
    """An image decoded once per path as RGB, the input ``core.preprocess.preprocess`` takes.

    Shared, not copied (st.cache_resource): a 384x512 photo is 590 KB, and copying it out of
    st.cache_data on every slider move costs more than the crop + enhance itself. Nothing in
    the app modifies an image in place.
    """
    return load_rgb(path)


def image(path: str) -> np.ndarray:
    """The image as an RGB uint8 array (a copy, free to draw on)."""
    return np.array(image_pil(path))


@st.cache_data(show_spinner=False, max_entries=4096)
def thumbnail(path: str, height: int = 96) -> np.ndarray:
    return resize_to_height(np.asarray(load_rgb(path)), height)


@st.cache_data(show_spinner=False, max_entries=8)
def image_choices(key: str, _df: pd.DataFrame, per_class: int = 12) -> dict[int, str]:
    """Images offered by pickers, a few of every class: row position -> 'class · path'."""
    from core.stats import image_choices as choose

    rows = choose(_df, per_class)
    names = _df["label_name"].to_numpy()
    rels = _df["rel"].to_numpy()
    return {i: f"{names[i] or 'no label'} · {rels[i]}" for i in rows}


@st.cache_data(show_spinner=False, max_entries=32)
def samples(key: str, _df: pd.DataFrame, per_class: int, seed: int) -> pd.DataFrame:
    """Seeded random rows of every class (core.stats.sample_per_class), cached per dataset."""
    from core.stats import sample_per_class

    return sample_per_class(_df, per_class, seed)


# ----------------------------------------------------------------------------- faces

@st.cache_resource
def _face_keys() -> set:
    """(dataset key, detector) pairs whose face table is already computed (shared by all sessions)."""
    return set()


@st.cache_data(show_spinner=False, max_entries=8)
def _faces(files_key: str, detector: str, _df: pd.DataFrame) -> pd.DataFrame:
    """The face table with the person fallback (core.faces.face_table), from the on-disk cache."""
    from core.faces import face_table

    return face_table(_df, detector, workers=WORKERS)


@st.cache_resource(max_entries=8)
def _face_lookup(files_key: str, detector: str, _faces_table: pd.DataFrame) -> dict[str, tuple[float, ...]]:
    t = _faces_table.dropna(subset=["x", "y", "w", "h"])
    return {p: (x, y, w, h) for p, x, y, w, h in zip(t["path"], t["x"], t["y"], t["w"], t["h"])}


def _detector(detector: str | None) -> str:
    return detector or get_recipe().crop.detector


def faces_on_disk(detector: str | None = None) -> bool:
    """Whether the loaded dataset's face table by ``detector`` (default: the recipe's) is on disk."""
    from core.faces import is_cached

    info, detector = loaded(), _detector(detector)
    if info.dataset is None:
        return False
    return (info.files_key, detector) in _face_keys() or is_cached(info.dataset.df["path"], detector)


def faces(run: bool = True, detector: str | None = None) -> pd.DataFrame | None:
    """The loaded dataset's face table by ``detector`` (default: the recipe's), with the person
    fallback; None if it is not computed and ``run`` is False.

    The first computation shows a progress bar; the on-disk cache of ``core.faces`` makes it
    instant afterwards, and st.cache_data keeps the table in memory for reruns.
    """
    info, detector = loaded(), _detector(detector)
    if info.dataset is None:
        return None
    df = info.dataset.df
    if (info.files_key, detector) in _face_keys():
        return _faces(info.files_key, detector, df)
    if not run:
        return None
    from core.faces import cached_faces

    label = rb.DETECTOR.label(detector)
    bar = st.progress(0.0, text=f"Detecting faces in {len(df):,} images ({label})…")
    cached_faces(df["path"], detector, workers=WORKERS, progress=lambda done, total: bar.progress(
        done / max(total, 1), text=f"Detecting faces ({label}): {done:,} / {total:,} images"))
    bar.empty()
    table = _faces(info.files_key, detector, df)
    _face_keys().add((info.files_key, detector))
    return table


def face_tables(run: bool) -> dict[str, pd.DataFrame]:
    """Every detector's face table that is known (or, with ``run``, computed), by detector name.

    The single detectors run first, so a combination is put together from their cached tables
    instead of detecting again.
    """
    from core.detectors import CHAINS

    order = sorted(rb.DETECTOR.values, key=lambda name: len(CHAINS[name]))
    found = {name: faces(run=run or faces_on_disk(name), detector=name) for name in order}
    return {name: found[name] for name in rb.DETECTOR.values if found[name] is not None}


def face_box(path: str, table: pd.DataFrame | None) -> tuple[float, float, float, float] | None:
    """This image's face box in pixels (its own, or its person's), or None (no table, or no box)."""
    if table is None:
        return None
    return _face_lookup(loaded().files_key, table.attrs.get("detector", ""), table).get(str(path))


def faces_for_recipe(recipe: Recipe) -> pd.DataFrame | None:
    """The face table of the recipe's detector when the recipe crops to faces (computed if
    needed), else whatever is known."""
    return faces(run=recipe.crop.mode == "face", detector=recipe.crop.detector)


# ----------------------------------------------------------------------------- split and SMOTE

@st.cache_data(show_spinner=False, max_entries=4)
def split(key: str, _df: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """(train_idx, val_idx) row positions of the person split."""
    from core.splits import person_split

    return person_split(_df, VAL_RATIO, SPLIT_SEED)


def train_images(df: pd.DataFrame, recipe: Recipe, table: pd.DataFrame | None) -> np.ndarray:
    """Preprocessed (N, H, W, 3) uint8 images of ``df`` from the on-disk preprocessed cache.

    The first build shows a progress bar; later calls map the cached file.
    """
    from core.cache import build_cache

    bar = None

    def progress(done: int, total: int) -> None:
        nonlocal bar
        if bar is None and done >= total:
            return  # already cached: no bar flashing by
        if bar is None:
            bar = st.progress(0.0)
        bar.progress(done / max(total, 1), text=f"Preprocessing the training split: {done:,} / {total:,} images")

    images = build_cache(df, recipe, faces=table, progress=progress)
    if bar is not None:
        bar.empty()
    return images


@st.cache_data(show_spinner="Computing SMOTE features…", max_entries=4)
def smote_features(key: str, size: tuple[int, int], _images: np.ndarray) -> np.ndarray:
    from core.sampling import smote_features as features

    return features(_images, size)


@st.cache_data(show_spinner=False, max_entries=16)
def sample_plan(key: str, method: str, target: float, k: int, _labels: np.ndarray,
                _features: np.ndarray | None):
    """The oversampling plan for the training split (key covers labels and features)."""
    from core.sampling import oversample

    return oversample(_labels, method, target=target, k_neighbors=k, features=_features, seed=0)
