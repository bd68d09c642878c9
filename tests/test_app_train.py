"""The Train & evaluate and Runs pages through AppTest, with a real (tiny) background training."""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from core import launch
from core.metrics import task_f1_text
from core.predict import evaluate
from core.runs import submission_path
from core.recipe import Recipe
from tests.helpers import make_folders
from tests.apptest import app_env, assert_clean, open_app, runs, tiny  # noqa: F401 - fixtures
from tests.helpers import layout_eval

TINY = {"recipe": Recipe().replace(input_size=(32, 48)), "t.model": "smallcnn", "t.epochs": 1,
        "t.batch_size": 16}
WAIT_S = 150


def wait_until_finished(runs: Path, timeout: float = WAIT_S) -> launch.RunState:
    record = launch.current(runs)
    assert record is not None, "no launch recorded in ACTIVE.json"
    deadline = time.monotonic() + timeout
    while (now := launch.poll(record)).live:
        assert time.monotonic() < deadline, f"training still {now.state} after {timeout} s: {now.status}"
        time.sleep(0.5)
    return now


def chart_specs(at: AppTest) -> list[dict]:
    return [json.loads(c.proto.spec) for c in at.get("plotly_chart")]


def chart_titles(at: AppTest) -> list[str]:
    return [s["layout"].get("title", {}).get("text") for s in chart_specs(at)]


def metric(at: AppTest, label: str) -> str:
    return next(m.value for m in at.metric if m.label == label)


def test_train_page_runs_in_the_background_and_shows_results(tiny, runs):
    at = open_app(tiny / "train", "train", **TINY)
    assert any("No training started" in i.value for i in at.info)
    assert at.text_input(key="t.eval_dir").value == str(tiny / "eval")  # sibling eval folder by default
    assert at.selectbox(key="t.optimizer").value == "adamw"  # TrainConfig's defaults
    preview = at.main.code[-1].value
    assert "--model smallcnn --epochs 1 --batch-size 16" in preview and str(tiny / "train") in preview

    at.button(key="t.start").click().run()
    assert_clean(at)
    record = launch.current(runs)
    assert record is not None and record.command == launch.command_line(record.argv)
    assert json.loads(Path(record.launch_dir, "recipe.json").read_text())["input_size"] == [32, 48]
    assert len(at.progress) == 1  # the live progress bar
    assert any(c.value == record.command for c in at.main.code)  # the equivalent CLI command
    assert at.button(key="t.stop")

    at.button(key="t.start").click().run()  # a second click while it runs
    assert_clean(at)
    assert any("already running" in w.value for w in at.warning), [w.value for w in at.warning]
    assert launch.current(runs).pid == record.pid  # nothing new was started

    assert wait_until_finished(runs).state == "done"
    at.run()
    assert_clean(at)
    best, last = metric(at, "Validation macro F1, best epoch"), metric(at, "Validation macro F1, last epoch")
    table = next(d.value for d in at.dataframe if "macro F1" in d.value.columns)
    assert list(table[""]) == ["final epoch", "best epoch"]
    assert float(last) == pytest.approx(table.loc[0, "macro F1"], abs=1e-4)  # metrics.jsonl's last epoch
    run_dir = Path(launch.current(runs).run_dir)
    summary = json.loads((run_dir / "summary.json").read_text())
    assert float(best) == pytest.approx(summary["macro_f1"], abs=1e-4)  # the best checkpoint's score
    assert "best epoch 1, picked on validation" in [c.value for c in at.caption]
    assert "epoch 1, nothing picked on it" in [c.value for c in at.caption]
    assert at.selectbox(key="t.res.cell_true").options[0] == "0 · Wear · Male · <30"  # the confusion cell picker
    assert "F1 per class (validation)" in chart_titles(at)
    assert any(img.captions and img.captions[0].startswith("true: ") for img in at.image)  # top losses
    assert at.get("download_button")[0].proto.label.startswith("Download the best checkpoint")

    at.button(key="t.res.predict").click().run()
    assert_clean(at)
    labels = [b.proto.label for b in at.get("download_button")]
    assert "Download submission.csv" in labels
    scored = evaluate(submission_path(run_dir, tiny / "eval"), tiny / "eval" / "gt.csv")  # eval/gt.csv scored
    assert float(metric(at, "Eval macro F1")) == pytest.approx(scored["macro_f1"], abs=1e-4)
    assert float(metric(at, "Eval accuracy")) == pytest.approx(scored["accuracy"], abs=1e-4)
    assert f"Eval {task_f1_text(scored['task_f1'])}." in [c.value for c in at.caption]

    # The Runs page lists the run and draws its curves.
    at.switch_page("views/runs.py").run()
    assert_clean(at)
    listed = next(d.value for d in at.dataframe if "run" in d.value.columns)
    run_dir = Path(record.run_dir or launch.current(runs).run_dir)
    row = listed.set_index("run").loc[run_dir.name]
    assert row["model"] == "smallcnn" and row["state"].endswith("done") and row["epochs"] == "1/1"
    assert {"Validation macro F1", "Validation loss"} <= set(chart_titles(at))
    best_col, last_col = "val macro F1, best epoch (picked on val)", "val macro F1, last epoch"
    assert float(metric(at, "Validation macro F1, best epoch")) == pytest.approx(row[best_col], abs=1e-4)
    assert float(metric(at, "Validation macro F1, last epoch")) == pytest.approx(row[last_col], abs=1e-4)
    assert row["best epoch"] == "1"

    # Two runs side by side: one line per run in each chart, one column per run in the table.
    twin = shutil.copytree(run_dir, runs / f"{run_dir.name}-twin")
    at.run()
    at.multiselect(key="runs_pick").set_value([run_dir.name, twin.name]).run()
    assert_clean(at)
    f1 = next(s for s in chart_specs(at) if s["layout"].get("title", {}).get("text") == "Validation macro F1")
    assert sorted(trace["name"] for trace in f1["data"]) == sorted([run_dir.name, twin.name])
    side = next(d.value for d in at.dataframe if twin.name in d.value.columns)
    assert list(side.columns) == [run_dir.name, twin.name] and {best_col, last_col} <= set(side.index)
    assert at.selectbox(key="runs_detail").options == [run_dir.name, twin.name]


def test_a_failed_launch_shows_its_error_not_a_traceback(tmp_path, runs):
    one_class = make_folders(tmp_path / "pets", per_class=4)
    for p in (one_class / "dog").iterdir():
        p.unlink()
    (one_class / "dog").rmdir()
    at = open_app(one_class, "train", **TINY)
    at.button(key="t.start").click().run()
    assert wait_until_finished(runs).state == "failed"
    at.run()
    assert_clean(at)
    failure = next(e.value for e in at.error if e.value.startswith("Training failed"))
    assert "at least 2 classes" in failure
    assert "Traceback" not in failure


def test_an_eval_folder_cannot_be_trained_on(tmp_path):
    at = open_app(layout_eval(tmp_path / "eval"), "train")
    assert any("eval** folder" in e.value and "cannot be trained on" in e.value for e in at.error)
    assert at.button(key="t.start").disabled


def test_runs_page_without_runs(tmp_path, monkeypatch, tiny):
    monkeypatch.setenv("MASKLAB_RUNS", str(tmp_path / "none"))
    at = open_app(tiny / "train", "runs")
    assert any("No runs yet" in i.value for i in at.info)
