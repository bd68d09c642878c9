"""One pass over the images: every number the health check needs, from one decode per image.

Per image this records

* cleanvision's own measurements, by cleanvision's own code (``ImageProperty.calculate`` of
  its brightness, entropy, blurriness, size and aspect-ratio properties, and its ``get_hash``
  md5 and perceptual hash), so that its thresholds (core.health.quality) judge its numbers;
* what the checks added on top need: the sharpness and contrast of the photo (compared with
  the same person's other photos), and small colour-layout descriptors of the whole frame and
  of two centred crops (the candidates of the near-duplicate search, core.health.duplicates).

Speed (the full competition set is 18,900 images on 2 cores): cleanvision's own loop decodes
every image at full size twice (once for the properties, once for the hashes), and its pool
pickles the whole dataset object with every task of three images, which costs more than the
work. Here each image is decoded once, at a reduced size: JPEG's DCT scaling decodes a
quarter-size image (96x128 for a 384x512 photo) several times faster than a full decode, and
every measurement above is taken on it (cleanvision shrinks to 64 px for blurriness anyway;
sizes and aspect ratios come from the file's header). Workers are spawned per core
(core.cores), in chunks, like the face scan. The table is cached per set of files.
"""

from __future__ import annotations

import hashlib
import math
import os
import threading
import warnings
from collections.abc import Callable, Iterable
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
from PIL import Image

from core.cores import map_items
from core.fileio import atomic_path, locked, remove_unlocked_temporaries
from core.paths import cache_dir

WORK_SIDE = 128  # the working image's long side, in pixels
VIEWS = (1.0, 0.9, 0.8)  # the descriptor's frames: the whole image and two centred crops
GRID_L, GRID_AB = 8, 4  # descriptor cells: lightness layout 8x8, colour layout 4x4
DESCRIPTOR_SIZE = GRID_L * GRID_L + 2 * GRID_AB * GRID_AB
# Version of what measure_one returns: part of the cache's name, bump it when it changes.
MEASURE_VERSION = 1
PARALLEL_MIN = 96  # below this many images, worker start-up costs more than it saves
CHUNK = 48  # images per worker task

_local = threading.local()


def _cleanvision():
    """cleanvision's property objects and hash function, made once per thread (its import loads
    scipy and pandas, so it waits until the first image)."""
    tools = getattr(_local, "tools", None)
    if tools is None:
        from cleanvision.issue_managers.duplicate_issue_manager import get_hash
        from cleanvision.issue_managers.image_property import (
            AspectRatioProperty,
            BlurrinessProperty,
            BrightnessProperty,
            EntropyProperty,
            SizeProperty,
        )

        tools = _local.tools = {
            "header": (AspectRatioProperty(), SizeProperty()),
            "pixels": (BrightnessProperty("dark"), EntropyProperty(), BlurrinessProperty()),
            "hash": get_hash,
        }
    return tools


def _init_worker() -> None:
    cv2.setNumThreads(1)  # one process per core
    os.environ.setdefault("OMP_NUM_THREADS", "1")


def working_image(im: Image.Image, side: int = WORK_SIDE) -> Image.Image:
    """``im`` as RGB with its long side at ``side`` pixels (never enlarged): JPEGs decoded at a
    reduced scale (``draft``), the rest decoded and shrunk by area averaging."""
    w, h = im.size
    scale = side / max(w, h)
    if scale < 1 and im.format == "JPEG":
        im.draft("RGB", (max(1, math.ceil(w * scale)), max(1, math.ceil(h * scale))))
    rgb = im.convert("RGB")
    if max(rgb.size) > side:
        w2, h2 = rgb.size
        s = side / max(w2, h2)
        small = cv2.resize(np.asarray(rgb), (max(1, round(w2 * s)), max(1, round(h2 * s))),
                           interpolation=cv2.INTER_AREA)
        rgb = Image.fromarray(small)
    return rgb


def descriptors(rgb: np.ndarray) -> np.ndarray:
    """(len(VIEWS), DESCRIPTOR_SIZE) unit vectors: per view, the lightness layout (8x8, mean and
    contrast removed, so a brightness or contrast change does not move it) and the colour layout
    (4x4 of Lab's a and b)."""
    lab = cv2.cvtColor(rgb, cv2.COLOR_RGB2LAB).astype(np.float32)
    h, w = lab.shape[:2]
    out = np.zeros((len(VIEWS), DESCRIPTOR_SIZE), np.float32)
    for k, z in enumerate(VIEWS):
        dy, dx = int(h * (1 - z) / 2), int(w * (1 - z) / 2)
        view = lab[dy:h - dy, dx:w - dx]
        light = cv2.resize(view[..., 0], (GRID_L, GRID_L), interpolation=cv2.INTER_AREA)
        light = (light - light.mean()) / (light.std() + 2.0)
        colour = cv2.resize(view[..., 1:], (GRID_AB, GRID_AB), interpolation=cv2.INTER_AREA)
        colour = (colour - 128.0) / 20.0 * 0.7
        d = np.concatenate([light.ravel(), colour.ravel()])
        out[k] = d / (np.linalg.norm(d) + 1e-6)
    return out


def sharpness(gray: np.ndarray) -> tuple[float, float]:
    """(detail, fine detail ratio) of a grey working image: the mean absolute Laplacian, and how
    much of it survives a slight blur removed (a sharp photo loses much, a blurred one little)."""
    g = gray.astype(np.float32)
    lap = np.abs(cv2.Laplacian(g, cv2.CV_32F, ksize=3)).mean()
    soft = np.abs(cv2.Laplacian(cv2.GaussianBlur(g, (0, 0), 1.0), cv2.CV_32F, ksize=3)).mean()
    return float(lap), float(soft / (lap + 1e-6))


def measure_one(path: str) -> dict:
    """Every measurement of one image file; ``ok`` False (and nothing else) when it cannot be decoded."""
    tools = _cleanvision()
    row: dict = {"path": path, "ok": False}
    try:
        with Image.open(path) as im, warnings.catch_warnings():
            warnings.simplefilter("ignore")  # PIL's DecompressionBombWarning and friends: judged below
            width, height = im.size
            for prop in tools["header"]:
                row.update(prop.calculate(im))
            rgb = working_image(im)
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError):
        return row
    for prop in tools["pixels"]:
        row.update(prop.calculate(rgb))
    arr = np.asarray(rgb)
    gray = cv2.cvtColor(arr, cv2.COLOR_RGB2GRAY)
    detail, soft = sharpness(gray)
    row.update(ok=True, width=width, height=height, md5=tools["hash"](rgb, {"hash_type": "md5"}),
               phash=tools["hash"](rgb, {"hash_type": "phash", "hash_size": 8}), detail=detail, soft=soft,
               contrast=float(gray.std()), descriptor=descriptors(arr))
    return row


def measure(paths: Iterable[str], progress: Callable[[int, int], None] | None = None,
            workers: int | None = None) -> tuple[pd.DataFrame, np.ndarray]:
    """(table, descriptors) for ``paths``: one table row per path (in order) and an
    (N, len(VIEWS), DESCRIPTOR_SIZE) float16 array (zeros for a file that cannot be decoded)."""
    paths = [str(p) for p in paths]
    rows: list[dict] = map_items(measure_one, paths, workers=workers, parallel_min=PARALLEL_MIN, chunk=CHUNK,
                                 progress=progress, initializer=_init_worker)
    desc = np.zeros((len(rows), len(VIEWS), DESCRIPTOR_SIZE), np.float16)
    for i, row in enumerate(rows):
        d = row.pop("descriptor", None)
        if d is not None:
            desc[i] = d
    table = pd.DataFrame(rows)
    for column in ("md5", "phash"):
        if column not in table:
            table[column] = ""
    table[["md5", "phash"]] = table[["md5", "phash"]].fillna("")
    return table, desc


# ----------------------------------------------------------------------------- cache

def files_key(paths: Iterable[str]) -> str:
    """Changes when any file is added, removed or rewritten (paths, sizes, modification times)."""
    h = hashlib.sha1()
    for p in sorted(str(p) for p in paths):
        st = os.stat(p)
        h.update(f"{p}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
    return h.hexdigest()[:20]


def _cache_file(paths: list[str]) -> Path:
    return cache_dir("health") / f"{files_key(paths)}-m{MEASURE_VERSION}.npz"


def _write(path: Path, table: pd.DataFrame, desc: np.ndarray) -> None:
    arrays = {f"col_{c}": table[c].to_numpy() for c in table.columns}
    arrays = {k: (v.astype(str) if v.dtype == object else v) for k, v in arrays.items()}
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        np.savez(f, descriptors=desc, **arrays)


def _read(path: Path) -> tuple[pd.DataFrame, np.ndarray] | None:
    try:
        with np.load(path, allow_pickle=False) as z:
            table = pd.DataFrame({k[4:]: z[k] for k in z.files if k.startswith("col_")})
            desc = z["descriptors"]
    except FileNotFoundError:
        return None
    try:
        os.utime(path)  # the cache cap evicts the least recently used first
    except OSError:
        pass
    return table, desc


def cached_measure(paths: Iterable[str], progress: Callable[[int, int], None] | None = None,
                   workers: int | None = None) -> tuple[pd.DataFrame, np.ndarray]:
    """:func:`measure`, computed once per set of files and then read from the on-disk cache
    (concurrent callers compute it once: the others wait for the first and read its file)."""
    paths = [str(p) for p in paths]
    cache = _cache_file(paths)
    found = _read(cache)
    if found is None:
        with locked(cache):
            found = _read(cache)
            if found is None:
                remove_unlocked_temporaries(cache.parent, own=cache)
                found = measure(paths, progress, workers)
                _write(cache, *found)
                return found
    if progress:
        progress(len(paths), len(paths))
    return found
