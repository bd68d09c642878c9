"""One rule book: a bound, a choice or a label is said once and read everywhere. Changing it in the
rule book changes the CLI help, the validation message and the app's widget together."""

from __future__ import annotations

import contextlib
import io

import pytest

from core.cli import build_parser, main
from core.errors import RecipeError, UserError
from core.recipe import Recipe, recipe_params
from core.rules import Interval, Options
from core.training.config import PARAMS, TrainConfig, validate_config
from tests.helpers import make_train
from tests.apptest import open_app


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return make_train(tmp_path_factory.mktemp("rulebook") / "train", people=6)


def help_of(command: str) -> str:
    out = io.StringIO()
    with contextlib.redirect_stdout(out), pytest.raises(SystemExit):
        build_parser().parse_args([command, "--help"])
    return " ".join(out.getvalue().split())


def test_a_train_bound_changed_once_shows_in_help_message_and_widget(data, monkeypatch, tmp_path):
    monkeypatch.setattr(PARAMS["epochs"], "rule", Interval(int, 1, 7))
    assert "epochs (default: 20 on a CPU, 12 on a GPU) (a whole number from 1 to 7)" in help_of("train")
    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        assert main(["train", "--data", str(data), "--epochs", "8"]) == 2
    assert "argument --epochs: 8: must be a whole number from 1 to 7" in err.getvalue()
    with pytest.raises(UserError, match="^--epochs 8: must be a whole number from 1 to 7$"):
        validate_config(TrainConfig(data=str(data), epochs=8))
    monkeypatch.setenv("MASKLAB_RUNS", str(tmp_path / "runs"))
    at = open_app(data, "train")
    epochs = at.number_input(key="t.epochs")
    assert (epochs.min, epochs.max, epochs.label) == (1, 7, "Epochs")


def test_a_choice_and_its_label_changed_once_show_everywhere(data, monkeypatch, tmp_path):
    loss = PARAMS["loss"]
    monkeypatch.setattr(loss, "rule", Options(("ce", "focal"), labels={"ce": "Plain CE", "focal": "Focal"}))
    monkeypatch.setattr(loss, "label", "Training loss")
    assert "(one of: ce, focal)" in help_of("train")
    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        assert main(["train", "--data", str(data), "--loss", "f1"]) == 2
    assert "argument --loss: 'f1': must be one of: ce, focal" in err.getvalue()
    monkeypatch.setenv("MASKLAB_RUNS", str(tmp_path / "runs"))
    at = open_app(data, "train")
    box = at.selectbox(key="t.loss")
    assert box.options == ["Plain CE", "Focal"] and box.label == "Training loss"


def test_a_recipe_bound_changed_once_shows_in_the_message_and_the_slider(data, monkeypatch):
    contrast = recipe_params()["enhance.contrast"]
    monkeypatch.setattr(contrast, "rule", Interval(float, 0.5, 2.0))
    with pytest.raises(RecipeError, match=r"^enhance.contrast 2.5: must be a number from 0.5 to 2$"):
        Recipe.from_dict({"enhance": {"contrast": 2.5}})
    at = open_app(data, "preprocess")
    slider = at.slider(key="r.enhance.contrast")
    assert (slider.min, slider.max, slider.label) == (0.5, 2.0, contrast.label)


def test_messages_put_the_right_article_before_a_name():
    from core.errors import a

    assert [a(w) for w in ("output", "eval", "info.csv", "answers", "recipe", "CSV", "search space")] == [
        "an output", "an eval", "an info.csv", "an answers", "a recipe", "a CSV", "a search space"]
