"""``python -m core health`` end to end, and the Data health page through AppTest."""

from __future__ import annotations

import contextlib
import io
import shutil
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pytest
from apptest import assert_clean, open_app
from PIL import Image

from core.cli import main


def run_cli(argv: list[str]) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(argv)
    return code, out.getvalue(), err.getvalue()


@pytest.fixture(scope="module")
def faulty(demo_root, tmp_path_factory) -> Path:
    """The 30-person demo with a dark photo and one person filed again under a new id."""
    root = tmp_path_factory.mktemp("health-cli") / "demo"
    shutil.copytree(demo_root, root)
    images = root / "train" / "images"
    people = sorted(p for p in images.iterdir() if p.is_dir())
    dark = next(f for f in people[0].iterdir() if f.stem == "mask2")
    cv2.imwrite(str(dark), (cv2.imread(str(dark)) * 0.15).astype(np.uint8))
    twin = images / ("000077" + people[1].name[6:])
    twin.mkdir()
    for f in people[1].iterdir():
        if not f.name.startswith("."):
            Image.open(f).convert("RGB").save(twin / f.name, "JPEG" if f.suffix != ".png" else "PNG")
    pid, gender, race, age = twin.name.split("_")
    with open(root / "train" / "train.csv", "a") as f:
        f.write(f"{pid},{gender},{race},{age},{twin.name}\n")
    return root


def test_cli_writes_the_findings_and_counts_them(faulty, tmp_path):
    out = tmp_path / "health.csv"
    code, stdout, err = run_cli(["health", "--data", str(faulty / "train"), "--eval", str(faulty / "eval"),
                                 "--out", str(out), "--workers", "1"])
    assert code == 0, err
    table = pd.read_csv(out, dtype=str, keep_default_na=False)
    assert list(table.columns) == ["issue", "path", "person", "score", "group"]
    assert table["issue"].tolist() == ["duplicate_person", "duplicate_person", "dark"]
    lines = stdout.splitlines()
    assert lines[0] == f"wrote 3 findings on 217 images and 70 eval images to {out}"
    assert [line.split()[-2:] for line in lines[1:]] == [
        ["duplicate_person", "2"], ["train_eval_overlap", "0"], ["exact_duplicate", "0"], ["near_duplicate", "0"],
        ["dark", "1"], ["light", "0"], ["blurry", "0"], ["low_information", "0"], ["odd_size", "0"],
        ["odd_aspect_ratio", "0"]]
    code, stdout, _ = run_cli(["health", "--data", str(faulty / "train"), "--eval", str(faulty / "eval"),
                               "--out", str(out)])
    assert code == 0 and stdout.splitlines()[0].endswith("(cached)")


@pytest.mark.parametrize("argv, message", [
    (["--out", "{tmp}/h.txt"], ("error: python -m core health: argument --out: '{tmp}/h.txt': must end in .csv; "
                                 "give the path of such a CSV (see --help)")),
    (["--eval", "{tmp}/nope"], ("error: python -m core health: argument --eval: '{tmp}/nope': does not exist; give "
                                 "the path of an existing folder (see --help)")),
    (["--data", "{tmp}"], "error: {tmp}: dataset folder is empty; point to a folder with images"),
])
def test_cli_bad_input_ends_in_one_line(faulty, tmp_path, argv, message):
    argv = [a.format(tmp=tmp_path) for a in argv]
    base = ["health", "--data", str(faulty / "train"), "--out", str(tmp_path / "h.csv")]
    code, stdout, err = run_cli(base + argv)
    assert code == 2 and err.strip() == message.format(tmp=tmp_path) and stdout == ""


def test_cli_makes_the_out_folder_and_a_failed_write_is_one_line(faulty, tmp_path):
    out = tmp_path / "new" / "deeper" / "h.csv"
    code, _, err = run_cli(["health", "--data", str(faulty / "train"), "--out", str(out), "--workers", "1"])
    assert code == 0, err
    assert pd.read_csv(out, dtype=str)["issue"].tolist() == ["duplicate_person", "duplicate_person", "dark"]
    from core.errors import UserError
    from core.health import write_health_csv, write_leave_out

    folder = tmp_path / "a-folder.csv"
    folder.mkdir()  # a folder where the file should go: the write fails after the check
    table = pd.read_csv(out, dtype=str, keep_default_na=False)
    for write, what in ((write_health_csv, "health CSV"), (write_leave_out, "leave-out CSV")):
        with pytest.raises(UserError) as exc:
            write(table if write is write_health_csv else table[["path", "issue"]], folder)
        assert str(exc.value) == (f"cannot write the {what} to {folder}: Is a directory; choose another file "
                                  "in a folder you can write to")


# ----------------------------------------------------------------------------- the page

@pytest.fixture()
def app_env(monkeypatch):
    monkeypatch.setenv("MASKLAB_RAISE", "1")  # unexpected page errors reach at.exception


def test_page_shows_counts_and_groups_and_writes_the_leave_out_file(faulty, tmp_path, app_env):
    leave = tmp_path / "not-yet" / "leave_out.csv"  # the page makes the folder
    at = open_app(faulty / "train", "health", **{"health.leave_csv": str(leave)})
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["One person under two ids"] == "2" and metrics["Too dark"] == "1"
    assert metrics["Eval photos also in training"] == "0" and len(metrics) == 10
    assert any(m.value.startswith("**person-1** · persons ") for m in at.markdown)
    assert at.multiselect(key="health.leave").value == ["duplicate_person", "dark"]
    at.button(key="health.leave_write").click().run()
    assert_clean(at)
    written = pd.read_csv(leave, dtype=str)
    assert written["issue"].tolist() == ["duplicate_person", "dark"]
    assert Path(written["path"].iloc[0]).name.startswith("0000") and Path(written["path"].iloc[1]).stem == "mask2"
    assert [s.value for s in at.success] == [(f"Wrote 2 row(s) to `{leave}`. Train with it: `python -m core "
                                              f"train --data {faulty / 'train'} --leave-out {leave}` (or tick it on "
                                              "the Train page)")]


def test_page_rechecks_when_the_eval_folder_changes(faulty, tmp_path, app_env):
    """The page's results are keyed by the eval folder's files as well as its path: a training
    photo copied into the same eval folder within one session shows up as an overlap."""
    evals = tmp_path / "eval"
    shutil.copytree(faulty / "eval", evals)
    at = open_app(faulty / "train", "health", **{"health.eval": str(evals)})
    overlap = "Eval photos also in training"
    assert {m.label: m.value for m in at.metric}[overlap] == "0"
    photo = next(p for p in sorted((faulty / "train" / "images").iterdir())[3].iterdir() if p.stem == "normal")
    shutil.copy(photo, evals / "images" / "copied.jpg")
    with open(evals / "info.csv", "a") as f:
        f.write("copied.jpg,0\n")
    at.run()
    assert_clean(at)
    assert {m.label: m.value for m in at.metric}[overlap] == "1"
