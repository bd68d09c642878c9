"""Batch mixing (mixup, cutmix, vertical cutmix) and class-weighted epochs."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn as nn

from core.mixing import MixedLoss, MixedTarget, cut_box, half_box, mix_batch, soft_targets
from core.recipe import Augment, Recipe
from core.sampling import oversample
from core.errors import UserError
from core.training import BatchSource, TrainConfig, epoch_batches, train
from core.training.config import validate_config
from tests.helpers import make_train, tiny_recipe


def _batch(n=8, h=6, w=10):
    g = torch.Generator().manual_seed(0)
    return torch.rand(n, 3, h, w, generator=g), torch.arange(n) % 18


@pytest.mark.parametrize("kind", ["mixup", "cutmix", "cutmix-vertical"])
def test_mixed_targets_sum_to_one_and_weigh_the_two_labels_by_lam(kind):
    x, y = _batch()
    mixed, t = mix_batch(x, y, kind, 1.0, 1.0, torch.Generator().manual_seed(3))
    assert isinstance(t, MixedTarget) and mixed.shape == x.shape
    soft = soft_targets(t, 18)
    assert torch.allclose(soft.sum(1), torch.ones(len(y)))
    assert 0 < t.lam < 1 and torch.equal(t.a, y) and sorted(t.b.tolist()) == sorted(y.tolist())
    rows = torch.arange(len(y))
    assert torch.allclose(soft[rows, t.a] + soft[rows, t.b] * (t.a != t.b), torch.ones(len(y)))


def test_mixup_is_the_convex_combination_of_the_pair():
    x, y = _batch()
    mixed, t = mix_batch(x, y, "mixup", 1.0, 0.4, torch.Generator().manual_seed(1))
    partner = x[[int((y == b).nonzero()[0]) for b in t.b]]
    assert torch.allclose(mixed, t.lam * x + (1 - t.lam) * partner, atol=1e-6)


def test_the_vertical_cut_lies_on_one_half_and_lam_is_the_share_kept():
    for seed in range(6):
        top, bottom, left, right = half_box(6, 10, torch.Generator().manual_seed(seed))
        assert (top, bottom) == (0, 6) and (left, right) in ((0, 5), (5, 10))
    x, y = _batch()
    mixed, t = mix_batch(x, y, "cutmix-vertical", 1.0, 1.0, torch.Generator().manual_seed(2))
    changed = (mixed != x).any(dim=(0, 1, 2))  # columns that came from the partner
    assert changed.sum() == 5 and (changed[:5].all() or changed[5:].all()) and t.lam == 0.5


def test_cutmix_box_stays_inside_and_lam_counts_its_pixels():
    for seed in range(10):
        top, bottom, left, right = cut_box(32, 24, 0.7, torch.Generator().manual_seed(seed))
        assert 0 <= top <= bottom <= 32 and 0 <= left <= right <= 24
    x, y = _batch(h=32, w=24)
    mixed, t = mix_batch(x, y, "cutmix", 1.0, 1.0, torch.Generator().manual_seed(4))
    kept = (mixed == x).all(dim=1)[0].float().mean()  # image 0's own pixels (its partner differs)
    assert abs(float(kept) - t.lam) < 1e-6


def test_mixed_loss_is_the_lam_weighted_sum_and_plain_labels_pass_through():
    logits = torch.randn(4, 18, generator=torch.Generator().manual_seed(0))
    ce = nn.CrossEntropyLoss()
    t = MixedTarget(torch.tensor([0, 1, 2, 3]), torch.tensor([5, 6, 7, 8]), 0.3)
    loss = MixedLoss(ce)
    assert torch.allclose(loss(logits, t), 0.3 * ce(logits, t.a) + 0.7 * ce(logits, t.b))
    soft = -(soft_targets(t, 18) * logits.log_softmax(1)).sum(1).mean()  # cross-entropy on soft targets
    assert torch.allclose(loss(logits, t), soft, atol=1e-6)
    assert torch.equal(loss(logits, t.a), ce(logits, t.a))


def test_mix_none_or_probability_zero_leaves_the_batch_and_the_generator_alone():
    x, y = _batch()
    g = torch.Generator().manual_seed(5)
    before = g.get_state()
    assert mix_batch(x, y, "none", 1.0, 1.0, g)[1] is y and torch.equal(g.get_state(), before)
    assert mix_batch(x, y, "mixup", 0.0, 1.0, g)[1] is y


def test_mix_flags_are_validated():
    with pytest.raises(UserError, match="--mix 'blend': must be one of: none, mixup, cutmix, cutmix-vertical"):
        validate_config(TrainConfig(data="d", mix="blend"))
    with pytest.raises(UserError, match=r"--mix-prob 1.5: must be a number from 0 to 1"):
        validate_config(TrainConfig(data="d", mix_prob=1.5))


# ----------------------------------------------------------------------------- weighted sampling

def test_weighted_plan_keeps_every_row_once_and_draws_classes_towards_the_target():
    labels = np.array([0] * 90 + [1] * 10)
    plan = oversample(labels, "weighted", target=1.0)
    assert len(plan) == 100 and (plan.a == np.arange(100)).all() and not plan.synthetic.any()
    assert np.isclose(plan.weights.sum(), 1.0) and plan.counts() == {0: 50, 1: 50}
    order = np.concatenate(epoch_batches(100, 10, 0, 0, 0, weights=plan.weights))
    assert len(order) == 100 and 30 <= (labels[order] == 1).sum() <= 70  # ~50 expected, not 10
    again = np.concatenate(epoch_batches(100, 10, 0, 0, 0, weights=plan.weights))
    assert (order == again).all()  # seeded: the same draw for the same (seed, fold, epoch)


def test_a_weighted_and_mixed_run_trains_end_to_end(tmp_path):
    data = make_train(tmp_path / "d", people=8)
    weighted = tmp_path / "w.json"
    Recipe.load(tiny_recipe(tmp_path / "r.json")).replace(sampling={"method": "weighted", "target": 1.0}).save(weighted)
    run = train(TrainConfig(data=str(data), recipe=str(weighted), out=str(tmp_path / "runs"), model="smallcnn",
                            epochs=1, batch_size=8, workers=1, mix="cutmix-vertical", mix_prob=1.0))
    assert (run / "best.pt").is_file()
    assert "weighted: each epoch draws" in (run / "train.log").read_text()


def test_batch_source_mixes_after_augmenting_with_the_batch_generator():
    images = np.random.default_rng(0).integers(0, 256, (20, 8, 8, 3), dtype=np.uint8)
    rows = np.arange(20)
    plain = BatchSource(images, rows, rows, np.zeros(20), rows % 3, Augment(), seed=1)
    mixed = BatchSource(images, rows, rows, np.zeros(20), rows % 3, Augment(), seed=1, mix="mixup", mix_prob=1.0)
    order = epoch_batches(20, 10, 1, 0, 0)
    (x, y), (mx, my) = next(plain.batches(order, 0, 0)), next(mixed.batches(order, 0, 0))
    assert isinstance(my, MixedTarget) and torch.equal(my.a, y)
    assert not torch.allclose(mx, x)
    for i in range(10):  # each image is lam of itself plus (1 - lam) of one image of the same batch
        assert any(torch.allclose(mx[i], my.lam * x[i] + (1 - my.lam) * x[j], atol=1e-5) for j in range(10))
