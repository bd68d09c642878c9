"""Oversampling plans for the training split: random duplication and SMOTE.

A plan never holds pixels. It lists, for every training sample, two parent rows ``a`` and
``b`` and a ``gap`` in [0, 1]; the sample is ``x[a] + gap * (x[b] - x[a])``:

* an original row ``i`` is ``a = b = i, gap = 0``;
* a random duplicate of row ``i`` is the same, listed again;
* a SMOTE row lies on the segment between a row and one of its ``k`` nearest neighbours of
  the same class.

Training interpolates SMOTE rows at the model's input size from the preprocessed-image cache;
only the neighbour search runs on small images (``smote_features``), never on full ones.
The explorer's oversampling page calls the same functions.

SMOTE runs through imbalanced-learn's public API only (``SMOTE.fit_resample`` with a
``NearestNeighbors`` passed as ``k_neighbors``); each synthetic row's parents and step are then
recovered from geometry (``_segments_of``), not by hooking imblearn's private methods.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field

import cv2
import numpy as np
from imblearn.over_sampling import SMOTE, RandomOverSampler
from sklearn.base import clone
from sklearn.metrics.pairwise import euclidean_distances
from sklearn.neighbors import NearestNeighbors
from sklearn.random_projection import GaussianRandomProjection

from core.rulebook import SAMPLING

METHODS = SAMPLING.values  # the recipe's sampling.method choices, from the rule book


@dataclass
class SamplePlan:
    """Parents and interpolation weight of every sample; see the module docstring."""

    a: np.ndarray  # int64, first parent (row index into the labels given)
    b: np.ndarray  # int64, second parent (== a for originals and duplicates)
    gap: np.ndarray  # float64 in [0, 1]; 0 for originals and duplicates
    labels: np.ndarray  # class of each sample
    notes: list[str] = field(default_factory=list)  # what was adjusted and why, for the user
    # weighted: each sample's chance to be drawn per epoch (sums to 1); None: each once per epoch
    weights: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.a)

    @property
    def synthetic(self) -> np.ndarray:
        """Mask of SMOTE rows (two distinct parents)."""
        return self.a != self.b

    def counts(self) -> dict[int, int]:
        """Samples per class in one epoch (expected, rounded, for a weighted plan)."""
        values, counts = np.unique(self.labels, return_counts=True)
        if self.weights is not None:
            counts = [round(len(self) * float(self.weights[self.labels == v].sum())) for v in values]
        return {int(v): int(c) for v, c in zip(values, counts)}


def identity_plan(labels: np.ndarray) -> SamplePlan:
    """Every row once, as it is."""
    idx = np.arange(len(labels), dtype=np.int64)
    return SamplePlan(idx, idx.copy(), np.zeros(len(labels)), np.asarray(labels).copy())


def target_counts(labels: np.ndarray, target: float) -> dict[int, int]:
    """imblearn sampling_strategy: each class raised to at least round(target * largest count)."""
    values, counts = np.unique(labels, return_counts=True)
    goal = int(round(target * counts.max()))
    return {int(v): max(int(c), goal) for v, c in zip(values, counts)}


def smote_features(images: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """(N, H, W, 3) uint8 images -> (N, w*h*3) float32 in [0, 1], downsized to ``size`` (w, h)."""
    w, h = size
    out = np.empty((len(images), h * w * 3), dtype=np.float32)
    for i, img in enumerate(images):
        small = cv2.resize(np.ascontiguousarray(img), (w, h), interpolation=cv2.INTER_AREA)
        out[i] = small.reshape(-1).astype(np.float32) / 255.0
    return out


def _check_args(labels: np.ndarray, method: str, target: float, k_neighbors: int) -> None:
    if method not in METHODS:
        raise ValueError(f"oversampling method {method!r} is not allowed; allowed: {', '.join(METHODS)}")
    if not 0.0 < target <= 1.0:
        raise ValueError(f"oversampling target must be in (0, 1], got {target}")
    if k_neighbors < 1:
        raise ValueError(f"k_neighbors must be >= 1, got {k_neighbors}")
    if labels.ndim != 1:
        raise ValueError(f"labels must be one-dimensional, got shape {labels.shape}")


def _random_plan(labels: np.ndarray, strategy: dict[int, int], seed: int) -> SamplePlan:
    """RandomOverSampler on row indices: duplicates are a = b = the copied row."""
    ros = RandomOverSampler(sampling_strategy=strategy, random_state=seed)
    ros.fit_resample(np.arange(len(labels)).reshape(-1, 1), labels)
    idx = ros.sample_indices_.astype(np.int64)
    return SamplePlan(idx, idx.copy(), np.zeros(len(idx)), labels[idx])


def _needs_more(labels: np.ndarray, strategy: dict[int, int]) -> dict[int, int]:
    counts = {int(v): int(c) for v, c in zip(*np.unique(labels, return_counts=True))}
    return {c: strategy[c] - counts[c] for c in strategy if strategy[c] > counts[c]}


def _smote_plan(labels: np.ndarray, features: np.ndarray, strategy: dict[int, int],
                k_neighbors: int, seed: int) -> SamplePlan:
    """SMOTE on ``features``; classes with one sample are duplicated instead (see notes)."""
    notes: list[str] = []
    grow = _needs_more(labels, strategy)
    counts = {c: int(np.sum(labels == c)) for c in grow}
    singles = sorted(c for c, n in counts.items() if n < 2)
    smotable = {c: n for c, n in counts.items() if n >= 2}
    if singles:
        notes.append(f"class(es) {', '.join(map(str, singles))} have a single sample, which SMOTE cannot "
                     "interpolate; they were oversampled by random duplication instead")
    k = k_neighbors
    if smotable and min(smotable.values()) <= k:
        k = min(smotable.values()) - 1
        notes.append(f"k_neighbors={k_neighbors} needs at least {k_neighbors + 1} samples in every class "
                     f"SMOTE grows, but the smallest has {k + 1}; used k_neighbors={k}")
    extra: list[SamplePlan] = []
    if smotable:
        extra.append(_smote_rows(labels, features, {c: strategy[c] for c in smotable}, k, seed))
    if singles:
        dup = _random_plan(labels, {c: strategy[c] for c in singles}, seed)
        keep = np.arange(len(labels), len(dup))  # only the added duplicates
        extra.append(SamplePlan(dup.a[keep], dup.b[keep], dup.gap[keep], dup.labels[keep]))
    plan = _concat([identity_plan(labels), *extra])
    plan.notes = notes
    return plan


def _smote_rows(labels: np.ndarray, features: np.ndarray, strategy: dict[int, int], k: int,
                seed: int) -> SamplePlan:
    """imblearn SMOTE's synthetic rows, in its output order, each traced to its parents and step.

    ``fit_resample`` returns the input rows unchanged, then the new ones. SMOTE makes a new row of
    class c as ``x_a + step * (x_b - x_a)``: ``a`` a row of c, ``b`` one of a's ``k`` nearest
    neighbours within c, ``step`` in [0, 1) (imblearn's user guide). Giving SMOTE the neighbour
    search as an object (its documented ``k_neighbors`` form) lets us refit the very same search
    per class and find, for each new row, the segment it lies on.
    """
    nn = NearestNeighbors(n_neighbors=k + 1)  # + 1: every row is its own nearest neighbour
    sm = SMOTE(sampling_strategy=strategy, k_neighbors=nn, random_state=seed)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        x_res, y_res = sm.fit_resample(features, labels)
    n = len(labels)
    if not (np.array_equal(x_res[:n], features) and np.array_equal(y_res[:n], labels)):
        raise RuntimeError("imblearn's SMOTE no longer returns the input rows first; "
                           "core.sampling._smote_rows must be updated for this imbalanced-learn version")
    new_x, new_y = x_res[n:], np.asarray(y_res[n:], dtype=labels.dtype)
    a, b, gap = np.empty(len(new_y), np.int64), np.empty(len(new_y), np.int64), np.empty(len(new_y))
    for c in np.unique(new_y):
        own, made = np.flatnonzero(labels == c), np.flatnonzero(new_y == c)
        ia, ib, gap[made] = _segments_of(new_x[made], features[own], clone(nn))
        a[made], b[made] = own[ia], own[ib]
    return SamplePlan(a, b, gap, new_y)


def _segments_of(points: np.ndarray, rows: np.ndarray, nn: NearestNeighbors,
                 dims: int = 64) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """For each point, the (a, b, step) with point == rows[a] + step * (rows[b] - rows[a]).

    ``b`` ranges over a's neighbours as SMOTE sees them (``nn`` refit on ``rows``, self dropped).
    The search runs in a ``dims``-dimensional random projection: a linear map keeps every point
    on its segment, so the search stays exact for generic data at a fraction of the cost on
    2,304 pixel features. Steps and the check that each rebuilt row equals its point use the
    full features; rows the projection blurred are searched again in full.
    """
    nbrs = nn.fit(rows).kneighbors(rows, return_distance=False)[:, 1:]
    x, p = rows.astype(np.float64), points.astype(np.float64)
    tol = 1e-5 * max(1.0, float(np.abs(x).max()))  # SMOTE rows are rounded to the features' float32
    if x.shape[1] > dims:
        proj = GaussianRandomProjection(n_components=dims, random_state=0).fit(x)
        a, b = _nearest_segments(proj.transform(p), proj.transform(x), nbrs)
    else:
        a, b = _nearest_segments(p, x, nbrs)
    gap, off = _steps_and_offsets(p, x, a, b)
    redo = np.flatnonzero(off > tol)
    if len(redo) and x.shape[1] > dims:
        a[redo], b[redo] = _nearest_segments(p[redo], x, nbrs)
        gap[redo], off[redo] = _steps_and_offsets(p[redo], x, a[redo], b[redo])
    if len(p) and off.max() > tol:
        raise RuntimeError(f"a SMOTE row lies {off.max():.3g} off every neighbour segment (tolerance {tol:.3g}); "
                           "imblearn's SMOTE no longer interpolates as core.sampling._segments_of expects")
    return a, b, gap


def _nearest_segments(p: np.ndarray, x: np.ndarray, nbrs: np.ndarray,
                      chunk: int = 256) -> tuple[np.ndarray, np.ndarray]:
    """For each point, the pair (a, nbrs[a, j]) whose segment it lies on, or comes closest to.

    A point lies on segment [x_a, x_b] exactly when |p - x_a| + |p - x_b| = |x_b - x_a|: the pair
    with the smallest excess wins. One distance matrix per chunk of points scores every pair.
    Where p sits (almost) on x_a several b fit, and any of them rebuilds p.
    """
    length = np.linalg.norm(x[nbrs] - x[:, None, :], axis=2)  # (rows, k)
    a, b = np.empty(len(p), np.int64), np.empty(len(p), np.int64)
    for lo in range(0, len(p), chunk):
        d = euclidean_distances(p[lo:lo + chunk], x)
        excess = (d[:, :, None] + d[:, nbrs] - length).reshape(len(d), -1)
        best = np.argmin(excess, axis=1)
        a[lo:lo + chunk], b[lo:lo + chunk] = best // nbrs.shape[1], nbrs.ravel()[best]
    return a, b


def _steps_and_offsets(p: np.ndarray, x: np.ndarray, a: np.ndarray,
                       b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Least-squares step of each point along x[a] -> x[b] (in [0, 1]) and how far off it the point stays."""
    seg, rel = x[b] - x[a], p - x[a]
    sq = np.einsum("ij,ij->i", seg, seg)
    gap = np.clip(np.einsum("ij,ij->i", rel, seg) / np.where(sq > 0, sq, 1.0), 0.0, 1.0)
    return gap, np.abs(gap[:, None] * seg - rel).max(axis=1, initial=0.0)


def _concat(plans: list[SamplePlan]) -> SamplePlan:
    return SamplePlan(np.concatenate([p.a for p in plans]), np.concatenate([p.b for p in plans]),
                      np.concatenate([p.gap for p in plans]), np.concatenate([p.labels for p in plans]))


def oversample(labels: np.ndarray, method: str = "none", target: float = 1.0, k_neighbors: int = 5,
               features: np.ndarray | None = None, seed: int = 0) -> SamplePlan:
    """The sampling plan for one training split (never the validation split).

    ``method``: one of ``METHODS`` (the recipe's choices). Every class is raised to at least
    ``round(target * largest class count)``. SMOTE needs ``features`` (one row per label,
    e.g. from :func:`smote_features`) to find neighbours.
    """
    labels = np.asarray(labels)
    _check_args(labels, method, target, k_neighbors)
    if method == "none" or len(labels) == 0:
        return identity_plan(labels)
    strategy = target_counts(labels, target)
    if not _needs_more(labels, strategy):
        plan = identity_plan(labels)
        plan.notes.append(f"every class already holds at least {target:g} x the largest; nothing added")
        return plan
    if method == "random":
        return _random_plan(labels, strategy, seed)
    if method == "weighted":
        return weighted_plan(labels, strategy)
    if method == "smote":
        if features is None or len(features) != len(labels):
            raise ValueError("SMOTE needs one feature row per label (see smote_features)")
        return _smote_plan(labels, np.asarray(features, dtype=np.float32), strategy, k_neighbors, seed)
    # A choice added to the recipe before a plan exists for it must fail loudly, not train unsampled.
    raise ValueError(f"oversampling method {method!r} is a recipe choice that core.sampling cannot plan yet; "
                     f"use one of none, random, smote, weighted")


def weighted_plan(labels: np.ndarray, strategy: dict[int, int]) -> SamplePlan:
    """Every row once, with draw weights that give class c an expected share of each epoch
    proportional to ``strategy[c]`` (what random oversampling would list), so an epoch keeps
    its length and no row is duplicated in the plan."""
    plan = identity_plan(labels)
    values, counts = np.unique(labels, return_counts=True)
    per_class = {int(v): strategy[int(v)] / int(c) for v, c in zip(values, counts)}
    w = np.array([per_class[int(v)] for v in labels], dtype=np.float64)
    plan.weights = w / w.sum()
    plan.notes.append("weighted: each epoch draws " + f"{len(labels)} samples with replacement, rare classes more often")
    return plan


def materialize(plan: SamplePlan, x: np.ndarray) -> np.ndarray:
    """Samples of a plan over rows ``x`` (float): x[a] + gap * (x[b] - x[a])."""
    gap = plan.gap.reshape((-1,) + (1,) * (x.ndim - 1))
    return x[plan.a] + gap * (x[plan.b] - x[plan.a])
