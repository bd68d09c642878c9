"""The face table: one row per image, detected once per dataset and detector, cached on disk.

Columns (:data:`FACE_COLUMNS`): ``path``, the box ``x,y,w,h`` in original-image pixels,
``source`` (the detector that found the face: ``mtcnn`` or ``haar``; ``person`` for a box
borrowed from the same person's other photos; ``none``), MTCNN's ``confidence`` and its five
landmarks (``left_eye_x`` ... ``mouth_right_y``). Box, confidence and landmarks are NaN where a
source does not give them. The detectors themselves live in :mod:`core.detectors`.

Two kinds of table:

* :func:`cached_faces` - what the detector found in each file (source = detector or none);
* :func:`face_table` - the same with the person fallback (:func:`with_person_fallback`): a
  competition person's seven photos are one sitting, so a photo without a face of its own gets
  the median box of the same person's detected photos. The "each image's face" crop uses it.

The heatmap, the suggested crop and the detection rates read detected boxes only.
"""

from __future__ import annotations

import functools
import hashlib
import os
from collections.abc import Callable, Iterable
from pathlib import Path

import numpy as np
import pandas as pd

from core import rulebook as rb
from core.cores import map_items
from core.detectors import (
    BOX_COLUMNS,
    CHAINS,
    LANDMARK_COLUMNS,
    LANDMARKS,
    ROW_COLUMNS,
    RUNNERS,
    detect_one,
    init_worker,
)
from core.fileio import atomic_path, locked, remove_unlocked_temporaries
from core.listfiles import write_csv
from core.paths import cache_dir

FACE_COLUMNS = ["path", *ROW_COLUMNS]
DETECTED = tuple(RUNNERS)  # sources that are a face found in the image itself (mtcnn, haar)
SOURCES = (*DETECTED, "person", "none")  # every source, in the order reports list them
DEFAULT_DETECTOR = rb.DEFAULT_DETECTOR

PARALLEL_MIN = 64  # below this many images, worker start-up costs more than it saves
CHUNK = 32  # images per worker task

Progress = Callable[[int, int], None]


def detect_faces(paths: Iterable[str], detector: str = DEFAULT_DETECTOR, progress: Progress | None = None,
                 workers: int | None = None) -> pd.DataFrame:
    """Run ``detector`` over ``paths`` in ``workers`` processes (default: every usable core)."""
    paths = [str(p) for p in paths]
    results = map_items(functools.partial(detect_one, detector=detector), paths, workers=workers,
                        parallel_min=PARALLEL_MIN, chunk=CHUNK, progress=progress,
                        initializer=init_worker)  # each worker builds its own detectors
    table = pd.DataFrame(results, columns=ROW_COLUMNS)
    table.insert(0, "path", paths)
    return _typed(table)


def _typed(table: pd.DataFrame) -> pd.DataFrame:
    numeric = [c for c in FACE_COLUMNS if c not in ("path", "source")]
    table = table.astype({c: float for c in numeric})
    table["source"] = table["source"].fillna("none").astype(str)
    return table


def dataset_key(paths: list[str]) -> str:
    """Changes when any file is added, removed or rewritten."""
    h = hashlib.sha1()
    for p in sorted(paths):
        st = os.stat(p)
        h.update(f"{p}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
    return h.hexdigest()[:20]


# Part of the cache file's name, with the detector's: bump it when core.detectors changes, so
# that tables computed the old way are not reused. 2: the quarter-size first pass. 3: its 27 px
# start, 4 neighbours and the half-size pass's floor. 4: MTCNN, sources, landmarks, Haar boxes
# in MTCNN's convention.
DETECTOR_VERSION = 4


def _cache_file(paths: list[str], detector: str = DEFAULT_DETECTOR) -> Path:
    return cache_dir("faces") / f"{dataset_key(paths)}-{detector}-v{DETECTOR_VERSION}.csv"


def is_cached(paths: Iterable[str], detector: str = DEFAULT_DETECTOR) -> bool:
    """True when ``detector``'s face table for exactly these files is already on disk."""
    return _cache_file([str(p) for p in paths], detector).is_file()


def cached_faces(paths: Iterable[str], detector: str = DEFAULT_DETECTOR, progress: Progress | None = None,
                 workers: int | None = None) -> pd.DataFrame:
    """``detector``'s face table for these images (no fallback), computed once, then read from disk.

    Sessions and processes asking for the same table at once compute it once: the others
    wait for the first and read its file. A combination ("both") whose detectors' own tables
    are already on disk is put together from them, without detecting again.
    """
    paths = [str(p) for p in paths]
    cache = _cache_file(paths, detector)
    table = _read_table(cache)
    if table is None:
        with locked(cache):
            table = _read_table(cache)
            if table is None:
                remove_unlocked_temporaries(cache.parent, own=cache)  # leftovers of killed scans
                table = _combined(paths, detector)
                if table is None:
                    table = detect_faces(paths, detector, progress, workers)
                    progress = None  # it has reported every image
                with atomic_path(cache) as tmp:
                    table.to_csv(tmp, index=False)
    if progress:
        progress(len(table), len(table))
    table.attrs["detector"] = detector  # which detector's table this is (the app keys lookups by it)
    return table


def _combined(paths: list[str], detector: str) -> pd.DataFrame | None:
    """A chain's table from its detectors' cached tables (each row from the first that found a face)."""
    chain = CHAINS[detector]
    if len(chain) < 2:
        return None
    parts = [_read_table(_cache_file(paths, name)) for name in chain]
    if any(p is None for p in parts):
        return None
    table = parts[0].set_index("path")
    for later in parts[1:]:
        later = later.set_index("path").reindex(table.index)
        missing = (table["source"] == "none").to_numpy()
        table.loc[missing, ROW_COLUMNS] = later.loc[missing, ROW_COLUMNS].to_numpy()
    return _typed(table.reset_index())


def _read_table(cache: Path) -> pd.DataFrame | None:
    """The cached table (its file touched, so the cache cap evicts it last), or None."""
    try:
        table = pd.read_csv(cache, dtype={"path": str, "source": str}, keep_default_na=False,
                            na_values={c: [""] for c in FACE_COLUMNS if c not in ("path", "source")})
    except FileNotFoundError:  # not computed yet, or just evicted
        return None
    try:
        os.utime(cache)
    except OSError:  # read-only or already evicted: the table in hand is still good
        pass
    return _typed(table)


# ----------------------------------------------------------------------------- person fallback

def sittings(index: pd.DataFrame) -> pd.Series:
    """Each row's sitting (its person id), or "" where the layout has none.

    Only the competition's train layout has persons (a folder per person whose name gives the
    id and gender); an eval set has none, and a folder-per-class dataset's "person" is the image
    itself, so neither ever borrows a box from another photo.
    """
    if "person" not in index or "gender" not in index:
        return pd.Series("", index=index.index)
    person = index["person"].astype(str)
    return person.where((person != "") & (index["gender"] >= 0) & ~person.str.contains("/", regex=False), "")


def with_person_fallback(table: pd.DataFrame, index: pd.DataFrame) -> pd.DataFrame:
    """``table`` where each photo without a detected face gets the median detected box of the
    same person's photos (source ``person``; no confidence or landmarks). Rows of persons with
    no detected photo, and of datasets without persons, stay ``none``. Idempotent.

    The median is taken over boxes as fractions of each photo's own width and height (the
    index's ``width``, ``height``) and scaled back to the borrowing photo's pixels, so a photo
    saved at another size gets the same place on the face. A photo of unknown size (0) neither
    lends nor borrows."""
    table = table.copy()
    keyed = index.assign(path=index["path"].astype(str), sitting=sittings(index)).drop_duplicates("path")
    keyed = keyed.set_index("path").reindex(table["path"].astype(str))
    who = keyed["sitting"].fillna("").reset_index(drop=True).set_axis(table.index)
    wh = keyed[["width", "height"]].to_numpy(float)
    sized = (np.nan_to_num(wh) > 0).all(axis=1)
    scale = np.tile(wh, 2)  # x, y, w, h over width, height, width, height
    found = table["source"].isin(DETECTED).to_numpy() & (who != "").to_numpy() & sized
    fractions = pd.DataFrame(table.loc[found, BOX_COLUMNS].to_numpy(float) / scale[found], columns=BOX_COLUMNS)
    medians = fractions.groupby(who[found].to_numpy()).median()
    empty = (table["source"] == "none").to_numpy() & who.isin(medians.index).to_numpy() & sized
    if empty.any():
        table.loc[empty, BOX_COLUMNS] = medians.loc[who[empty]].to_numpy() * scale[empty]
        table.loc[empty, "source"] = "person"
    return table


def face_table(index: pd.DataFrame, detector: str = DEFAULT_DETECTOR, progress: Progress | None = None,
               workers: int | None = None) -> pd.DataFrame:
    """The face table of ``index``'s images with the person fallback (see the module's doc)."""
    return with_person_fallback(cached_faces(index["path"], detector, progress, workers), index)


def write_faces_csv(table: pd.DataFrame, out: str | Path) -> Path:
    """The CLI's faces.csv: :data:`FACE_COLUMNS`, whole pixels, empty fields where a source gives none."""
    pixels = [*BOX_COLUMNS, *LANDMARK_COLUMNS]
    shown = table[FACE_COLUMNS].copy()
    shown[pixels] = shown[pixels].round(0).astype("Int64")
    shown["confidence"] = shown["confidence"].round(4)
    return write_csv(shown, out, "face table")


# ----------------------------------------------------------------------------- statistics

def detected(table: pd.DataFrame) -> pd.DataFrame:
    """The rows with a face found in the image itself (not borrowed from the person)."""
    if "source" not in table:
        return table.dropna(subset=["x"])
    return table[table["source"].isin(DETECTED)]


def normalized(faces: pd.DataFrame, index: pd.DataFrame) -> pd.DataFrame:
    """Detected face boxes as fractions of each image's width/height (fallback and empty rows dropped)."""
    sizes = index.set_index("path")[["width", "height"]]
    t = detected(faces)[["path", *BOX_COLUMNS]].dropna().join(sizes, on="path")
    return pd.DataFrame({"x": t.x / t.width, "y": t.y / t.height, "w": t.w / t.width, "h": t.h / t.height})


def suggest_crop(norm: pd.DataFrame, k: float = 1.0) -> tuple[float, float, float, float]:
    """The mean face box grown by k standard deviations on every side, as (x, y, w, h) fractions.

    Each edge (left, top, right, bottom) moves out by k times its own spread over the
    dataset, so faces that sit off-centre in some photos still fall inside the crop.
    """
    if norm.empty:
        return 0.0, 0.0, 1.0, 1.0
    left, top = norm.x, norm.y
    right, bottom = norm.x + norm.w, norm.y + norm.h
    x0 = float(np.clip(left.mean() - k * left.std(ddof=0), 0, 1))
    y0 = float(np.clip(top.mean() - k * top.std(ddof=0), 0, 1))
    x1 = float(np.clip(right.mean() + k * right.std(ddof=0), 0, 1))
    y1 = float(np.clip(bottom.mean() + k * bottom.std(ddof=0), 0, 1))
    return round(x0, 4), round(y0, 4), round(x1 - x0, 4), round(y1 - y0, 4)


def coverage_heatmap(norm: pd.DataFrame, grid: tuple[int, int] = (48, 64)) -> np.ndarray:
    """Fraction of faces covering each cell of a (rows=grid[1], cols=grid[0]) frame grid."""
    cols, rows = grid
    heat = np.zeros((rows, cols), dtype=np.float64)
    if norm.empty:
        return heat
    x0 = np.clip((norm.x * cols).astype(int), 0, cols - 1).to_numpy()
    x1 = np.clip(((norm.x + norm.w) * cols).astype(int), 0, cols - 1).to_numpy()
    y0 = np.clip((norm.y * rows).astype(int), 0, rows - 1).to_numpy()
    y1 = np.clip(((norm.y + norm.h) * rows).astype(int), 0, rows - 1).to_numpy()
    # 2-D difference array: +1 at each box's top-left corner, cumulative sums fill the box.
    diff = np.zeros((rows + 1, cols + 1))
    np.add.at(diff, (y0, x0), 1)
    np.add.at(diff, (y0, x1 + 1), -1)
    np.add.at(diff, (y1 + 1, x0), -1)
    np.add.at(diff, (y1 + 1, x1 + 1), 1)
    heat = diff.cumsum(0).cumsum(1)[:rows, :cols]
    return heat / len(norm)


def detection_rates(faces: pd.DataFrame, index: pd.DataFrame) -> pd.DataFrame:
    """Share of images with a face of their own found: overall and per mask state, or per class
    folder for a folder-per-class dataset (a folder of non-faces gives the false faces).
    Boxes borrowed from the person do not count."""
    found = set(detected(faces)["path"])
    by = next((c for c in ("mask_name", "label_name") if c in index and (index[c] != "").any()), None)
    t = index[["path", *([by] if by else [])]].copy()
    t["found"] = t["path"].isin(found)
    overall = pd.DataFrame({"group": ["all"], "images": [len(t)], "rate": [t["found"].mean()]})
    if by is not None:
        per = t.groupby(by)["found"].agg(["size", "mean"]).reset_index()
        per.columns = ["group", "images", "rate"]
        overall = pd.concat([overall, per], ignore_index=True)
    return overall


def rates_by_detector(tables: dict[str, pd.DataFrame], index: pd.DataFrame) -> pd.DataFrame:
    """Long table detector, group, images, rate: :func:`detection_rates` of each detector's table."""
    parts = [detection_rates(t, index).assign(detector=name) for name, t in tables.items()]
    return pd.concat(parts, ignore_index=True)[["detector", "group", "images", "rate"]]


def source_shares(table: pd.DataFrame) -> pd.DataFrame:
    """source, images, share of every source in :data:`SOURCES` order (all listed, zeros kept)."""
    counts = table["source"].value_counts().reindex(list(SOURCES), fill_value=0)
    return pd.DataFrame({"source": counts.index, "images": counts.to_numpy(),
                         "share": counts.to_numpy() / max(len(table), 1)})


def box_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Intersection over union of (N, 4) x, y, w, h boxes row by row (0 where either is NaN)."""
    x0, y0 = np.maximum(a[:, 0], b[:, 0]), np.maximum(a[:, 1], b[:, 1])
    x1 = np.minimum(a[:, 0] + a[:, 2], b[:, 0] + b[:, 2])
    y1 = np.minimum(a[:, 1] + a[:, 3], b[:, 1] + b[:, 3])
    inter = np.clip(x1 - x0, 0, None) * np.clip(y1 - y0, 0, None)
    union = a[:, 2] * a[:, 3] + b[:, 2] * b[:, 3] - inter
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.nan_to_num(inter / union, nan=0.0)


AGREE_IOU = 0.5  # the same face: Haar (converted) and MTCNN boxes overlap 0.85 (median, 1,246 demo photos)


def disagreements(first: pd.DataFrame, second: pd.DataFrame, names: tuple[str, str]) -> pd.DataFrame:
    """Rows (path, kind) where two detectors' tables disagree: a face found by only one of them
    (kind "only <name>") or found by both in different places (kind "different place")."""
    a = first.set_index("path")
    b = second.set_index("path").reindex(a.index)
    found_a, found_b = a["source"].isin(DETECTED), b["source"].isin(DETECTED)
    iou = box_iou(a[BOX_COLUMNS].to_numpy(float), b[BOX_COLUMNS].to_numpy(float))
    kind = np.select([found_a & ~found_b, found_b & ~found_a, found_a & found_b & (iou < AGREE_IOU)],
                     [f"only {names[0]}", f"only {names[1]}", "different place"], "")
    out = pd.DataFrame({"path": a.index, "kind": kind})
    return out[out["kind"] != ""].reset_index(drop=True)


def landmark_points(row) -> list[tuple[float, float]]:
    """(x, y) pixels of a table row's five landmarks, left eye first; [] where the source gives none."""
    points = [(float(row[f"{name}_x"]), float(row[f"{name}_y"])) for name in LANDMARKS]
    return [] if any(np.isnan(v) for point in points for v in point) else points
