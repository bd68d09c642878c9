"""The preprocessed-image cache: every image cropped, resized and enhanced once per recipe.

``build_cache`` returns an (N, H, W, 3) uint8 array, memory-mapped from a ``.npy`` file under
``cache_dir("images")``. The file name is a hash of the image files (paths, sizes, mtimes),
the preprocessing code's version, the recipe fields the crop actually uses and, for face
crops, the face boxes, so a second run with the same data and recipe reads it instead of
decoding any JPEG.

Many sessions (threads of the app) and processes share the folder: a build holds the entry's
lock (:func:`core.fileio.locked`), so a second builder of the same cache waits and then maps
the finished file; files are written under a unique temporary name and renamed, so a crash
never leaves half a cache, and leftovers of killed builds are swept by the next build. The
folder is capped (``MASKLAB_CACHE_MAX``, 20 GB by default): a recipe whose cache cannot fit is
refused before any work, and least-recently-used caches are evicted to stay under the cap.

Training then draws batches from this array and augments them in torch (core.augment).
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import re
import shutil
import time
from multiprocessing import get_context
from pathlib import Path
from typing import Callable, NamedTuple

import cv2
import numpy as np
import pandas as pd

from core.cores import pool_size
from core.errors import UserError
from core.faces import cached_faces, dataset_key, with_person_fallback
from core.fileio import atomic_path, atomic_write, entry_key, locked, remove_file, remove_unlocked_temporaries
from core.paths import cache_dir
from core.preprocess import preprocess_path
from core.recipe import Recipe

PARALLEL_MIN = 256  # below this many images, worker start-up costs more than it saves
CHUNK = 64  # images per worker task
# Part of every cache key: bump it whenever core/preprocess.py changes the pixels it returns
# for the same recipe, so caches made by the old code are not reused.
PREPROCESS_VERSION = 1

Progress = Callable[[int, int], None]
Log = Callable[[str], None]


def face_boxes(paths: list[str], faces: pd.DataFrame | None) -> np.ndarray:
    """(N, 4) x, y, w, h per path from a face table; NaN where none was found or listed."""
    if faces is None:
        return np.full((len(paths), 4), np.nan)
    table = faces.drop_duplicates("path").set_index("path")[["x", "y", "w", "h"]]
    return table.reindex(paths).to_numpy(dtype=float)


def used_fields(recipe: Recipe, boxes: np.ndarray | None) -> dict:
    """The recipe fields core.preprocess reads for these images, so only they key the cache.

    "none" reads neither the fixed box nor the face margin; "fixed" reads the box only; "face"
    reads the margin, and the box only where some image has no face (its fallback).
    """
    crop = recipe.crop
    used = {"mode": crop.mode}
    if crop.mode == "face":
        used["face_margin"] = crop.face_margin
    if crop.mode == "fixed" or (crop.mode == "face" and (boxes is None or np.isnan(boxes).any())):
        used["box"] = list(crop.box)
    return {"version": PREPROCESS_VERSION, "input_size": list(recipe.input_size), "crop": used,
            "enhance": recipe.to_dict()["enhance"]}


def cache_key(paths: list[str], recipe: Recipe, boxes: np.ndarray | None) -> str:
    """Changes when a file, the code's version, a used recipe field or a used face box changes."""
    h = hashlib.sha1()
    h.update(dataset_key(paths).encode())
    h.update("\0".join(paths).encode())  # order matters: row i of the cache is paths[i]
    h.update(json.dumps(used_fields(recipe, boxes), sort_keys=True).encode())
    if boxes is not None:
        h.update(np.ascontiguousarray(np.round(boxes, 2)).tobytes())
    return h.hexdigest()[:24]


def cache_path(key: str) -> Path:
    return cache_dir("images") / f"{key}.npy"


# ----------------------------------------------------------------------------- workers

class _Job(NamedTuple):
    tmp: str  # the .npy being filled
    paths: list[str]
    boxes: np.ndarray | None
    recipe: Recipe


_worker_job: _Job | None = None  # set once in each pool process; never used by the parent


def _init_worker(job: _Job) -> None:
    global _worker_job
    cv2.setNumThreads(1)  # one process per core; OpenCV's own threads would oversubscribe
    _worker_job = job


def _fill_in_worker(span: tuple[int, int]) -> list[tuple[int, str]]:
    return _fill(_worker_job, span)


def _fill(job: _Job, span: tuple[int, int]) -> list[tuple[int, str]]:
    """Preprocess rows [start, end) into the open .npy; return (row, reason) for failures."""
    start, end = span
    out = np.load(job.tmp, mmap_mode="r+")
    failed = []
    for i in range(start, end):
        box = None if job.boxes is None else tuple(job.boxes[i])
        try:
            out[i] = preprocess_path(job.paths[i], job.recipe, box)
        except Exception as exc:  # noqa: BLE001 - a bad file must not stop the build
            out[i] = 0
            failed.append((i, f"{exc.__class__.__name__}: {exc}"))
    out.flush()
    return failed


def _run(spans: list[tuple[int, int]], job: _Job, workers: int, n: int,
         progress: Progress | None) -> list[tuple[int, str]]:
    failed, done = [], 0
    if workers <= 1:
        # The job goes with each call, not through a module global: two sessions of one
        # process may build two caches at the same time.
        results = map(functools.partial(_fill, job), spans)
        pool = None
    else:
        # spawn, not fork: forking a threaded process (the Streamlit server, a DataLoader's
        # parent) can copy a held lock into the child and hang it.
        pool = get_context("spawn").Pool(workers, _init_worker, (job,))
        results = pool.imap(_fill_in_worker, spans)
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


def _finished(final: Path, shape: tuple, paths: list[str], log: Log | None) -> np.ndarray | None:
    """The finished cache at ``final`` (touched: it was just used), or None if it is not there."""
    try:
        arr = np.load(final, mmap_mode="r")
        failed = json.loads(_failed_note(final).read_text()) if _failed_note(final).is_file() else []
    except (OSError, ValueError):  # not there, evicted a moment ago, or not a cache: build it
        return None
    if arr.shape != shape or arr.dtype != np.uint8:
        return None
    _touch(final)
    _report(failed, paths, log)
    return arr


def build_cache(df: pd.DataFrame, recipe: Recipe, faces: pd.DataFrame | None = None,
                progress: Progress | None = None, log: Log | None = None,
                workers: int | None = None) -> np.ndarray:
    """(N, H, W, 3) uint8 images of ``df["path"]`` preprocessed with ``recipe``, memory-mapped.

    Face crops use ``faces`` (path,x,y,w,h,source); when it is None they are looked up with
    :func:`core.faces.cached_faces` and the recipe's ``crop.detector``. Either way a photo
    without a face of its own takes its person's box (:func:`core.faces.with_person_fallback`).
    Images that cannot be decoded become zeros and are reported through ``log``. ``workers``
    defaults to every usable core for large sets.
    Raises UserError, before any work, when the cache cannot fit under the cap or on the disk.
    """
    paths = [str(p) for p in df["path"]]
    w, h = recipe.input_size
    need = check_fits(len(paths), recipe)
    boxes = None
    if recipe.crop.mode == "face":
        table = faces if faces is not None else cached_faces(paths, recipe.crop.detector, workers=workers)
        boxes = face_boxes(paths, with_person_fallback(table, df))
    final = cache_path(cache_key(paths, recipe, boxes))
    shape = (len(paths), h, w, 3)
    arr = _finished(final, shape, paths, log)
    if arr is None:
        with locked(final):  # a second builder of this cache waits here, then maps the first's file
            arr = _finished(final, shape, paths, log)
            if arr is None:
                arr = _build(final, _Job("", paths, boxes, recipe), shape, need, workers, progress, log)
                progress = None  # it has reported every chunk
        make_room(0, keep=final)
    if progress:
        progress(len(paths), len(paths))
    return arr


def _build(final: Path, job: _Job, shape: tuple, need: int, workers: int | None,
           progress: Progress | None, log: Log | None) -> np.ndarray:
    """Build the cache ``final`` (the caller holds its lock) after sweeping and making room."""
    remove_unlocked_temporaries(final.parent, own=final)  # leftovers of killed builds
    _remove_legacy_temporaries(final.parent)
    make_room(need)
    _check_disk(need, final.parent)
    failed = _write(final, job, shape, workers, progress)
    _report(failed, job.paths, log)
    return np.load(final, mmap_mode="r")


def _write(final: Path, job: _Job, shape: tuple, workers: int | None, progress: Progress | None) -> list:
    """Fill a temporary .npy chunk by chunk, then rename it (and its failure note) into place."""
    n = shape[0]
    spans = [(i, min(i + CHUNK, n)) for i in range(0, n, CHUNK)]
    workers = pool_size(n, workers, PARALLEL_MIN, CHUNK)
    with atomic_path(final) as tmp:
        np.lib.format.open_memmap(tmp, mode="w+", dtype=np.uint8, shape=shape).flush()
        failed = _run(spans, job._replace(tmp=str(tmp)), workers, n, progress)
        if failed:
            atomic_write(_failed_note(final), json.dumps(failed))
        else:
            _failed_note(final).unlink(missing_ok=True)
    return failed


def _remove_legacy_temporaries(folder: Path) -> int:
    """Remove temporaries named the old way (``<key>.<pid>.tmp.npy``) left for an hour; bytes freed.

    Their writers took no lock, so only age tells that they were killed.
    """
    old = [p for p in folder.glob("*.tmp.npy") if time.time() - _mtime(p) > STALE_S]
    return sum(remove_file(p) for p in old)


# ----------------------------------------------------------------------------- size

STALE_S = 3600  # an old-style temporary untouched this long belongs to a killed build
MAX_ENV = "MASKLAB_CACHE_MAX"
DEFAULT_MAX = 20 * 10**9
FOLDERS = ("images", "faces", "health")  # the subfolders of MASKLAB_CACHE that hold caches
DATA_SUFFIXES = (".npy", ".csv", ".npz")  # an entry's main file; its other files share its key


def parse_size(text: str) -> int | None:
    """Bytes from "20000000", "500M", "20G", "1.5GB" or "2GiB" (K, M, G, T; i = powers of 1024)."""
    m = re.fullmatch(r"\s*(\d+(?:\.\d*)?)\s*([KMGT]?)(I?B)?\s*", text.upper())
    if not m:
        return None
    number, prefix, suffix = m.groups()
    base = 1024 if suffix == "IB" else 1000
    size = int(float(number) * base ** " KMGT".index(prefix or " "))
    return size if size > 0 else None


def cache_max_bytes() -> int:
    """The cap on the cache folder, from ``MASKLAB_CACHE_MAX`` (default 20 GB)."""
    raw = os.environ.get(MAX_ENV, "").strip()
    if not raw:
        return DEFAULT_MAX
    size = parse_size(raw)
    if size is None:
        raise UserError(f"{MAX_ENV}={raw!r} is not a size; give a positive number of bytes or one with "
                        f"K, M, G or T, e.g. {MAX_ENV}=20G")
    return size


def human(size: float) -> str:
    for unit, scale in (("GB", 1e9), ("MB", 1e6), ("KB", 1e3)):
        if size >= scale:
            return f"{size / scale:.1f} {unit}"
    return f"{int(size)} bytes"


def check_fits(n: int, recipe: Recipe) -> int:
    """Bytes the cache of ``n`` images needs; UserError when that is more than the cap allows."""
    w, h = recipe.input_size
    need = n * h * w * 3 + 128  # the pixels and the .npy header
    cap = cache_max_bytes()
    if need > cap:
        raise UserError(f"images: the cache for {n} images at {w}x{h} needs {human(need)}, more than "
                        f"{MAX_ENV} ({human(cap)}); choose a smaller input size or raise {MAX_ENV}")
    return need


def _check_disk(need: int, folder: Path) -> None:
    free = shutil.disk_usage(folder).free
    if need > free:
        raise UserError(f"images: the cache needs {human(need)} but the disk holding {folder} has only "
                        f"{human(free)} free; free some space, choose a smaller input size or point "
                        "MASKLAB_CACHE at a larger disk")


def _touch(path: Path) -> None:
    """Mark a cache as just used: eviction removes the least recently used (oldest mtime) first."""
    try:
        os.utime(path)
    except OSError:  # a read-only shared cache: it still works, it just ages
        pass


def _files() -> list[Path]:
    """Every file in the cache folders (caches, failure notes, temporaries being written, locks)."""
    return [p for sub in FOLDERS for p in cache_dir(sub).iterdir() if p.is_file()]


def _entries() -> list[Path]:
    """Each cache's main file (.npy image cache, .csv face table or health findings, .npz health
    measurements), least recently used first."""
    main = [p for p in _files() if not p.name.startswith(".") and p.name.endswith(DATA_SUFFIXES)]
    return sorted(main, key=_mtime)


def _mtime(path: Path) -> float:
    try:
        return path.stat().st_mtime
    except OSError:
        return 0.0


def cache_usage() -> tuple[int, int]:
    """(number of caches, bytes of every file) in the image, face-table and health folders."""
    return len({(p.parent, entry_key(p.name)) for p in _entries()}), sum(_size(p) for p in _files())


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0


def _remove_entry(main: Path) -> int:
    """Remove a cache and its side files unless someone holds its lock; the bytes freed."""
    key = entry_key(main.name)
    with locked(main, blocking=False) as free:
        if not free:
            return 0  # being built or read under the lock right now
        return sum(remove_file(p) for p in main.parent.iterdir() if entry_key(p.name) == key)


def make_room(need: int, keep: Path | None = None) -> int:
    """Evict least-recently-used caches until ``need`` more bytes fit under the cap; bytes freed.

    ``keep`` (the cache just written) and caches whose lock is held (being built) are never
    evicted. A process that still has an evicted file mapped keeps reading it (POSIX unlink).
    """
    cap, freed = cache_max_bytes(), 0
    used = cache_usage()[1]
    for main in _entries():
        if used + need <= cap:
            break
        if keep is not None and main == keep:
            continue
        gone = _remove_entry(main)
        used, freed = used - gone, freed + gone
    return freed


def clear_cache() -> int:
    """Remove every image cache, face table and health result not in use, and leftovers of killed
    builds; bytes freed."""
    freed = sum(remove_unlocked_temporaries(cache_dir(sub)) for sub in FOLDERS)
    freed += _remove_legacy_temporaries(cache_dir("images"))
    for main in _entries():
        freed += _remove_entry(main)
    for lock in (p for p in _files() if p.name.endswith(".lock")):  # entries whose build failed
        freed += _remove_entry(lock)
    return freed
