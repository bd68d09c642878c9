"""Duplicates: the same photo twice, whatever was done to the copy.

cleanvision's own duplicate check groups images whose md5 of the pixels are equal (exact) or
whose 64-bit perceptual hashes are equal (near). Tried on the demo, equal hashes both miss and
over-match: a copy cropped by 3% per side moves the hash by 5 of 64 bits (12 at worst), while two
different demo persons, drawn in the same frame, can differ by 2 bits. So the exact groups keep
cleanvision's rule (its md5, confirmed on the full-size pixels), and near duplicates are found in
two steps added on top:

1. candidates: a colour-layout descriptor of each image and of two centred crops
   (core.health.measure.descriptors) makes a cropped, resized, re-encoded or brightness-shifted
   copy land next to its original; pairs of images whose descriptors are close (a matrix
   product, in row blocks) are candidates, besides cleanvision's equal-hash pairs;
2. verification: each candidate pair is aligned (OpenCV's ECC, an affine map, coarse to fine)
   and its fine detail compared (the correlation of band-passed images). A copy shares every
   edge and texture with its original; two photos that only look alike (the same person's mask
   photos, two persons framed alike) do not.
"""

from __future__ import annotations

import functools
import itertools
from collections.abc import Callable

import cv2
import numpy as np
import pandas as pd
from PIL import Image

from core.cores import map_items
from core.health.measure import _init_worker, working_image

# Descriptor similarity (cosine) a pair needs to be verified: first of the whole frames (a
# loose bound, cheap: one matrix product), then the best of whole-frame-to-crop comparisons.
FIRST_SIM = 0.88
CROSS_SIM = 0.965  # two persons, or a training and an eval photo
WITHIN_SIM = 0.99  # one person's own photos: only a copy, not a second photo of the sitting
TOP_K = 6  # most candidates kept per image (the closest), so that look-alike crowds stay cheap
COMBOS = ((0, 0), (0, 1), (0, 2), (1, 0), (2, 0))  # (view of one image, view of the other)
BLOCK = 1024  # rows per block of the similarity matrix
PHASH_GROUP = 32  # most members of one equal-hash group paired (a crowd of blank frames stays cheap)

# Verification: the aligned pair's band-pass correlation a copy reaches.
NEAR_MATCH = 0.94  # two persons, or train and eval
COPY_MATCH = 0.99  # one person's own photos (their mask photos are near duplicates by nature)
VERIFY_SIZE = (192, 256)  # (width, height) both images are compared at
PARALLEL_MIN = 200  # pairs below which verification stays in this process
CHUNK = 64


# ----------------------------------------------------------------------------- exact

def full_md5(path: str) -> str:
    """cleanvision's md5 hash of the full-size decoded pixels ('' when it cannot be decoded)."""
    from cleanvision.issue_managers.duplicate_issue_manager import get_hash

    try:
        with Image.open(path) as im:
            return get_hash(im.convert("RGB"), {"hash_type": "md5"})
    except (OSError, SyntaxError, ValueError):
        return ""


def exact_sets(md5: pd.Series, paths: list[str]) -> list[list[int]]:
    """Index sets of images with equal pixels: equal on the working image, then confirmed on the
    full-size pixels (few images: only those whose working images already match)."""
    sets = []
    for idx in md5[md5 != ""].groupby(md5[md5 != ""]).indices.values():
        if len(idx) < 2:
            continue
        full = pd.Series([full_md5(paths[i]) for i in idx])
        for sub in full[full != ""].groupby(full[full != ""]).indices.values():
            if len(sub) > 1:
                sets.append(sorted(int(idx[k]) for k in sub))
    return sorted(sets)


# ----------------------------------------------------------------------------- candidates

def candidate_pairs(desc: np.ndarray, person: np.ndarray, is_eval: np.ndarray,
                    phash: pd.Series | None = None) -> pd.DataFrame:
    """Pairs (i < j) worth verifying, with their descriptor similarity ``sim``.

    ``person``: a person key per image ('' where unknown, e.g. eval photos), ``is_eval``: True
    for eval photos (eval pairs among themselves are not compared: only train duplicates and
    train/eval overlaps matter)."""
    n = len(desc)
    v = desc.astype(np.float32)
    whole = np.ascontiguousarray(v[:, 0])
    found_i, found_j = [], []
    for start in range(0, n, BLOCK):
        stop = min(n, start + BLOCK)
        sim = whole[start:stop] @ whole[start:].T  # only j >= start
        rows, cols = np.nonzero(sim >= FIRST_SIM)
        cols = cols + start
        rows = rows + start
        keep = cols > rows
        found_i.append(rows[keep])
        found_j.append(cols[keep])
    i = np.concatenate(found_i) if found_i else np.zeros(0, int)
    j = np.concatenate(found_j) if found_j else np.zeros(0, int)
    if phash is not None:  # cleanvision's near duplicates: equal perceptual hashes
        extra = [(a, b) for idx in phash[phash != ""].groupby(phash[phash != ""]).indices.values()
                 for a, b in itertools.combinations(sorted(idx)[:PHASH_GROUP], 2)]
        if extra:
            i, j = np.append(i, [a for a, _ in extra]), np.append(j, [b for _, b in extra])
    pairs = pd.DataFrame({"i": i, "j": j}).drop_duplicates()
    pairs = pairs[~(is_eval[pairs.i.to_numpy()] & is_eval[pairs.j.to_numpy()])]
    pairs["sim"] = _best_view_sim(v, pairs.i.to_numpy(), pairs.j.to_numpy())
    same = (person[pairs.i.to_numpy()] == person[pairs.j.to_numpy()]) & (person[pairs.i.to_numpy()] != "")
    pairs = pairs[pairs.sim >= np.where(same, WITHIN_SIM, CROSS_SIM)]
    return _top_k(pairs).reset_index(drop=True)


def _best_view_sim(v: np.ndarray, i: np.ndarray, j: np.ndarray, batch: int = 100_000) -> np.ndarray:
    out = np.empty(len(i), np.float32)
    for s in range(0, len(i), batch):
        a, b = v[i[s:s + batch]], v[j[s:s + batch]]
        best = np.full(len(a), -1.0, np.float32)
        for x, y in COMBOS:
            best = np.maximum(best, np.einsum("nd,nd->n", a[:, x], b[:, y]))
            best = np.maximum(best, np.einsum("nd,nd->n", a[:, y], b[:, x]))
        out[s:s + batch] = best
    return out


def _top_k(pairs: pd.DataFrame) -> pd.DataFrame:
    """Each image keeps its TOP_K most similar partners (a pair stays if either end keeps it)."""
    if pairs.empty:
        return pairs
    both = pd.concat([pairs.assign(a=pairs.i), pairs.assign(a=pairs.j)])
    rank = both.groupby("a")["sim"].rank(ascending=False, method="first")
    kept = both[rank <= TOP_K]
    return pairs.loc[sorted(set(kept.index))]


# ----------------------------------------------------------------------------- verification

@functools.lru_cache(maxsize=256)
def _gray(path: str) -> np.ndarray | None:
    """The image as float32 grey at VERIFY_SIZE (aspect not kept: the alignment undoes it)."""
    try:
        with Image.open(path) as im:
            rgb = working_image(im, max(VERIFY_SIZE))
    except (OSError, SyntaxError, ValueError):
        return None
    gray = cv2.cvtColor(np.asarray(rgb), cv2.COLOR_RGB2GRAY)
    return cv2.resize(gray, VERIFY_SIZE, interpolation=cv2.INTER_AREA).astype(np.float32)


def _ecc(a: np.ndarray, b: np.ndarray, warp: np.ndarray, iterations: int) -> np.ndarray | None:
    criteria = (cv2.TERM_CRITERIA_EPS | cv2.TERM_CRITERIA_COUNT, iterations, 1e-4)
    try:
        _, warp = cv2.findTransformECC(a, b, warp, cv2.MOTION_AFFINE, criteria, None, 3)
    except cv2.error:  # did not converge: the images are not one another's copies
        return None
    return warp


def _band(x: np.ndarray) -> np.ndarray:
    return cv2.GaussianBlur(x, (0, 0), 0.7) - cv2.GaussianBlur(x, (0, 0), 2.0)


def aligned_match(a: np.ndarray, b: np.ndarray) -> float:
    """How well grey images ``a`` and ``b`` (VERIFY_SIZE) match once ``b`` is aligned onto ``a``:
    the correlation of their fine detail (band-pass), 1 for the same photo; 0 when no alignment
    is found."""
    w, h = VERIFY_SIZE
    warp = np.eye(2, 3, dtype=np.float32)
    for scale, iterations in ((4, 60), (2, 30)):
        size = (w // scale, h // scale)
        sa = cv2.resize(a, size, interpolation=cv2.INTER_AREA)
        sb = cv2.resize(b, size, interpolation=cv2.INTER_AREA)
        found = _ecc(sa, sb, warp, iterations)
        if found is None:
            return 0.0
        warp = found.copy()
        warp[:, 2] *= 2  # on to the next (twice finer) scale
    warped = cv2.warpAffine(b, warp, (w, h), flags=cv2.INTER_LINEAR + cv2.WARP_INVERSE_MAP,
                            borderMode=cv2.BORDER_REPLICATE)
    m = w // 12
    x, y = _band(a)[m:-m, m:-m].ravel(), _band(warped)[m:-m, m:-m].ravel()
    x, y = x - x.mean(), y - y.mean()
    denom = float(np.linalg.norm(x) * np.linalg.norm(y))
    return max(0.0, float(x @ y) / denom) if denom > 0 else 0.0


def _verify_one(job: tuple[str, str]) -> float:
    a, b = _gray(job[0]), _gray(job[1])
    if a is None or b is None:
        return 0.0
    return aligned_match(a, b)


def verify(paths: list[str], pairs: pd.DataFrame, progress: Callable[[int, int], None] | None = None,
           workers: int | None = None) -> np.ndarray:
    """The aligned match of each pair (in order)."""
    order = pairs.sort_values(["i", "j"]).index  # the same first image in a row: its decode is reused
    jobs = [(paths[pairs.at[k, "i"]], paths[pairs.at[k, "j"]]) for k in order]
    scores = map_items(_verify_one, jobs, workers=workers, parallel_min=PARALLEL_MIN, chunk=CHUNK, progress=progress,
                       initializer=_init_worker)
    out = pd.Series(scores, index=order, dtype=float)
    return out.reindex(pairs.index).to_numpy()
