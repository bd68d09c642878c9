"""The Sweep page through AppTest: it starts a real (tiny) sweep in the background, shows the trials
and Optuna's figures, and "Use the best" puts the best trial's recipe in the sidebar; the Runs page
lists each trial's run."""

from __future__ import annotations

import json
import time
from pathlib import Path

from core import rulebook as rb
from core.recipe import Recipe
from core.sweep import read_best
from core.sweep_workers import background
from tests.apptest import app_env, assert_clean, open_app, runs, tiny  # noqa: F401 - fixtures

WAIT_S = 180
# One searched field, the learning rate, and the contrast held at 1.3 by a range of one value,
# so the best trial's recipe differs from the page's starting one (contrast 1).
STATE = {"recipe": Recipe().replace(input_size=(24, 32)), "s.fields": ["train.lr", "recipe.enhance.contrast"],
         "s.low.train.lr": 0.003, "s.high.train.lr": 0.03, "s.low.recipe.enhance.contrast": 1.3,
         "s.high.recipe.enhance.contrast": 1.3, "s.trials": 2, "s.epochs": 1}


def wait_until_finished(folder: Path) -> None:
    deadline = time.monotonic() + WAIT_S
    while (now := background(folder)) is None or now["live"]:
        assert time.monotonic() < deadline, f"the sweep still runs after {WAIT_S} s"
        time.sleep(0.5)


def test_the_sweep_page_runs_a_sweep_and_uses_the_best(tiny, runs):
    at = open_app(tiny / "train", "sweep", **STATE, **{"s.dir": str(runs / "sweep")})
    assert any("No sweep in this folder yet" in i.value for i in at.info)
    at.button(key="s.start").click().run()
    assert_clean(at)
    folder = runs / "sweep"
    wait_until_finished(folder)
    at.run()
    assert_clean(at)
    table = next(d.value for d in at.dataframe if "train.lr" in d.value.columns)
    assert list(table["state"]) == ["complete", "complete"]
    assert set(table.columns) >= {"value", "train.lr", "recipe.enhance.contrast", "epochs"}
    charts = {c.proto.id.split("-")[-1] for c in at.get("plotly_chart")}
    assert len(at.get("plotly_chart")) == 4, charts  # history, importances, parallel coordinates, slice
    best = read_best(folder)
    assert best["recipe"]["enhance"]["contrast"] == 1.3
    assert at.session_state["recipe"].enhance.contrast == 1.0
    at.button(key="s.use").click().run()
    assert_clean(at)
    assert at.session_state["recipe"] == Recipe.from_dict(best["recipe"])
    assert at.session_state["t.lr"] == best["train"]["lr"]
    assert any(f"Trial {best['trial']}'s recipe is the sidebar's now" in s.value for s in at.success)
    at.switch_page("views/train.py").run()
    assert_clean(at)
    assert at.number_input(key="t.lr").value == best["train"]["lr"]  # the Train page's field
    at.switch_page("views/runs.py").run()
    assert_clean(at)
    listed = next(d.value for d in at.dataframe if "sweep trial" in d.value.columns)
    trial_runs = listed[listed["run"].str.startswith("sweep/")]
    assert sorted(trial_runs["sweep trial"]) == [0, 1]


def test_the_default_space_is_drawn_from_the_rule_book_and_a_bad_range_is_one_error(tiny, runs):
    at = open_app(tiny / "train", "sweep", **{"s.dir": str(runs / "empty-sweep")})
    assert at.multiselect(key="s.fields").value == [
        "train.lr", "train.weight_decay", "train.smoothing", "recipe.input_size", "recipe.crop.box.3",
        "recipe.enhance.contrast", "recipe.enhance.sharpness", "recipe.enhance.equalize", "recipe.sampling.target",
        "recipe.augment.rotate"]
    contrast = at.number_input(key="s.high.recipe.enhance.contrast")
    assert (contrast.value, contrast.min, contrast.max, contrast.step) == (1.5, 0.0, 3.0, 0.05)  # the rule's
    assert at.multiselect(key="s.choices.recipe.input_size").value == ["64x64", "80x80", "96x96", "112x112"]
    at.number_input(key="s.low.train.lr").set_value(0.05).run()
    assert [e.value for e in at.error] == ["the page's space: train.lr: low 0.05 is above high 0.01"]
    assert "s.start" not in [b.key for b in at.button]  # refused before anything can start


def test_list_fields_and_the_loss_are_searched_with_choices_and_a_picked_loss_is_kept(tiny, runs):
    folder = runs / "choices-sweep"
    at = open_app(tiny / "train", "sweep", **{**STATE, "s.dir": str(folder), "s.trials": 1,
                                             "s.fields": ["train.smoothing", "train.loss", "recipe.crop.box",
                                                          "recipe.sampling.smote_size"]})
    assert_clean(at)
    box = at.multiselect(key="s.choices.recipe.crop.box")
    assert box.value == ["0, 0, 1, 1"]  # the sidebar recipe's box, as the one choice to start from
    assert at.multiselect(key="s.choices.recipe.sampling.smote_size").value == ["24x32"]
    loss = at.multiselect(key="s.choices.train.loss")
    assert loss.options == [rb.LOSS.label(v) for v in rb.LOSS.values]  # every loss the rule book has
    assert loss.value == ["label_smoothing"]  # the default space's fixed loss, as the one choice to start from
    box.set_value(["0, 0, 1, 1", "0, 0, 1, 0.723456789"])  # a box typed in
    loss.set_value(["ce", "label_smoothing"]).run()
    assert_clean(at)
    assert not any("Label smoothing is searched with the label_smoothing loss" in c.value for c in at.caption)
    at.button(key="s.start").click().run()
    assert_clean(at)
    space = json.loads((folder / ".app" / "space.json").read_text())
    assert space["train.loss"] == {"choices": ["ce", "label_smoothing"]}  # not overwritten for the smoothing
    assert space["recipe.crop.box"] == {"choices": [[0.0, 0.0, 1.0, 1.0], [0.0, 0.0, 1.0, 0.723456789]]}
    assert space["recipe.sampling.smote_size"] == {"choices": [[24, 32]]}
    wait_until_finished(folder)
    sweep = json.loads((folder / "sweep.json").read_text())
    assert sweep["space"]["train.loss"] == {"choices": ["ce", "label_smoothing"]}
    assert sweep["space"]["recipe.crop.box"]["choices"][1] == [0.0, 0.0, 1.0, 0.723456789]


def test_the_sweep_folder_is_checked_by_its_rule_and_made_absolute(tiny, runs, monkeypatch):
    home = runs / "home"
    home.mkdir()
    monkeypatch.setenv("MASKLAB_HOME", str(home))
    at = open_app(tiny / "train", "sweep", **{"s.dir": "rel/sweep"})
    assert any(f"--out {home / 'rel' / 'sweep'} --trials 20" in i.value for i in at.info)  # where the sweep goes
    blocker = runs / "a-file"
    blocker.write_text("not a folder\n")
    at.text_input(key="s.dir").set_value(str(blocker / "sweep")).run()
    assert_clean(at)
    assert [e.value for e in at.error] == [(
        f"Sweep folder '{blocker / 'sweep'}': {blocker} is a file, so no folder can be made under it; choose "
        "another path")]
    assert "s.start" not in [b.key for b in at.button]
    at.text_input(key="s.dir").set_value("").run()
    assert [e.value for e in at.error] == ["Sweep folder '': must be the path of a new or existing folder"]
