"""What the explorer's pages share: the dataset, the recipe being edited and cached core calls.

* **Dataset**: the sidebar scans the folder once (``st.cache_data``) and leaves a
  :class:`Loaded` in ``st.session_state``; pages take it with :func:`require_dataset`, which
  shows the reason and ends the page quietly when there is no usable dataset.
* **Recipe**: one :class:`core.recipe.Recipe` per user in ``st.session_state``. Pages change it
  only through :func:`update_recipe`, which validates with ``Recipe.replace`` and shows a bad
  value as ``st.error``. Widgets bound to recipe fields use keys starting with ``r.`` and take
  their first value from the recipe (:func:`init_widget`); loading a recipe drops those keys,
  so every widget re-reads the loaded recipe.
* **Caches**: images, thumbnails, face boxes, the person split and SMOTE features are cached
  per dataset key, so a rerun after a slider move only redoes what the slider changed.
"""

from __future__ import annotations

import json
import os
import traceback
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

import numpy as np
import pandas as pd
import streamlit as st
from PIL import Image

from core.dataset import REPORTED_CORRECTIONS, Dataset, Problem, detect_layout, scan
from core.errors import DatasetError, RecipeError, UserError
from core.preprocess import load_rgb
from core.recipe import Recipe, starter_recipe
from core.stats import resize_to_height

REPO = Path(__file__).resolve().parents[1]
DEMO_COMMAND = "python -m core demo --out demo_data"
RECIPE = "recipe"
WIDGET_PREFIX = "r."  # session-state keys of widgets bound to recipe fields
LOADED = "_loaded"
RECIPE_MESSAGE = "_recipe_message"
VAL_RATIO, SPLIT_SEED = 0.2, 0  # the oversampling page's person split (training uses the same defaults)


class PageStop(Exception):
    """Raised by a page to end quietly after it has shown why it cannot go on."""


# ----------------------------------------------------------------------------- page guard

@contextmanager
def guard() -> Iterator[None]:
    """Turn what a page raises into ``st.error`` instead of a traceback box.

    User errors show their one-line message; anything unexpected shows its type and message,
    with the traceback folded away for a bug report. Streamlit's own control flow (st.stop,
    st.rerun) derives from BaseException and passes through. Set ``MASKLAB_RAISE=1`` to let
    unexpected errors through while debugging.
    """
    try:
        yield
    except PageStop:
        pass
    except UserError as exc:
        st.error(str(exc))
    except Exception as exc:  # noqa: BLE001 - this is the last line of defence for a page
        if os.environ.get("MASKLAB_RAISE"):
            raise
        st.error(f"Unexpected error: {exc.__class__.__name__}: {exc}")
        with st.expander("Details for a bug report"):
            st.code(traceback.format_exc(), language="text")


# ----------------------------------------------------------------------------- dataset

@dataclass
class Loaded:
    """The sidebar's dataset, or why there is none."""

    root: str
    dataset: Dataset | None = None
    error: str | None = None
    problems: list[Problem] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # warnings about the corrections choice
    files_key: str = ""  # changes when the folder's files change: keys face boxes
    key: str = ""  # files_key plus the corrections: keys anything that depends on labels
    corrections: str | None = None  # the corrections CSV actually applied (training uses the same)


def runs_dir() -> Path:
    """Where trainings write their run directories: ``$MASKLAB_RUNS``, else ``<repo>/runs``."""
    return Path(os.environ.get("MASKLAB_RUNS") or REPO / "runs").expanduser().resolve()


def default_data_root() -> str:
    """``$MASKLAB_DATA``, else the demo dataset in the repository (``demo_data/train``)."""
    return os.environ.get("MASKLAB_DATA") or str(REPO / "demo_data" / "train")


def _signature(root: Path) -> str:
    """Cheap fingerprint of a dataset folder: modification times of its top-level entries."""
    parts = []
    for p in (root, root / "images", root / "train.csv", root / "info.csv", root / "gt.csv"):
        try:
            s = p.stat()
            parts.append(f"{s.st_mtime_ns}:{s.st_size}")
        except OSError:
            parts.append("-")
    return "|".join(parts)


@st.cache_data(show_spinner="Scanning the dataset…", max_entries=8)
def _scan(root: str, corrections: str | None, signature: str) -> Dataset:
    return scan(root, corrections=corrections)


def clear_caches() -> None:
    """Forget everything derived from dataset files (the sidebar's Rescan button)."""
    for cached in (_scan, _faces, _face_lookup, image_pil, thumbnail, image_choices, samples, split,
                   smote_features, sample_plan):
        cached.clear()
    _face_keys().clear()


def load_dataset(root: str, corrections: str | None = None) -> Loaded:
    """Scan ``root`` (cached). Never raises for bad input: the reason lands in ``Loaded.error``."""
    root = (root or "").strip()
    if not root:
        return Loaded(root, error="Type a dataset folder in the sidebar.")
    path = Path(root).expanduser()
    if not path.exists():
        return Loaded(root, error=(
            f"Dataset folder `{path}` does not exist. To create the demo dataset, run "
            f"`{DEMO_COMMAND}` in the repository root ({REPO}), then use `demo_data/train`; "
            "or type another folder in the sidebar."))
    notes = []
    try:
        if corrections and detect_layout(path)[0] != "train":
            notes.append("Label corrections apply to the competition train layout only; they are ignored here.")
            corrections = None
        try:
            ds = _scan(str(path), corrections, _signature(path))
        except DatasetError as exc:
            if not corrections:
                raise
            notes.append(f"Label corrections not applied: {exc}")
            corrections = None
            ds = _scan(str(path), None, _signature(path))
    except DatasetError as exc:
        return Loaded(root, error=str(exc), problems=list(exc.problems), notes=notes)
    except UserError as exc:
        return Loaded(root, error=str(exc), notes=notes)
    files_key = f"{path}|{_signature(path)}"
    return Loaded(root, ds, problems=list(ds.problems), notes=notes, files_key=files_key,
                  key=f"{files_key}|{corrections or ''}", corrections=corrections)


def corrections_choice(use_reported: bool, custom_path: str) -> str | None:
    """The corrections CSV to apply: a typed path wins over the shipped reported list."""
    custom_path = (custom_path or "").strip()
    if custom_path:
        return custom_path
    return str(REPORTED_CORRECTIONS) if use_reported else None


def loaded() -> Loaded:
    return st.session_state.get(LOADED) or Loaded("", error="No dataset loaded yet.")


def show_problems(problems: list[Problem]) -> None:
    """A warning with the number of problems and an expander listing each path and rule."""
    if not problems:
        return
    st.warning(f"{len(problems)} problem(s) found in the data; the files concerned are left out of the index.")
    with st.expander(f"Problems in the data ({len(problems)})"):
        st.dataframe(pd.DataFrame({"path": [p.path for p in problems], "problem": [p.rule for p in problems]}),
                     hide_index=True)


def require_dataset() -> Dataset:
    """The loaded dataset; else show why (with the problems found) and end the page."""
    info = loaded()
    if info.dataset is None:
        st.error(info.error or "No dataset loaded.")
        show_problems(info.problems)
        raise PageStop
    return info.dataset


# ----------------------------------------------------------------------------- recipe

def starting_recipe() -> Recipe:
    """The recipe a session starts from: tuned for competition layouts, neutral otherwise."""
    info = st.session_state.get(LOADED)
    layout = info.dataset.layout if info is not None and info.dataset is not None else None
    return starter_recipe(layout)


def get_recipe() -> Recipe:
    if RECIPE not in st.session_state:
        st.session_state[RECIPE] = starting_recipe()
    return st.session_state[RECIPE]


def on_recipe_reset() -> None:
    set_recipe(starting_recipe())
    _message("success", "Recipe reset to the starting recipe for this dataset's layout.")


def update_recipe(section: str | None = None, **fields) -> bool:
    """Change fields of one recipe section (or top-level fields when ``section`` is None).

    The new recipe is validated by ``Recipe.replace``; a bad value leaves the recipe as it
    was and shows the RecipeError (key, value, allowed range) as ``st.error``.
    """
    recipe = get_recipe()
    try:
        new = recipe.replace(**({section: fields} if section else fields))
    except RecipeError as exc:
        st.error(f"Recipe not changed: {exc}")
        return False
    if new != recipe:
        st.session_state[RECIPE] = new
    return True


def init_widget(key: str, value) -> str:
    """Give a recipe-bound widget its value from the recipe the first time it is drawn."""
    if key not in st.session_state:
        st.session_state[key] = value
    return key


def reset_widgets(prefix: str = WIDGET_PREFIX) -> None:
    """Forget widget values under ``prefix`` so the widgets re-read the recipe."""
    for key in [k for k in st.session_state if str(k).startswith(prefix)]:
        del st.session_state[key]


def set_recipe(recipe: Recipe) -> None:
    st.session_state[RECIPE] = recipe
    reset_widgets()


def compact_json(d: dict) -> str:
    """JSON with one line per top-level key: short enough to read, valid to paste."""
    lines = [f"  {json.dumps(k)}: {json.dumps(v)}" for k, v in d.items()]
    return "{\n" + ",\n".join(lines) + "\n}"


def recipe_json(recipe: Recipe) -> str:
    return compact_json(recipe.to_dict())


def _message(kind: str, text: str) -> None:
    st.session_state[RECIPE_MESSAGE] = (kind, text)


def show_recipe_message() -> None:
    """The outcome of the last save/load, shown once."""
    msg = st.session_state.pop(RECIPE_MESSAGE, None)
    if msg:
        getattr(st, msg[0])(msg[1])


def load_recipe_text(text: str, source: str) -> bool:
    try:
        recipe = Recipe.from_json(text)
    except RecipeError as exc:
        _message("error", f"Recipe not loaded from {source}: {exc}")
        return False
    set_recipe(recipe)
    _message("success", f"Loaded the recipe from {source}.")
    return True


def on_recipe_upload() -> None:
    """Callback of the sidebar's recipe uploader: load each newly uploaded file once."""
    upload = st.session_state.get("recipe_upload")
    if upload is None:
        return
    try:
        text = upload.getvalue().decode("utf-8")
    except UnicodeDecodeError:
        _message("error", f"Recipe not loaded from {upload.name}: not a UTF-8 text file")
        return
    load_recipe_text(text, upload.name)


def on_recipe_load_path() -> None:
    path = (st.session_state.get("recipe_path") or "").strip()
    if not path:
        _message("error", "Type the path of a recipe JSON file first.")
        return
    try:
        recipe = Recipe.load(Path(path).expanduser())
    except RecipeError as exc:
        _message("error", f"Recipe not loaded: {exc}")
        return
    except OSError as exc:
        _message("error", f"Recipe not loaded: {path}: {exc.strerror}")
        return
    set_recipe(recipe)
    _message("success", f"Loaded the recipe from {path}.")


def on_recipe_save_path() -> None:
    path = (st.session_state.get("recipe_path") or "").strip()
    if not path:
        _message("error", "Type the path to save the recipe to first.")
        return
    try:
        saved = get_recipe().save(Path(path).expanduser())
    except OSError as exc:
        _message("error", f"Recipe not saved: {path}: {exc.strerror}")
        return
    _message("success", f"Saved the recipe to {saved}.")


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
    """Dataset keys whose face table is already computed (shared by all sessions)."""
    return set()


# Face detection starts its worker pool with "spawn" (a fresh interpreter per worker), which is
# safe from the threaded Streamlit server: use every core. (The image cache spawns too.)
WORKERS = None


@st.cache_data(show_spinner=False, max_entries=4)
def _faces(files_key: str, _paths: tuple[str, ...]) -> pd.DataFrame:
    from core.faces import cached_faces

    return cached_faces(list(_paths), workers=WORKERS)


@st.cache_resource(max_entries=4)
def _face_lookup(files_key: str, _faces_table: pd.DataFrame) -> dict[str, tuple[float, float, float, float]]:
    t = _faces_table.dropna()
    return {p: (x, y, w, h) for p, x, y, w, h in zip(t["path"], t["x"], t["y"], t["w"], t["h"])}


def faces_on_disk() -> bool:
    """Whether the face table of the loaded dataset is already in the on-disk cache."""
    from core.faces import is_cached

    info = loaded()
    if info.dataset is None:
        return False
    return info.files_key in _face_keys() or is_cached(info.dataset.df["path"])


def faces(run: bool = True) -> pd.DataFrame | None:
    """Face boxes of the loaded dataset (path,x,y,w,h), or None if not computed and ``run`` is False.

    The first computation shows a progress bar; the on-disk cache of ``core.faces`` makes it
    instant afterwards, and st.cache_data keeps the table in memory for reruns.
    """
    info = loaded()
    if info.dataset is None:
        return None
    paths = tuple(info.dataset.df["path"])
    if info.files_key in _face_keys():
        return _faces(info.files_key, paths)
    if not run:
        return None
    from core.faces import cached_faces

    bar = st.progress(0.0, text=f"Detecting faces in {len(paths):,} images…")
    cached_faces(list(paths), workers=WORKERS, progress=lambda done, total: bar.progress(
        done / max(total, 1), text=f"Detecting faces: {done:,} / {total:,} images"))
    bar.empty()
    table = _faces(info.files_key, paths)
    _face_keys().add(info.files_key)
    return table


def face_box(path: str, table: pd.DataFrame | None) -> tuple[float, float, float, float] | None:
    """This image's face box in pixels, or None (no table, or no face found)."""
    if table is None:
        return None
    return _face_lookup(loaded().files_key, table).get(str(path))


def faces_for_recipe(recipe: Recipe) -> pd.DataFrame | None:
    """The face table when the recipe crops to faces (computed if needed), else what is known."""
    return faces(run=recipe.crop.mode == "face")


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
