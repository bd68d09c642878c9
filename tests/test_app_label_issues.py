"""The label-issue loop and the run report's error views through AppTest: suspects from a K-fold
run, Accept / Dismiss, a retraining with the corrections compared on the Runs page; a confusion
cell's images, Grad-CAM over the top losses, the embedding map; image properties on Overview."""

from __future__ import annotations

import base64
import json
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from core import label_issues as li
from core import launch, stats
from core.dataset import scan
from core.labels import decode
from core.training import TrainConfig, train
from explorer import imaging
from tests.helpers import make_folders, make_train, tiny_recipe
from test_label_issues import plant
from tests.apptest import assert_clean, open_app

WAIT_S = 240


@pytest.fixture(autouse=True)
def _env(monkeypatch, base):
    monkeypatch.setenv("MASKLAB_RAISE", "1")
    monkeypatch.setenv("MASKLAB_RUNS", str(base / "runs"))


@pytest.fixture(scope="module")
def base(tmp_path_factory) -> Path:
    """base/train (15 people, 3 planted errors, truth in base/label_noise.csv) and a 2-fold run."""
    base = tmp_path_factory.mktemp("review")
    make_train(base / "train", people=15)
    plant(base / "train" / "images").to_csv(base / "label_noise.csv", index=False)
    train(TrainConfig(data=str(base / "train"), recipe=str(tiny_recipe(base / "recipe.json")), folds=2, epochs=2,
                      model="smallcnn", batch_size=16, lr=0.005, workers=1, out=str(base / "runs")))
    return base


def the_run(base: Path) -> Path:
    return min((p for p in (base / "runs").iterdir() if (p / "config.json").is_file()), key=lambda p: p.name)


def values(array) -> np.ndarray:
    """A plotly spec's array: a list, or plotly's base64 typed array ({"dtype", "bdata"})."""
    if isinstance(array, dict):
        return np.frombuffer(base64.b64decode(array["bdata"]), dtype=np.dtype(array["dtype"]))
    return np.asarray(array)


def wait_until_finished(runs: Path) -> launch.RunState:
    record, deadline = launch.current(runs), time.monotonic() + WAIT_S
    while (now := launch.poll(record)).live:
        assert time.monotonic() < deadline, f"training still {now.state} after {WAIT_S} s"
        time.sleep(0.5)
    return now


def test_run_report_shows_a_cells_images_gradcam_and_the_embedding_map(base):
    run = the_run(base)
    at = open_app(base / "train", "runs", runs_pick=[run.name])
    predictions = pd.read_csv(run / "val_predictions.csv")
    mistakes = predictions[predictions["true"] != predictions["pred"]]
    true, pred = (int(mistakes.iloc[0]["true"]), int(mistakes.iloc[0]["pred"])) if len(mistakes) else (0, 0)
    at.selectbox(key="runs.res.cell_true").set_value(true).run()
    at.selectbox(key="runs.res.cell_pred").set_value(pred).run()
    assert_clean(at)
    expected = stats.cell_rows(predictions, true, pred)
    assert any(m.value.startswith(f"**{len(expected)} ") for m in at.markdown), [m.value for m in at.markdown]
    cell = [img for img in at.image if img.captions and img.captions[0].startswith("p(true) ")]
    assert [img.captions[0] for img in cell] == [f"p(true) {p:.2f}" for p in expected["prob_true"].head(24)]

    at.toggle(key="runs.res.gradcam").set_value(True).run()
    assert_clean(at)
    views = [img for img in at.image if img.captions and img.captions[0].startswith("true: ")]
    assert len(views) == min(12, len(predictions))  # the top losses, each photo beside its overlay

    at.toggle(key="runs.res.embed").set_value(True).run()
    assert_clean(at)
    scatter = [json.loads(c.proto.spec) for c in at.get("plotly_chart")]
    embedding = next(s for s in scatter if "Embedding map" in s["layout"]["title"]["text"])
    points = sum(len(values(trace["x"])) for trace in embedding["data"])
    assert points == int((predictions["fold"] == 0).sum())  # fold 0's held-out images
    at.radio(key="runs.res.embed_method").set_value("tsne").run()
    assert_clean(at)


def test_run_report_scores_each_task_and_shows_a_task_cells_images(base):
    run = the_run(base)
    summary = json.loads((run / "summary.json").read_text())
    at = open_app(base / "train", "runs", runs_pick=[run.name])
    assert "Scores by task" in [s.value for s in at.subheader]
    shown = {m.label: m.value for m in at.metric}
    assert [shown[f"{what} macro F1"] for what in ("Mask", "Gender", "Age group")] == [
        f"{summary['task_f1'][t]:.4f}" for t in ("mask", "gender", "age")]

    predictions = pd.read_csv(run / "val_predictions.csv")
    def gender(c) -> int:
        return decode(int(c))[1]

    true, pred = predictions["true"].map(gender), predictions["pred"].map(gender)
    table = next(d.value for d in at.dataframe if list(d.value.columns) == ["Male", "Female"])
    assert list(table.index) == ["0 · Male", "1 · Female"]
    assert table.to_numpy().tolist() == pd.crosstab(true, pred).reindex(index=[0, 1], columns=[0, 1],
                                                                          fill_value=0).to_numpy().tolist()

    at.selectbox(key="runs.res.task.gender.cell_true").set_value(1).run()
    at.selectbox(key="runs.res.task.gender.cell_pred").set_value(0).run()
    assert_clean(at)
    cell = predictions[(true == 1) & (pred == 0)]
    female = [f"p{c}" for c in range(18) if gender(c) == 1]
    p_true = cell[female].sum(axis=1).sort_values(kind="stable")  # p(Female): the least sure first
    text = next(m.value for m in at.markdown if "true *Female*, predicted *Male*" in m.value)
    assert text.startswith(f"**{len(cell)} mistaken image(s)**")
    tab = next(t for t in at.tabs if t.label == "Gender")
    assert [img.captions[0] for img in tab.image] == [f"p(Female) {p:.2f}" for p in p_true.head(24)]

    # a click on a task's table sets its selectboxes the same way: (row, column name) -> (true, predicted)
    assert imaging.confusion_cell([(1, "Male")], ["Male", "Female"]) == (1, 0)


def test_a_folder_per_class_run_report_says_why_there_are_no_task_scores(tmp_path, monkeypatch):
    data = make_folders(tmp_path / "pets", per_class=6)
    train(TrainConfig(data=str(data), recipe=str(tiny_recipe(tmp_path / "recipe.json")), epochs=1, model="smallcnn",
                      batch_size=16, workers=1, out=str(tmp_path / "runs")))
    monkeypatch.setenv("MASKLAB_RUNS", str(tmp_path / "runs"))
    run = next((tmp_path / "runs").iterdir())
    at = open_app(data, "runs", runs_pick=[run.name])
    assert "Scores by task" in [s.value for s in at.subheader]
    assert [i.value for i in at.info if "not the competition's" in i.value] == [
        ("Per-task F1: not applicable: the classes are not the competition's mask x gender x age "
         "(this dataset has a folder per class).")]
    assert not [s.key for s in at.selectbox if ".task." in (s.key or "")] and not at.tabs


def test_overview_shows_image_properties_by_class(base):
    at = open_app(base / "train")
    titles = [json.loads(c.proto.spec)["layout"].get("title", {}).get("text") for c in at.get("plotly_chart")]
    assert set(stats.PROPERTIES.values()) <= set(titles)
    box = next(json.loads(c.proto.spec) for c in at.get("plotly_chart")
               if json.loads(c.proto.spec)["layout"].get("title", {}).get("text") == stats.PROPERTIES["brightness"])
    assert box["data"][0]["type"] == "box"


def test_label_issues_page_accept_dismiss_retrain_and_compare(base):
    run, csv = the_run(base), base / "label_corrections.csv"
    persons, _ = li.suspects_of(run)
    at = open_app(base / "train", "label_issues")
    assert at.selectbox(key="li.run").value == 0 and at.text_input(key="li.corrections").value == str(csv)
    assert any("planted label error" in i.value for i in at.info), [i.value for i in at.info]
    first, second = persons.iloc[0], persons.iloc[1]
    shown = [m.value for m in at.markdown if m.value.startswith("**#")]
    assert shown[0].startswith(f"**#1 · {first.person}** · {first.field}")
    assert len(at.image) >= 7  # the first suspect's photos

    at.button(key=f"li.{first.person}.{first.field}.accept").click().run()
    assert_clean(at)
    assert pd.read_csv(csv, dtype=str).values.tolist() == [[first.person, first.field, str(first.value)]]
    assert any("accepted" in m.value for m in at.markdown if m.value.startswith("**#1 "))
    assert scan(base / "train", corrections=csv).df["corrected"].any()  # the next scan applies it

    at.button(key=f"li.{second.person}.{second.field}.dismiss").click().run()
    assert_clean(at)
    assert not any(m.value.startswith("**#2 ") for m in at.markdown)  # hidden from now on
    assert li.review_state(persons.head(2), csv).tolist() == ["accepted", "dismissed"]

    at.button(key="li.retrain").click().run()
    assert_clean(at)
    record = launch.current(base / "runs")
    assert record is not None and "--corrections" in record.argv and str(csv) in record.argv
    assert record.argv[record.argv.index("--folds") + 1] == "2"
    done = wait_until_finished(base / "runs")
    assert done.state == "done", done.message
    after = done.run_dir
    assert li.baseline_run(after, [run, after]) == run

    at = open_app(base / "train", "runs", runs_pick=[after.name])
    assert f"Label corrections: {after.name} against {run.name}" in [s.value for s in at.subheader]
    assert any(m.label == "macro F1, best epoch (after)" for m in at.metric)


def test_label_issues_page_without_a_kfold_run_offers_to_train_one(base, monkeypatch, tmp_path):
    monkeypatch.setenv("MASKLAB_RUNS", str(tmp_path / "empty"))
    at = open_app(base / "train", "label_issues")
    assert any("No finished K-fold run" in i.value and "python -m core label-issues" in i.value for i in at.info)
    assert at.button(key="li.train").proto.label == "Train a 3-fold run on this dataset"
    assert not at.get("selectbox") or "li.run" not in [s.key for s in at.selectbox]
