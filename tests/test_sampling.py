"""Oversampling plans: random duplicates, SMOTE with recovered parents, small-class fallbacks."""

from __future__ import annotations

import numpy as np
import pytest
from imblearn.over_sampling import SMOTE
from sklearn.neighbors import NearestNeighbors

from core import sampling
from core.errors import RecipeError
from core.recipe import Recipe
from core.sampling import METHODS, materialize, oversample, smote_features, target_counts


def _data(counts=(40, 12, 7), dim=6, seed=0):
    rng = np.random.default_rng(seed)
    labels = np.concatenate([np.full(n, c) for c, n in enumerate(counts)])
    features = (rng.normal(size=(len(labels), dim)) + labels[:, None] * 3).astype(np.float32)
    return labels, features


def test_none_keeps_every_row_once():
    labels, _ = _data()
    plan = oversample(labels, "none")
    assert np.array_equal(plan.a, np.arange(len(labels))) and np.array_equal(plan.a, plan.b)
    assert not plan.gap.any()


def test_random_duplicates_rows_up_to_the_target():
    labels, _ = _data()
    plan = oversample(labels, "random", target=0.5, seed=1)
    assert plan.counts() == {0: 40, 1: 20, 2: 20}
    assert np.array_equal(plan.a, plan.b) and not plan.gap.any()
    assert np.array_equal(labels[plan.a], plan.labels)
    assert np.array_equal(plan.a[: len(labels)], np.arange(len(labels)))  # originals first


def test_target_counts_rounds_target_times_largest():
    assert target_counts(np.array([0] * 10 + [1] * 3 + [2] * 9), 0.75) == {0: 10, 1: 8, 2: 9}


def _assert_rebuilds_smote(plan, labels, features, k, seed, strategy="auto"):
    """The plan's rows are imblearn's SMOTE rows, rebuilt from parents of one class and k-NN."""
    X_ref, y_ref = SMOTE(sampling_strategy=strategy, k_neighbors=k, random_state=seed).fit_resample(features, labels)
    assert np.array_equal(plan.labels, y_ref)
    np.testing.assert_allclose(materialize(plan, features.astype(np.float64)), X_ref, rtol=0, atol=1e-5)
    n = len(labels)
    assert np.array_equal(plan.a[:n], np.arange(n)) and np.array_equal(plan.b[:n], np.arange(n))
    new = slice(n, None)
    assert np.all((plan.gap >= 0) & (plan.gap <= 1)) and not plan.gap[:n].any()
    assert np.array_equal(labels[plan.a[new]], y_ref[new]) and np.array_equal(labels[plan.b[new]], y_ref[new])
    for c in np.unique(y_ref[new]):
        own = np.flatnonzero(labels == c)
        knn = NearestNeighbors(n_neighbors=k + 1).fit(features[own]).kneighbors(features[own], return_distance=False)
        allowed = {(own[i], own[j]) for i, row in enumerate(knn) for j in row[1:]}
        rows = np.flatnonzero(plan.labels == c)[np.flatnonzero(plan.labels == c) >= n]
        assert {(int(plan.a[r]), int(plan.b[r])) for r in rows} <= allowed  # b is one of a's k neighbours


def test_smote_plan_rebuilds_imblearn_rows_from_parents():
    labels, features = _data()
    plan = oversample(labels, "smote", target=1.0, k_neighbors=5, features=features, seed=3)
    _assert_rebuilds_smote(plan, labels, features, 5, 3)
    assert plan.counts() == {0: 40, 1: 40, 2: 40}
    assert plan.synthetic.sum() == (40 - 12) + (40 - 7)


def test_smote_plan_on_image_features_with_a_partial_target():
    """Quantised pixels in many dimensions, overlapping classes, duplicate images, target 0.6."""
    rng = np.random.default_rng(7)
    labels = np.repeat([0, 1, 2, 3], [30, 9, 14, 5])
    base = rng.integers(0, 256, (4, 16, 12, 3))
    images = np.clip(base[labels] + rng.integers(-60, 61, (len(labels), 16, 12, 3)), 0, 255).astype(np.uint8)
    images[31] = images[30]  # two identical photos in a grown class: a zero-length segment is possible
    features = smote_features(images, (6, 8))
    plan = oversample(labels, "smote", target=0.6, k_neighbors=3, features=features, seed=11)
    _assert_rebuilds_smote(plan, labels, features, 3, 11, strategy=target_counts(labels, 0.6))
    assert plan.counts() == {0: 30, 1: 18, 2: 18, 3: 18} == target_counts(labels, 0.6)


def test_a_row_off_every_neighbour_segment_is_an_error_not_a_wrong_plan():
    rows = np.array([[0.0, 0.0], [1.0, 0.0], [0.0, 1.0]])
    a, b, gap = sampling._segments_of(np.array([[0.25, 0.0]]), rows, NearestNeighbors(n_neighbors=2))
    assert {a[0], b[0]} == {0, 1} and np.allclose(rows[a] + gap[:, None] * (rows[b] - rows[a]), [[0.25, 0.0]])
    with pytest.raises(RuntimeError, match="off every neighbour segment"):
        sampling._segments_of(np.array([[0.5, 0.5]]), rows, NearestNeighbors(n_neighbors=2))


def test_rows_a_coarse_projection_blurs_are_searched_again_in_full():
    rng = np.random.default_rng(2)
    rows = rng.normal(size=(25, 8))
    nn = NearestNeighbors(n_neighbors=4)
    nbrs = nn.fit(rows).kneighbors(rows, return_distance=False)[:, 1:]
    ia, ib, t = np.repeat(np.arange(25), 3), nbrs.ravel(), rng.random(75)
    points = rows[ia] + t[:, None] * (rows[ib] - rows[ia])
    a, b, gap = sampling._segments_of(points, rows, nn, dims=1)  # one dimension: nearly every row is ambiguous
    np.testing.assert_allclose(rows[a] + gap[:, None] * (rows[b] - rows[a]), points, atol=1e-9)


def test_same_seed_gives_the_same_plan():
    labels, features = _data()
    one, two, other = (oversample(labels, "smote", features=features, seed=s) for s in (5, 5, 6))
    for name in ("a", "b", "gap", "labels"):
        assert np.array_equal(getattr(one, name), getattr(two, name))
    assert not np.array_equal(one.gap, other.gap)


def test_small_class_uses_a_smaller_k_and_says_so():
    labels, features = _data(counts=(30, 3, 10))
    plan = oversample(labels, "smote", k_neighbors=5, features=features, seed=0)
    assert plan.counts() == {0: 30, 1: 30, 2: 30}
    assert any("k_neighbors=2" in n and "k_neighbors=5" in n for n in plan.notes)


def test_single_sample_class_falls_back_to_duplication():
    labels, features = _data(counts=(20, 1, 8))
    plan = oversample(labels, "smote", k_neighbors=3, features=features, seed=0)
    assert plan.counts() == {0: 20, 1: 20, 2: 20}
    single = np.flatnonzero(labels == 1)[0]
    rows = plan.labels == 1
    assert np.all(plan.a[rows] == single) and np.all(plan.b[rows] == single)
    assert any("single sample" in n for n in plan.notes)


def test_smote_needs_features_and_valid_arguments():
    labels, _ = _data()
    with pytest.raises(ValueError, match="feature"):
        oversample(labels, "smote")
    with pytest.raises(ValueError, match="'adasyn'.*none, random, smote, weighted"):
        oversample(labels, "adasyn")


def test_methods_are_the_recipes_choices(monkeypatch):
    with pytest.raises(RecipeError) as err:
        Recipe.from_dict({"sampling": {"method": "adasyn"}})
    assert str(err.value) == f"sampling.method 'adasyn': must be one of: {', '.join(METHODS)}"
    # A choice the recipe gains before core.sampling can plan it fails loudly instead of training unsampled.
    monkeypatch.setattr(sampling, "METHODS", METHODS + ("adasyn",))
    labels, _ = _data()
    with pytest.raises(ValueError, match="'adasyn'.*cannot plan"):
        oversample(labels, "adasyn")


def test_smote_features_are_small_and_scaled():
    images = np.random.default_rng(0).integers(0, 256, (5, 64, 48, 3), dtype=np.uint8)
    f = smote_features(images, (12, 16))
    assert f.shape == (5, 12 * 16 * 3) and f.dtype == np.float32
    assert 0 <= f.min() and f.max() <= 1
