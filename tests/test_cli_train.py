"""The train / predict / evaluate commands end to end, and their one-line errors."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from core.cli import main
from tests.helpers import make_eval, make_train, tiny_recipe

ROOT = Path(__file__).resolve().parents[1]


def _cli(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, "-m", "core", *map(str, args)], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=300)


@pytest.fixture(scope="module")
def paths(tmp_path_factory) -> dict:
    base = tmp_path_factory.mktemp("cli")
    make_eval(base / "eval", people=3, corrupt=1)
    return {"base": base, "train": make_train(base / "train", people=12), "eval": base / "eval",
            "recipe": tiny_recipe(base / "recipe.json"), "runs": base / "runs"}


@pytest.fixture(scope="module")
def run(paths) -> Path:
    done = _cli("train", "--data", paths["train"], "--recipe", paths["recipe"], "--model", "smallcnn",
                "--epochs", 1, "--batch-size", 16, "--out", paths["runs"], "--workers", 1)
    assert done.returncode == 0, done.stderr
    assert "macro F1" in done.stdout
    line = next(l for l in done.stdout.splitlines() if l.startswith("run: "))
    return Path(line.removeprefix("run: "))


def test_train_predict_evaluate_end_to_end(run, paths):
    for name in ("config.json", "metrics.jsonl", "best.pt", "last.pt", "val_predictions.csv",
                 "confusion_matrix.csv", "per_class_report.csv", "status.json", "train.log"):
        assert (run / name).is_file(), name
    assert json.loads((run / "status.json").read_text())["state"] == "done"
    sub = paths["base"] / "submission.csv"
    predicted = _cli("predict", "--run", run, "--data", paths["eval"], "--out", sub)
    assert predicted.returncode == 0, predicted.stderr
    assert "wrote 21 predictions" in predicted.stdout
    assert "could not be read" in predicted.stderr  # the corrupt image is reported, not dropped
    info = pd.read_csv(paths["eval"] / "info.csv")
    assert list(pd.read_csv(sub)["ImageID"]) == list(info["ImageID"])
    scored = _cli("evaluate", "--pred", sub, "--gt", paths["eval"] / "gt.csv")
    assert scored.returncode == 0, scored.stderr
    assert "macro F1:" in scored.stdout and "accuracy:" in scored.stdout


def test_config_records_the_equivalent_command(run, paths):
    config = json.loads((run / "config.json").read_text())
    assert f"--recipe {paths['recipe']}" in config["command"] and "--model smallcnn" in config["command"]


def _one_line_error(capsys, *argv: str) -> str:
    code = main([str(a) for a in argv])
    err = capsys.readouterr().err.strip()
    assert code == 2, err
    assert err.startswith("error: ") and "\n" not in err and "Traceback" not in err
    return err


def test_missing_data_dir(capsys, tmp_path):
    err = _one_line_error(capsys, "train", "--data", tmp_path / "nope")
    assert str(tmp_path / "nope") in err and "does not exist" in err


def test_bad_recipe_file(capsys, paths, tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text('{"input_size": [96, 128], "colour": 1}')
    err = _one_line_error(capsys, "train", "--data", paths["train"], "--recipe", bad)
    assert str(bad) in err and "'colour'" in err
    err = _one_line_error(capsys, "train", "--data", paths["train"], "--recipe", tmp_path / "none.json")
    assert "none.json" in err


def test_unknown_model_lists_the_choices(capsys, paths):
    err = _one_line_error(capsys, "train", "--data", paths["train"], "--model", "resnet19")
    assert "'resnet19'" in err and "resnet18" in err and "efficientnet_b0" in err


@pytest.mark.parametrize("flag,value,allowed", [("--optimizer", "rmsprop", "sgd, adam, adamw"),
                                                ("--scheduler", "linear", "none, step, cosine, plateau"),
                                                ("--loss", "hinge", "ce, focal, label_smoothing, f1"),
                                                ("--device", "tpu", "auto, cpu, cuda")])
def test_bad_choices_name_value_and_options(capsys, paths, flag, value, allowed):
    err = _one_line_error(capsys, "train", "--data", paths["train"], flag, value)
    assert repr(value) in err and allowed in err


def test_bad_numbers(capsys, paths):
    assert "--epochs: 0: must be a whole number from 1 to 1000" in _one_line_error(
        capsys, "train", "--data", paths["train"], "--epochs", 0)
    assert "abc" in _one_line_error(capsys, "train", "--data", paths["train"], "--epochs", "abc")
    assert "1.5" in _one_line_error(capsys, "train", "--data", paths["train"], "--val-ratio", 1.5)


def test_resume_needs_a_last_checkpoint(capsys, run, tmp_path):
    copy = tmp_path / "run"
    shutil.copytree(run, copy)
    (copy / "last.pt").unlink()
    err = _one_line_error(capsys, "train", "--resume", copy)
    assert str(copy) in err and "no last.pt" in err
    err = _one_line_error(capsys, "train", "--resume", tmp_path / "missing")
    assert f"--resume: '{tmp_path / 'missing'}': does not exist" in err
    err = _one_line_error(capsys, "train", "--resume", run, "--model", "resnet18")
    assert "--model" in err
    assert "--data is required" in _one_line_error(capsys, "train")


def test_predict_and_evaluate_bad_input(capsys, run, paths, tmp_path):
    err = _one_line_error(capsys, "predict", "--run", tmp_path, "--data", paths["eval"], "--out", tmp_path / "s.csv")
    assert "not a run directory" in err
    err = _one_line_error(capsys, "predict", "--run", run, "--data", tmp_path / "nope", "--out", tmp_path / "s.csv")
    assert "nope" in err
    bad = tmp_path / "bad.csv"
    bad.write_text("ImageID,ans\nx.jpg,1\n")
    err = _one_line_error(capsys, "evaluate", "--pred", bad, "--gt", paths["eval"] / "gt.csv")
    assert "bad.csv" in err and "rows" in err


@pytest.mark.parametrize("model", ["smallcnn", "resnet18", "timm/resnet18"])
def test_one_model_of_each_family_trains_one_epoch_from_the_cli(paths, tmp_path, model):
    """smallcnn, a torchvision backbone and a timm backbone each train through the CLI; a timm
    name's slash does not end up in the run folder's name."""
    done = _cli("train", "--data", paths["train"], "--recipe", paths["recipe"], "--model", model, "--weights", "none",
                "--epochs", 1, "--batch-size", 16, "--out", tmp_path, "--workers", 1)
    assert done.returncode == 0, done.stderr[-2000:]
    run = Path(next(l for l in done.stdout.splitlines() if l.startswith("run: ")).removeprefix("run: "))
    assert run.parent == tmp_path and f"-{model.replace('/', '-')}-" in run.name
    assert json.loads((run / "status.json").read_text())["state"] == "done"
    config = json.loads((run / "config.json").read_text())
    assert config["config"]["model"] == model and (run / "best.pt").is_file()
    assert (run / "train.log").read_text().count(f"{model}: training from scratch (weights=none)") == 1  # said once
