"""Face boxes: OpenCV's Haar frontal-face cascade, run once per dataset and cached on disk.

The table has one row per image with ``path,x,y,w,h`` in original-image pixels; the box
fields are empty (NaN) where no face was found. Masks hide much of a face from the cascade,
so detection rates are reported per mask state.
"""

from __future__ import annotations

import hashlib
import os
import threading
from multiprocessing import get_context
from pathlib import Path
from typing import Callable, Iterable

import cv2
import numpy as np
import pandas as pd

from core.cores import pool_size
from core.fileio import atomic_path, locked, remove_unlocked_temporaries
from core.paths import cache_dir

FACE_COLUMNS = ["path", "x", "y", "w", "h"]
CASCADE = "haarcascade_frontalface_default.xml"
# Two passes over reduced decodes (JPEG's DCT scaling makes them several times cheaper than
# a full decode): a quarter-size image first, then, only where that found nothing, the
# half-size image, where a face has four times the pixels. Boxes are scaled back to original
# pixels. Each setting below was chosen by timing it against the one before on the demo data
# (bench/bench_faces.py; numbers in the README): together they cut the full-scale scan by a
# seventh and find as many faces.
PASSES = ((cv2.IMREAD_REDUCED_GRAYSCALE_4, 4), (cv2.IMREAD_REDUCED_GRAYSCALE_2, 2))
WINDOW = 24  # the frontal-face cascade's training window, the smallest box it can report
# The quarter-size pass starts at 27 px, skipping the pyramid's two finest (and costliest)
# levels, 24 and 26.4 px; faces that small are left to the half-size pass.
QUARTER_MIN_FACE = 27
# On the half-size pass, faces narrower than a fifth of the short side are not searched for:
# they are not the subject of the photo, and skipping them skips the costliest levels.
MIN_FACE_FRACTION = 5
# Overlapping detections a box needs to count. The coarse pass accepts 4, so it keeps more of
# the half-hidden masked faces and fewer images pay for the finer pass.
NEIGHBORS = {4: 4, 2: 5}

PARALLEL_MIN = 64  # below this many images, worker start-up costs more than it saves
CHUNK = 32  # images per worker task

# One cascade per thread: app sessions are threads of one process, and a classifier is not
# documented as safe to share between threads that detect at the same time.
_local = threading.local()


def _cascade() -> cv2.CascadeClassifier:
    detector = cv2.CascadeClassifier(cv2.data.haarcascades + CASCADE)
    if detector.empty():
        raise RuntimeError(f"cannot load {CASCADE} from {cv2.data.haarcascades}")
    return detector


def _init_worker() -> None:
    cv2.setNumThreads(1)  # one process per core; OpenCV's own threads would oversubscribe
    _local.detector = _cascade()


def detect_one(path: str) -> tuple[float, float, float, float]:
    """The largest face in one image as (x, y, w, h) pixels, or NaNs where none was found."""
    detector = getattr(_local, "detector", None)
    if detector is None:
        detector = _local.detector = _cascade()
    for flag, scale in PASSES:
        gray = cv2.imread(path, flag)
        if gray is None:
            return (np.nan,) * 4
        smallest = max(WINDOW, min(gray.shape) // MIN_FACE_FRACTION) if scale == 2 else QUARTER_MIN_FACE
        boxes = detector.detectMultiScale(gray, scaleFactor=1.1, minNeighbors=NEIGHBORS[scale],
                                           minSize=(smallest, smallest))
        if len(boxes):
            x, y, w, h = max(boxes, key=lambda b: b[2] * b[3])
            return tuple(float(v * scale) for v in (x, y, w, h))
    return (np.nan,) * 4


def detect_faces(paths: Iterable[str], progress: Callable[[int, int], None] | None = None,
                 workers: int | None = None) -> pd.DataFrame:
    """Run the cascade over ``paths`` in ``workers`` processes (default: every usable core)."""
    paths = [str(p) for p in paths]
    workers = pool_size(len(paths), workers, PARALLEL_MIN, CHUNK)
    results = []
    if workers == 1:
        for i, p in enumerate(paths):
            results.append(detect_one(p))
            if progress and (i % 16 == 0 or i == len(paths) - 1):
                progress(i + 1, len(paths))
    else:
        # spawn, not fork: forking a threaded process (Streamlit, AppTest) can copy a held
        # lock into the child and deadlock it.
        with get_context("spawn").Pool(workers, _init_worker) as pool:
            for i, box in enumerate(pool.imap(detect_one, paths, chunksize=CHUNK)):
                results.append(box)
                if progress and (i % 32 == 0 or i == len(paths) - 1):
                    progress(i + 1, len(paths))
    table = pd.DataFrame(results, columns=["x", "y", "w", "h"], dtype=float)
    table.insert(0, "path", paths)
    return table


def dataset_key(paths: list[str]) -> str:
    """Changes when any file is added, removed or rewritten."""
    h = hashlib.sha1()
    for p in sorted(paths):
        st = os.stat(p)
        h.update(f"{p}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
    return h.hexdigest()[:20]


# Part of the cache file's name: bump it when detect_one changes, so that tables computed
# the old way are not reused. 2: the quarter-size first pass. 3: its 27 px start, 4 neighbours
# and the half-size pass's fifth-of-the-short-side floor.
DETECTOR_VERSION = 3


def _cache_file(paths: list[str]) -> Path:
    return cache_dir("faces") / f"{dataset_key(paths)}-v{DETECTOR_VERSION}.csv"


def is_cached(paths: Iterable[str]) -> bool:
    """True when the face table for exactly these files is already on disk."""
    return _cache_file([str(p) for p in paths]).is_file()


def cached_faces(paths: Iterable[str], progress: Callable[[int, int], None] | None = None,
                 workers: int | None = None) -> pd.DataFrame:
    """Face table for these images, computed once and then read from the on-disk cache.

    Sessions and processes asking for the same table at once compute it once: the others
    wait for the first and read its file.
    """
    paths = [str(p) for p in paths]
    cache = _cache_file(paths)
    table = _read_table(cache)
    if table is None:
        with locked(cache):
            table = _read_table(cache)
            if table is None:
                remove_unlocked_temporaries(cache.parent, own=cache)  # leftovers of killed scans
                table = detect_faces(paths, progress, workers)
                with atomic_path(cache) as tmp:
                    table.to_csv(tmp, index=False)
                return table
    if progress:
        progress(len(table), len(table))
    return table


def _read_table(cache: Path) -> pd.DataFrame | None:
    """The cached table (its file touched, so the cache cap evicts it last), or None."""
    try:
        table = pd.read_csv(cache, dtype={"path": str})
    except FileNotFoundError:  # not computed yet, or just evicted
        return None
    try:
        os.utime(cache)
    except OSError:  # read-only or already evicted: the table in hand is still good
        pass
    return table


def write_faces_csv(table: pd.DataFrame, out: str | Path) -> Path:
    """The CLI's faces.csv: path,x,y,w,h with whole pixels and empty fields where no face."""
    out = Path(out)
    with atomic_path(out) as tmp:
        table.round(0).astype({c: "Int64" for c in ["x", "y", "w", "h"]}).to_csv(tmp, index=False)
    return out


# ----------------------------------------------------------------------------- statistics

def normalized(faces: pd.DataFrame, index: pd.DataFrame) -> pd.DataFrame:
    """Face boxes as fractions of each image's width/height (rows without a face dropped)."""
    sizes = index.set_index("path")[["width", "height"]]
    t = faces.dropna().join(sizes, on="path")
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
    """Share of images with a face found: overall and per mask state (where the layout has one)."""
    t = index[["path", "mask_name"]].merge(faces[["path", "x"]], on="path", how="left")
    t["found"] = t["x"].notna()
    overall = pd.DataFrame({"group": ["all"], "images": [len(t)], "rate": [t["found"].mean()]})
    if (t["mask_name"] != "").any():
        per = t.groupby("mask_name")["found"].agg(["size", "mean"]).reset_index()
        per.columns = ["group", "images", "rate"]
        overall = pd.concat([overall, per], ignore_index=True)
    return overall
