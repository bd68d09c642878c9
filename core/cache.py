"""The preprocessed-image cache: every image cropped, resized and enhanced once per recipe.

``build_cache`` returns an (N, H, W, 3) uint8 array, memory-mapped from a ``.npy`` file under
``cache_dir("images")``. The file name is a hash of the image files (paths, sizes, mtimes),
the recipe's deterministic part (``Recipe.preprocess_key``) and, for face crops, the face
boxes, so a second run with the same data and recipe reads it instead of decoding any JPEG.
Files are written to a temporary name and renamed, so a crash never leaves half a cache.

Training then draws batches from this array and augments them in torch (core.augment).
"""

from __future__ import annotations

import hashlib
import json
import os
from multiprocessing import get_context
from pathlib import Path
from typing import Callable

import cv2
import numpy as np
import pandas as pd

from core.faces import cached_faces, dataset_key
from core.paths import cache_dir
from core.preprocess import preprocess_path
from core.recipe import Recipe

PARALLEL_MIN = 256  # below this many images, worker start-up costs more than it saves
CHUNK = 64  # images per worker task

Progress = Callable[[int, int], None]
Log = Callable[[str], None]


def face_boxes(paths: list[str], faces: pd.DataFrame | None) -> np.ndarray:
    """(N, 4) x, y, w, h per path from a face table; NaN where none was found or listed."""
    if faces is None:
        return np.full((len(paths), 4), np.nan)
    table = faces.drop_duplicates("path").set_index("path")[["x", "y", "w", "h"]]
    return table.reindex(paths).to_numpy(dtype=float)


def cache_key(paths: list[str], recipe: Recipe, boxes: np.ndarray | None) -> str:
    """Changes when a file, the recipe's crop/size/enhancement or a used face box changes."""
    h = hashlib.sha1()
    h.update(dataset_key(paths).encode())
    h.update("\0".join(paths).encode())  # order matters: row i of the cache is paths[i]
    h.update(recipe.preprocess_key().encode())
    if boxes is not None:
        h.update(np.ascontiguousarray(np.round(boxes, 2)).tobytes())
    return h.hexdigest()[:24]


def cache_path(key: str) -> Path:
    return cache_dir("images") / f"{key}.npy"


# ----------------------------------------------------------------------------- workers

_job: dict = {}


def _init_job(tmp: str, paths: list[str], boxes: np.ndarray | None, recipe: Recipe) -> None:
    _job.update(tmp=tmp, paths=paths, boxes=boxes, recipe=recipe)


def _init_worker(*args) -> None:
    cv2.setNumThreads(1)  # one process per core; OpenCV's own threads would oversubscribe
    _init_job(*args)


def _fill(span: tuple[int, int]) -> list[tuple[int, str]]:
    """Preprocess rows [start, end) into the open .npy; return (row, reason) for failures."""
    start, end = span
    out = np.load(_job["tmp"], mmap_mode="r+")
    failed = []
    for i in range(start, end):
        box = None if _job["boxes"] is None else tuple(_job["boxes"][i])
        try:
            out[i] = preprocess_path(_job["paths"][i], _job["recipe"], box)
        except Exception as exc:  # noqa: BLE001 - a bad file must not stop the build
            out[i] = 0
            failed.append((i, f"{exc.__class__.__name__}: {exc}"))
    out.flush()
    return failed


def _run(spans: list[tuple[int, int]], init_args: tuple, workers: int, n: int,
         progress: Progress | None) -> list[tuple[int, str]]:
    failed, done = [], 0
    if workers <= 1:
        _init_job(*init_args)
        results = map(_fill, spans)
        pool = None
    else:
        # spawn, not fork: forking a threaded process (the Streamlit server, a DataLoader's
        # parent) can copy a held lock into the child and hang it.
        pool = get_context("spawn").Pool(workers, _init_worker, init_args)
        results = pool.imap(_fill, spans)
    try:
        for span, bad in zip(spans, results):
            failed += bad
            done += span[1] - span[0]
            if progress:
                progress(done, n)
    except BaseException:
        if pool is not None:
            pool.terminate()  # stopped or failed: don't wait for the queued chunks
        raise
    finally:
        if pool is not None:
            pool.close()
            pool.join()
    return failed


# ----------------------------------------------------------------------------- entry point

def _failed_note(path: Path) -> Path:
    return path.with_suffix(".failed.json")


def _report(failed: list, paths: list[str], log: Log | None) -> None:
    if log and failed:
        log(f"{len(failed)} image(s) could not be decoded and were filled with zeros; "
            f"first: {paths[failed[0][0]]} ({failed[0][1]})")


def build_cache(df: pd.DataFrame, recipe: Recipe, faces: pd.DataFrame | None = None,
                progress: Progress | None = None, log: Log | None = None,
                workers: int | None = None) -> np.ndarray:
    """(N, H, W, 3) uint8 images of ``df["path"]`` preprocessed with ``recipe``, memory-mapped.

    Face crops use ``faces`` (path,x,y,w,h); when it is None they are looked up with
    :func:`core.faces.cached_faces`. Images that cannot be decoded become zeros and are
    reported through ``log``. ``workers`` defaults to 2 processes for large sets.
    """
    paths = [str(p) for p in df["path"]]
    w, h = recipe.input_size
    boxes = None
    if recipe.crop.mode == "face":
        boxes = face_boxes(paths, faces if faces is not None else cached_faces(paths, workers=workers))
    final = cache_path(cache_key(paths, recipe, boxes))
    if final.is_file():
        arr = np.load(final, mmap_mode="r")
        if arr.shape == (len(paths), h, w, 3) and arr.dtype == np.uint8:
            note = _failed_note(final)
            _report(json.loads(note.read_text()) if note.is_file() else [], paths, log)
            if progress:
                progress(len(paths), len(paths))
            return arr
    tmp = final.with_name(f"{final.stem}.{os.getpid()}.tmp.npy")
    np.lib.format.open_memmap(tmp, mode="w+", dtype=np.uint8, shape=(len(paths), h, w, 3)).flush()
    spans = [(i, min(i + CHUNK, len(paths))) for i in range(0, len(paths), CHUNK)]
    workers = workers or (min(2, os.cpu_count() or 1) if len(paths) >= PARALLEL_MIN else 1)
    try:
        failed = _run(spans, (str(tmp), paths, boxes, recipe), workers, len(paths), progress)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    if failed:
        note = _failed_note(final)
        note.with_suffix(".tmp").write_text(json.dumps(failed))
        os.replace(note.with_suffix(".tmp"), note)
    os.replace(tmp, final)
    _report(failed, paths, log)
    return np.load(final, mmap_mode="r")
