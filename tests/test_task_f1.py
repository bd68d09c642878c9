"""The score by task: macro F1 of the mask, the gender and the age, each over its own values and
derived from the 18-class predictions; in metrics.jsonl, summary.json, train's closing lines and
evaluate; absent (and why) for a dataset with one folder per class."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from core.cli import main
from core.labels import encode
from core.metrics import (TASKS_ABSENT, classification_metrics, macro_f1, task_confusion, task_f1,
                          task_probabilities, task_values)
from core.runs import read_metrics, read_summary
from core.training import Callbacks, TrainConfig, train
from tests.helpers import make_folders, make_train, tiny_recipe

SETTINGS = {"model": "smallcnn", "epochs": 2, "batch_size": 16, "lr": 0.01, "seed": 0, "workers": 1}

# Six images: (mask, gender, age) of the truth and of the prediction.
#   true: (0,0,0) (1,0,0) (2,0,0) (0,1,0) (0,0,1) (2,1,2)
#   pred: (0,0,0) (0,0,0) (2,0,0) (1,1,0) (0,0,2) (2,1,1)
Y_TRUE = np.array([0, 6, 12, 3, 1, 17])
Y_PRED = np.array([0, 0, 12, 9, 2, 16])


def test_task_values_follow_the_competition_encoding():
    labels = np.array([encode(m, g, a) for m in range(3) for g in range(2) for a in range(3)])
    assert task_values(labels, "mask").tolist() == [m for m in range(3) for _ in range(6)]
    assert task_values(labels, "gender").tolist() == [g for _ in range(3) for g in range(2) for _ in range(3)]
    assert task_values(labels, "age").tolist() == [0, 1, 2] * 6


def test_each_tasks_macro_f1_by_hand():
    # mask:   true 0 1 2 0 0 2, pred 0 0 2 1 0 2 -> F1 of 0: 2/3 (2 of 3 predicted, 2 of 3 found),
    #         of 1: 0, of 2: 1                      -> (2/3 + 0 + 1) / 3 = 5/9
    # gender: true 0 0 0 1 0 1, pred the same       -> 1
    # age:    true 0 0 0 0 1 2, pred 0 0 0 0 2 1    -> (1 + 0 + 0) / 3 = 1/3
    scores = task_f1(Y_TRUE, Y_PRED)
    assert list(scores) == ["mask", "gender", "age"]
    assert scores["mask"] == pytest.approx(5 / 9, abs=1e-12)
    assert scores["gender"] == 1.0
    assert scores["age"] == pytest.approx(1 / 3, abs=1e-12)
    # the 18-class score hides them: 9 classes occur, only 0 (F1 2/3) and 12 (F1 1) score -> 5/27
    assert macro_f1(Y_TRUE, Y_PRED) == pytest.approx(5 / 27, abs=1e-12)


def test_a_task_value_nobody_has_or_predicts_is_left_out_like_an_absent_class():
    # two images, both Wear and Male; ages <30 and 30-59, both predicted <30:
    # mask and gender have one value each, all right -> 1; age: F1 of <30 2/3, of 30-59 0 -> 1/3
    scores = task_f1(np.array([0, 1]), np.array([0, 0]))
    assert scores["mask"] == 1.0 and scores["gender"] == 1.0
    assert scores["age"] == pytest.approx(1 / 3, abs=1e-12)


def test_task_confusion_counts_by_hand():
    mask = task_confusion(Y_TRUE, Y_PRED, "mask")
    assert list(mask.index) == list(mask.columns) == ["Wear", "Incorrect", "Not wear"]
    assert mask.to_numpy().tolist() == [[2, 1, 0], [1, 0, 0], [0, 0, 2]]
    assert task_confusion(Y_TRUE, Y_PRED, "gender").to_numpy().tolist() == [[4, 0], [0, 2]]
    assert task_confusion(Y_TRUE, Y_PRED, "age").to_numpy().tolist() == [[4, 0, 0], [0, 0, 1], [0, 1, 0]]


def test_task_probabilities_sum_each_values_classes():
    probs = np.zeros((1, 18))
    probs[0, [encode(0, 1, 2), encode(1, 1, 0), encode(2, 0, 2)]] = [0.5, 0.3, 0.2]
    assert task_probabilities(probs, "mask").tolist() == [[0.5, 0.3, 0.2]]
    assert task_probabilities(probs, "gender")[0].tolist() == pytest.approx([0.2, 0.8], abs=1e-12)
    assert task_probabilities(probs, "age")[0].tolist() == pytest.approx([0.3, 0.0, 0.7], abs=1e-12)


def test_other_classes_have_no_tasks():
    assert "task_f1" not in classification_metrics(np.array([0, 1]), np.array([0, 0]), ["cat", "dog"])
    names = [f"c{i}" for i in range(18)]  # 18 classes of their own are not the competition's
    assert "task_f1" not in classification_metrics(Y_TRUE, Y_PRED, names)


# ----------------------------------------------------------------------------- a training

class Seen(Callbacks):
    """Each epoch's record with the validation truth and predictions it was scored on."""

    def __init__(self):
        self.epochs = []

    def on_val_predictions(self, metrics, y_true, y_pred):
        self.epochs.append((metrics, np.asarray(y_true), np.asarray(y_pred)))


@pytest.fixture(scope="module")
def base(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("task_f1")


@pytest.fixture(scope="module")
def recipe(base) -> Path:
    return tiny_recipe(base / "recipe.json")


def test_metrics_lines_and_summary_carry_each_tasks_f1(base, recipe):
    seen = Seen()
    run = train(TrainConfig(data=str(make_train(base / "train", people=12)), recipe=str(recipe),
                            out=str(base / "runs"), **SETTINGS), callbacks=[seen])
    records = read_metrics(run)
    assert len(records) == len(seen.epochs) == 2
    for record, (_, y, pred) in zip(records, seen.epochs):
        assert record["task_f1"] == task_f1(y, pred)  # exactly the scores of that epoch's predictions
    summary = read_summary(run)
    table = pd.read_csv(run / "val_predictions.csv")
    assert summary["task_f1"] == task_f1(table["true"].to_numpy(), table["pred"].to_numpy())
    assert list(summary)[:3] == ["macro_f1", "accuracy", "task_f1"]
    assert json.loads((run / "status.json").read_text())["result"]["task_f1"] == summary["task_f1"]


def test_train_cli_closing_lines_name_each_task(base, recipe, capsys):
    code = main(["train", "--data", str(base / "train"), "--recipe", str(recipe), "--out", str(base / "cli"),
                 "--model", "smallcnn", "--epochs", "1", "--batch-size", "16", "--workers", "1"])
    out = capsys.readouterr().out.splitlines()
    assert code == 0
    run = Path(next(line for line in out if line.startswith("run: ")).removeprefix("run: "))
    scores = read_summary(run)["task_f1"]
    assert out[-1] == (f"validation F1 by task: mask {scores['mask']:.4f}  gender {scores['gender']:.4f}  "
                       f"age {scores['age']:.4f}")
    assert out[-2].startswith("validation macro F1: ")


def test_a_folder_per_class_run_has_no_task_scores_and_says_why(base, recipe, capsys):
    data = make_folders(base / "folders", per_class=6)
    code = main(["train", "--data", str(data), "--recipe", str(recipe), "--out", str(base / "folder_runs"),
                 "--model", "smallcnn", "--epochs", "1", "--batch-size", "16", "--workers", "1"])
    out = capsys.readouterr().out.splitlines()
    assert code == 0
    assert out[-1] == TASKS_ABSENT == ("per-task F1: not applicable: the classes are not the competition's "
                                       "mask x gender x age")
    run = Path(next(line for line in out if line.startswith("run: ")).removeprefix("run: "))
    assert "task_f1" not in read_summary(run)
    assert all("task_f1" not in r for r in read_metrics(run))


# ----------------------------------------------------------------------------- evaluate

def test_evaluate_prints_each_tasks_f1(tmp_path, capsys):
    ids = [f"{i:02d}.jpg" for i in range(len(Y_TRUE))]
    gt, pred = tmp_path / "gt.csv", tmp_path / "pred.csv"
    pd.DataFrame({"ImageID": ids, "ans": Y_TRUE}).to_csv(gt, index=False)
    pd.DataFrame({"ImageID": ids, "ans": Y_PRED}).to_csv(pred, index=False)
    assert main(["evaluate", "--pred", str(pred), "--gt", str(gt)]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[:6] == ["images:    6", "accuracy:  0.3333", "macro F1:  0.1852",
                       "mask F1:   0.5556", "gender F1: 1.0000", "age F1:    0.3333"]
