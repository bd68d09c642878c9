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
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field

import cv2
import numpy as np
from imblearn.over_sampling import SMOTE, RandomOverSampler

METHODS = ("none", "random", "smote")


@dataclass
class SamplePlan:
    """Parents and interpolation weight of every sample; see the module docstring."""

    a: np.ndarray  # int64, first parent (row index into the labels given)
    b: np.ndarray  # int64, second parent (== a for originals and duplicates)
    gap: np.ndarray  # float64 in [0, 1]; 0 for originals and duplicates
    labels: np.ndarray  # class of each sample
    notes: list[str] = field(default_factory=list)  # what was adjusted and why, for the user

    def __len__(self) -> int:
        return len(self.a)

    @property
    def synthetic(self) -> np.ndarray:
        """Mask of SMOTE rows (two distinct parents)."""
        return self.a != self.b

    def counts(self) -> dict[int, int]:
        values, counts = np.unique(self.labels, return_counts=True)
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


class RecordingSMOTE(SMOTE):
    """imblearn's SMOTE that also records each synthetic row's two parents and its step.

    ``parents_`` is a list of (class, rows, neighbours, steps) in generation order; ``rows``
    and ``neighbours`` index the class's own rows, i.e. ``np.flatnonzero(y == class)``.
    """

    def _generate_samples(self, X, nn_data, nn_num, rows, cols, steps, y_type=None, y=None):
        self.parents_.append((y_type, np.asarray(rows).copy(), np.asarray(nn_num[rows, cols]).copy(),
                              np.asarray(steps).reshape(-1).copy()))
        return super()._generate_samples(X, nn_data, nn_num, rows, cols, steps, y_type, y)

    def _fit_resample(self, X, y):
        self.parents_ = []
        return super()._fit_resample(X, y)


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
    base = identity_plan(labels)
    extra: list[SamplePlan] = []
    if smotable:
        sm = RecordingSMOTE(sampling_strategy={c: strategy[c] for c in smotable}, k_neighbors=k,
                            random_state=seed)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            sm.fit_resample(features, labels)
        for y_type, rows, nbrs, steps in sm.parents_:
            own = np.flatnonzero(labels == y_type)
            a, b = own[rows].astype(np.int64), own[nbrs].astype(np.int64)
            extra.append(SamplePlan(a, b, steps.astype(np.float64), np.full(len(a), y_type, labels.dtype)))
    if singles:
        dup = _random_plan(labels, {c: strategy[c] for c in singles}, seed)
        keep = np.arange(len(labels), len(dup))  # only the added duplicates
        extra.append(SamplePlan(dup.a[keep], dup.b[keep], dup.gap[keep], dup.labels[keep]))
    plan = _concat([base, *extra])
    plan.notes = notes
    return plan


def _concat(plans: list[SamplePlan]) -> SamplePlan:
    return SamplePlan(np.concatenate([p.a for p in plans]), np.concatenate([p.b for p in plans]),
                      np.concatenate([p.gap for p in plans]), np.concatenate([p.labels for p in plans]))


def oversample(labels: np.ndarray, method: str = "none", target: float = 1.0, k_neighbors: int = 5,
               features: np.ndarray | None = None, seed: int = 0) -> SamplePlan:
    """The sampling plan for one training split (never the validation split).

    ``method``: none | random | smote. Every class is raised to at least
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
    if features is None or len(features) != len(labels):
        raise ValueError("SMOTE needs one feature row per label (see smote_features)")
    return _smote_plan(labels, np.asarray(features, dtype=np.float32), strategy, k_neighbors, seed)


def materialize(plan: SamplePlan, x: np.ndarray) -> np.ndarray:
    """Samples of a plan over rows ``x`` (float): x[a] + gap * (x[b] - x[a])."""
    gap = plan.gap.reshape((-1,) + (1,) * (x.ndim - 1))
    return x[plan.a] + gap * (x[plan.b] - x[plan.a])
