"""The readers of run directories the app uses (core.runs), on hand-written run files."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from core.errors import UserError
from core.runs import (epoch_curves, fold_count, metrics_frame, read_json, read_metrics, read_summary, read_table,
                       run_overview, run_scores, submission_path)


def record(fold: int, epoch: int, f1: float, acc: float = 0.5) -> dict:
    return {"fold": fold, "epoch": epoch, "train_loss": 1.0 / epoch, "val_loss": 2.0 / epoch, "accuracy": acc,
            "macro_f1": f1, "lr": 0.001, "best": False}


def make_run(root: Path, records: list[dict], folds: int = 0, summary: dict | None = None) -> Path:
    run = root / "20260101-000000-smallcnn-ab12"
    run.mkdir(parents=True)
    (run / "config.json").write_text(json.dumps({"config": {"model": "smallcnn", "epochs": 3, "folds": folds},
                                                 "created": "2026-01-01 00:00"}))
    (run / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    if summary is not None:
        (run / "summary.json").write_text(json.dumps(summary))
    return run


def test_one_split_best_epoch_is_labelled_apart_from_the_last(tmp_path):
    run = make_run(tmp_path, [record(0, 1, 0.4), record(0, 2, 0.7), record(0, 3, 0.6, acc=0.8)],
                   summary={"macro_f1": 0.71, "accuracy": 0.75, "scope": "validation", "best_epochs": [2]})
    s = run_scores(run)
    assert (s.scope, s.best_f1, s.best_epochs, s.accuracy, s.final) == ("validation", 0.71, [2], 0.75, True)
    assert (s.last_f1, s.last_epochs) == (0.6, [3])  # what nothing was picked on
    row = run_overview(run)
    assert row == {"run": run.name, "model": "smallcnn", "epochs": "3/3", "best_f1": 0.71, "best_epochs": "2",
                   "last_f1": 0.6, "accuracy": 0.75, "created": "2026-01-01 00:00"}


def test_folds_while_running_use_metrics_only(tmp_path):
    run = make_run(tmp_path, [record(0, 1, 0.2), record(0, 2, 0.6), record(1, 1, 0.5)], folds=2)
    s = run_scores(run)
    assert s.scope == "out-of-fold" and not s.final
    assert s.best_epochs == [2, 1] and s.best_f1 == pytest.approx((0.6 + 0.5) / 2)
    assert s.last_epochs == [2, 1] and s.last_f1 == pytest.approx((0.6 + 0.5) / 2)
    assert run_overview(run)["epochs"] == "1/3"  # the slowest fold
    assert fold_count(run) == 2
    curves = epoch_curves(run)
    assert list(curves["epoch"]) == [1, 2]
    assert curves.loc[0, "macro_f1"] == pytest.approx(0.35)  # mean over the folds at epoch 1
    assert read_summary(run) == {}


def test_a_run_before_its_first_epoch(tmp_path):
    run = make_run(tmp_path, [])
    assert metrics_frame(run).empty and list(metrics_frame(run).columns)[:2] == ["fold", "epoch"]
    assert epoch_curves(run).empty
    s = run_scores(run)
    assert (s.best_f1, s.last_f1, s.best_epochs, s.last_epochs) == (None, None, [], [])
    assert run_overview(run)["epochs"] == "0/3"
    assert read_table(run, "confusion_matrix.csv") is None
    assert fold_count(run) == 1


def test_metrics_line_being_written_is_left_for_the_next_read(tmp_path):
    run = make_run(tmp_path, [record(0, 1, 0.4)])
    with open(run / "metrics.jsonl", "a") as fh:
        fh.write('{"fold": 0, "epoch": 2, "macro_')  # the trainer is in the middle of this line
    assert [r["epoch"] for r in read_metrics(run)] == [1]


def test_damaged_run_files_name_the_file(tmp_path):
    run = make_run(tmp_path, [record(0, 1, 0.4)])
    (run / "metrics.jsonl").write_text("garbage\n" + json.dumps(record(0, 2, 0.5)) + "\n")
    with pytest.raises(UserError, match=r"metrics.jsonl line 1: not a JSON record"):
        read_metrics(run)
    (run / "summary.json").write_text("{not json")
    with pytest.raises(UserError, match=r"summary.json: cannot be read as JSON"):
        read_summary(run)
    assert read_json(run / "missing.json", missing={"a": 1}) == {"a": 1}
    with pytest.raises(UserError, match="missing.json"):
        read_json(run / "missing.json")


def test_reports_and_submission_paths(tmp_path):
    run = make_run(tmp_path, [record(0, 1, 0.4)])
    (run / "confusion_matrix.csv").write_text("true \\ pred,a,b\na,3,1\nb,0,4\n")
    conf = read_table(run, "confusion_matrix.csv", index_col=0)
    assert conf.loc["a", "b"] == 1 and list(conf.columns) == ["a", "b"]
    one, other = submission_path(run, tmp_path / "x" / "eval"), submission_path(run, tmp_path / "y" / "eval")
    assert one.parent == run and one.name.startswith("submission-eval-") and one.suffix == ".csv"
    assert one != other and one == submission_path(run, tmp_path / "x" / "eval")


# ----------------------------------------------------------------------------- foreign and partial run folders

FOREIGN = {
    "a JSON list": b"[1, 2, 3]",
    "another tool's config": b'{"model": {"name": "bert"}, "lr": 0.1}',
    "binary bytes": b"\x00\xff\xfe garbage",
    "latin-1 text": "{\"config\": {\"model\": \"caf\xe9\"}}".encode("latin-1"),
    "folds that are not a count": b'{"config": {"folds": "three"}}',
    "nested past the recursion limit": b"[" * 100_000,
}


@pytest.mark.parametrize("kind", FOREIGN)
def test_every_reader_refuses_a_foreign_run_folder_the_same_way(tmp_path, kind, capsys):
    from core import launch
    from core.cli import main
    from core.runs import checkpoint_paths, read_config

    run = tmp_path / "not-ours"
    run.mkdir()
    (run / "config.json").write_bytes(FOREIGN[kind])
    for read in (read_config, fold_count, run_overview, checkpoint_paths):
        with pytest.raises(UserError, match="config.json"):
            read(run)
    for argv in (["predict", "--run", str(run), "--data", str(tmp_path)], ["train", "--resume", str(run)],
                 ["label-issues", "--data", str(tmp_path), "--run", str(run)]):
        assert main(argv) == 2, argv
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and "config.json" in err[0] and "Traceback" not in err[0], (argv, err)
    assert launch.run_state(run).state == "failed"  # no live trainer: never shown as running


def test_a_foreign_metrics_or_status_file_is_named(tmp_path):
    run = make_run(tmp_path, [record(0, 1, 0.4)])
    (run / "metrics.jsonl").write_text('{"loss": 1}\n')
    with pytest.raises(UserError, match=r"metrics.jsonl line 1: not a masklab metrics record"):
        run_scores(run)
    (run / "status.json").write_bytes(b"\xff\xfe")
    from core import launch

    state = launch.run_state(run)
    assert state.state == "failed" and "status.json" in state.message
