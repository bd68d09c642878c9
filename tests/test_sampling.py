"""Oversampling plans: random duplicates, SMOTE with recovered parents, small-class fallbacks."""

from __future__ import annotations

import numpy as np
import pytest
from imblearn.over_sampling import SMOTE

from core.sampling import materialize, oversample, smote_features, target_counts


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


def test_smote_parents_reproduce_imblearn_rows_exactly():
    labels, features = _data()
    plan = oversample(labels, "smote", target=1.0, k_neighbors=5, features=features, seed=3)
    X_ref, y_ref = SMOTE(sampling_strategy="auto", k_neighbors=5, random_state=3).fit_resample(features, labels)
    ours = materialize(plan, features).astype(np.float32)
    assert ours.shape == X_ref.shape
    assert np.array_equal(ours, X_ref)
    assert np.array_equal(plan.labels, y_ref)
    synthetic = plan.synthetic
    assert synthetic.sum() == (40 - 12) + (40 - 7)
    assert np.all(labels[plan.a[synthetic]] == labels[plan.b[synthetic]])  # parents share the class
    assert np.all((plan.gap >= 0) & (plan.gap <= 1))


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
    with pytest.raises(ValueError, match="'adasyn'.*none, random, smote"):
        oversample(labels, "adasyn")


def test_smote_features_are_small_and_scaled():
    images = np.random.default_rng(0).integers(0, 256, (5, 64, 48, 3), dtype=np.uint8)
    f = smote_features(images, (12, 16))
    assert f.shape == (5, 12 * 16 * 3) and f.dtype == np.float32
    assert 0 <= f.min() and f.max() <= 1
