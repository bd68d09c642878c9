"""predict: info.csv's rows and order, unreadable images, folders, fold averaging; evaluate."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from sklearn.metrics import f1_score

from core.errors import CheckpointError, UserError
from core.models import new_model
from core.predict import evaluate, mean_probabilities, predict
from core.training import TrainConfig, train
from tests.helpers import make_eval, make_folders, make_train, tiny_recipe

SETTINGS = dict(model="smallcnn", epochs=1, batch_size=16, lr=0.01, seed=0, workers=1)


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> Path:
    base = tmp_path_factory.mktemp("predict")
    data = make_train(base / "train", people=12)
    recipe = tiny_recipe(base / "recipe.json")
    return train(TrainConfig(data=str(data), recipe=str(recipe), out=str(base / "runs"), **SETTINGS))


def test_submission_keeps_info_csv_rows_and_order(run, tmp_path):
    answers = make_eval(tmp_path / "eval", people=3, corrupt=2)
    messages = []
    out = predict(run, tmp_path / "eval", tmp_path / "sub.csv", log=messages.append)
    sub = pd.read_csv(out, dtype={"ImageID": str})
    info = pd.read_csv(tmp_path / "eval" / "info.csv", dtype={"ImageID": str})
    assert list(sub.columns) == ["ImageID", "ans"]
    assert list(sub["ImageID"]) == list(info["ImageID"])  # every row, same order
    assert len(sub) == len(answers) == 21
    assert sub["ans"].between(0, 17).all()
    assert any("2 of 21" in m and "most frequent training class" in m for m in messages)


def test_unreadable_rows_get_the_most_frequent_training_class(run, tmp_path):
    make_eval(tmp_path / "eval", people=1, corrupt=7)  # every image broken
    with pytest.raises(UserError, match="no usable images"):
        predict(run, tmp_path / "eval", tmp_path / "sub.csv")
    make_eval(tmp_path / "eval2", people=2, corrupt=1)
    sub = pd.read_csv(predict(run, tmp_path / "eval2", tmp_path / "sub2.csv"))
    # the class the run's training data holds most of (5 masked photos per person make it a "Wear" class)
    counts = json.loads((run / "config.json").read_text())["dataset"]["class_counts"]
    names = json.loads((run / "config.json").read_text())["class_names"]
    broken = pd.read_csv(tmp_path / "eval2" / "info.csv")["ImageID"][0]
    assert sub.set_index("ImageID").loc[broken, "ans"] == names.index(max(counts, key=counts.get))


def test_evaluate_scores_like_sklearn(run, tmp_path):
    answers = make_eval(tmp_path / "eval", people=3)
    out = predict(run, tmp_path / "eval", tmp_path / "sub.csv")
    result = evaluate(out, tmp_path / "eval" / "gt.csv")
    pred = pd.read_csv(out)["ans"].to_numpy()
    assert result["macro_f1"] == pytest.approx(f1_score(answers, pred, average="macro", zero_division=0))
    assert result["accuracy"] == pytest.approx(np.mean(np.array(answers) == pred))
    assert list(result["per_class"].columns[:3]) == ["class", "name", "precision"]
    perfect = evaluate(tmp_path / "eval" / "gt.csv", tmp_path / "eval" / "gt.csv")
    assert perfect["macro_f1"] == 1.0


def test_evaluate_names_the_first_mismatch(tmp_path):
    gt = tmp_path / "gt.csv"
    gt.write_text("ImageID,ans\na.jpg,1\nb.jpg,2\nc.jpg,3\n")
    swapped = tmp_path / "swapped.csv"
    swapped.write_text("ImageID,ans\na.jpg,1\nc.jpg,3\nb.jpg,2\n")
    with pytest.raises(UserError, match=r"swapped.csv: row 3 has ImageID 'c.jpg' where .*gt.csv has 'b.jpg'"):
        evaluate(swapped, gt)
    short = tmp_path / "short.csv"
    short.write_text("ImageID,ans\na.jpg,1\n")
    with pytest.raises(UserError, match=r"short.csv: has 1 rows but .*gt.csv has 3"):
        evaluate(short, gt)
    words = tmp_path / "words.csv"
    words.write_text("ImageID,ans\na.jpg,one\nb.jpg,2\nc.jpg,3\n")
    with pytest.raises(UserError, match=r"words.csv row 2: ans 'one': must be a whole number from 0 to 17"):
        evaluate(words, gt)
    with pytest.raises(UserError, match="missing.csv: answers file does not exist"):
        evaluate(tmp_path / "missing.csv", gt)


def test_class_folder_run_predicts_a_folder(tmp_path):
    data = make_folders(tmp_path / "pets", per_class=8)
    run = train(TrainConfig(data=str(data), recipe=str(tiny_recipe(tmp_path / "r.json")), out=str(tmp_path / "runs"),
                            **SETTINGS))
    flat = tmp_path / "flat"
    flat.mkdir()
    for p in sorted((data / "cat").iterdir())[:3]:
        (flat / p.name).write_bytes(p.read_bytes())
    (flat / "broken.jpg").write_bytes(b"not a jpeg")  # skipped, and said so
    notes: list[str] = []
    out = pd.read_csv(predict(run, flat, tmp_path / "pred.csv", log=notes.append))
    assert list(out.columns) == ["path", "pred", "pred_name"] and len(out) == 3
    assert any(n.startswith(f"1 file(s) of {flat} could not be read and have no row (first: {flat / 'broken.jpg'}")
               for n in notes), notes
    assert set(out["pred_name"]) <= {"cat", "dog"}
    whole = pd.read_csv(predict(run, data, tmp_path / "pred2.csv"))
    assert len(whole) == 16


def test_fold_models_are_averaged_in_probability():
    images = np.random.default_rng(0).integers(0, 256, (5, 32, 24, 3), dtype=np.uint8)
    torch.manual_seed(0)
    models = [new_model("smallcnn", 4).eval(), new_model("smallcnn", 4).eval()]
    mean = mean_probabilities(models, images, torch.device("cpu"))
    singles = [mean_probabilities([m], images, torch.device("cpu")) for m in models]
    assert np.allclose(mean, (singles[0] + singles[1]) / 2, atol=1e-6)
    assert np.allclose(mean.sum(1), 1, atol=1e-5)


def test_a_foreign_best_pt_is_refused(run, tmp_path):
    import shutil

    copy = tmp_path / "copy"
    shutil.copytree(run, copy)
    torch.save(new_model("smallcnn", 18).state_dict(), copy / "best.pt")
    with pytest.raises(CheckpointError, match=str(copy / "best.pt")):
        predict(copy, tmp_path, tmp_path / "x.csv")


def test_mirror_tta_is_invariant_to_flipping_the_input():
    from core.predict import predict_logits

    images = np.random.default_rng(1).integers(0, 256, (4, 32, 24, 3), dtype=np.uint8)
    torch.manual_seed(0)
    model = new_model("smallcnn", 3).eval()
    plain = predict_logits(model, images)
    tta = predict_logits(model, images, tta=True)
    mirrored = predict_logits(model, np.ascontiguousarray(images[:, :, ::-1]), tta=True)
    assert np.allclose(tta, mirrored, atol=1e-5)
    assert not np.allclose(tta, plain, atol=1e-5)
    assert np.allclose(np.exp(tta).sum(1), 1, atol=1e-5)  # log-probabilities of the mean softmax
