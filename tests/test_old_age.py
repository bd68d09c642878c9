"""--old-age N: persons aged N or older are trained as 60+; validation keeps the true labels."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from core.dataset import scan
from core.labels import decode
from core.training import TrainConfig, train
from core.training import trainer as trainer_module
from core.training.data import old_age_labels
from tests.helpers import make_folders, make_train, tiny_recipe

SETTINGS = dict(model="smallcnn", epochs=1, batch_size=16, lr=0.01, seed=0, workers=1)


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return make_train(tmp_path_factory.mktemp("old") / "train", people=12)  # ages 22, 45 and 61


def test_old_age_moves_only_the_age_group(data):
    ds = scan(data)
    df, true = ds.df, ds.df["label"].to_numpy()
    assert np.array_equal(old_age_labels(df, ds.class_names, 60), true)  # the default changes nothing
    moved = old_age_labels(df, ds.class_names, 45)
    for before, after, age in zip(true, moved, df["age"]):
        (m0, g0, a0), (m1, g1, a1) = decode(int(before)), decode(int(after))
        assert (m0, g0) == (m1, g1)  # mask and gender never change
        assert a1 == (2 if age >= 45 else a0)
    assert (moved != true).sum() == 7 * (df.loc[df["age"] == 45, "person"].nunique())
    later = old_age_labels(df, ds.class_names, 62)  # a boundary above 60: the 61-year-olds are 30-59
    assert set(later[df["age"] == 61] % 3) == {1}


def test_other_datasets_keep_their_labels(tmp_path):
    ds = scan(make_folders(tmp_path / "pets"))
    notes = []
    assert np.array_equal(old_age_labels(ds.df, ds.class_names, 40, notes.append), ds.df["label"].to_numpy())
    assert "competition's 18 classes only" in notes[0]


def test_training_uses_relabelled_rows_and_validation_the_true_ones(data, tmp_path, monkeypatch):
    seen = []

    class Recording(trainer_module.BatchSource):
        def __post_init__(self):
            seen.append((np.asarray(self.a).copy(), np.asarray(self.labels).copy()))
            super().__post_init__()

    monkeypatch.setattr(trainer_module, "BatchSource", Recording)
    run = train(TrainConfig(data=str(data), recipe=str(tiny_recipe(tmp_path / "r.json")), out=str(tmp_path / "runs"),
                            old_age=45, **SETTINGS))
    df = scan(data).df
    true = df["label"].to_numpy()
    relabelled = old_age_labels(df, list(scan(data).class_names), 45)
    rows, labels = seen[0]  # rows index the training index (same row order as scan: labelled rows only)
    assert np.array_equal(labels, relabelled[rows])
    assert (labels != true[rows]).any()  # some 45-year-olds were in training, trained as 60+
    val = pd.read_csv(run / "val_predictions.csv")
    by_path = dict(zip(df["path"].astype(str), true))
    assert [by_path[p] for p in val["path"]] == list(val["true"])  # scored on the true labels
    assert json.loads((run / "config.json").read_text())["config"]["old_age"] == 45
    assert "--old-age 45" in json.loads((run / "config.json").read_text())["command"]
    assert "trained in another age group" in (run / "train.log").read_text()
