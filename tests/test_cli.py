"""The CLI end to end: what a user types, what they see, the exit status."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pandas as pd

from core.faces import FACE_COLUMNS
from tests.helpers import layout_folders, layout_train

ROOT = Path(__file__).resolve().parents[1]


def cli(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "core", *args], cwd=cwd or ROOT, capture_output=True, text=True,
                          env={**os.environ, "PYTHONPATH": str(ROOT)}, timeout=300)


def assert_one_line_error(proc: subprocess.CompletedProcess, *fragments: str) -> None:
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), proc.stderr
    assert "Traceback" not in proc.stderr
    for f in fragments:
        assert f in lines[0]


def test_info_reports_layout_counts_and_problems(tmp_path):
    layout_train(tmp_path)
    (tmp_path / "images" / "000001_female_Asian_45" / "mask9.jpg").write_bytes(b"junk")
    proc = cli("info", "--data", str(tmp_path))
    assert proc.returncode == 0, proc.stderr
    assert "layout:  train" in proc.stdout
    assert "images:  21" in proc.stdout and "persons: 3" in proc.stdout
    assert "problems: 1" in proc.stdout and "mask9.jpg: unknown file stem 'mask9'" in proc.stdout


def test_info_with_reported_corrections(tmp_path):
    layout_train(tmp_path, people=("006359_female_Asian_25", "000002_male_Asian_25"))
    proc = cli("info", "--data", str(tmp_path), "--corrections", "reported")
    assert proc.returncode == 0 and "corrected rows: 7" in proc.stdout


def test_bad_input_is_one_line_and_status_2(tmp_path):
    assert_one_line_error(cli("info", "--data", str(tmp_path / "nope")), f"--data: '{tmp_path / 'nope'}': does not exist")
    assert_one_line_error(cli("info"), "--data")
    assert_one_line_error(cli("info", "--data", str(tmp_path), "--corrections", str(tmp_path / "fix.csv")))
    assert_one_line_error(cli("frobnicate"), "invalid choice")
    assert_one_line_error(cli("demo", "--out", str(tmp_path / "d"), "--people", "0"), "people")
    (tmp_path / "afile").write_text("x")
    assert_one_line_error(cli("demo", "--out", str(tmp_path / "afile")), "is a file; give the path of an output folder")
    (tmp_path / "bin.csv").write_bytes(bytes(range(256)))
    assert_one_line_error(cli("evaluate", "--pred", str(tmp_path / "bin.csv"), "--gt", str(tmp_path / "bin.csv")),
                          "holds binary data, not an answers CSV")


def test_faces_writes_path_and_box_columns(demo_root, tmp_path):
    out = tmp_path / "faces.csv"
    proc = cli("faces", "--data", str(demo_root / "eval"), "--out", str(out))
    assert proc.returncode == 0, proc.stderr
    table = pd.read_csv(out)
    assert list(table.columns) == FACE_COLUMNS  # path,x,y,w,h,source, then confidence and landmarks
    assert len(table) == len(pd.read_csv(demo_root / "eval" / "info.csv"))
    assert set(table["source"]) <= {"mtcnn", "haar", "none"}  # an eval set has no persons: no fallback
    found = table["source"] != "none"
    assert table.loc[found, ["x", "y", "w", "h"]].notna().all().all()
    assert table.loc[~found, ["x", "y", "w", "h"]].isna().all().all()
    raw = out.read_text().splitlines()[1:]
    assert all(",,,,,none," in line for line in raw if ",none," in line)  # empty fields where no face, not 'nan'
    assert "faces found (Not wear)" in proc.stdout


def test_demo_then_info_round_trip(tmp_path):
    proc = cli("demo", "--out", str(tmp_path / "d"), "--people", "4", "--eval-people", "2", "--seed", "3")
    assert proc.returncode == 0, proc.stderr
    info = cli("info", "--data", str(tmp_path / "d" / "train"))
    assert "layout:  train" in info.stdout and "images:  28" in info.stdout and "persons: 4" in info.stdout
    ev = cli("info", "--data", str(tmp_path / "d" / "eval"))
    assert "layout:  eval" in ev.stdout and "images:  14" in ev.stdout


def test_core_never_imports_streamlit():
    files = [p.relative_to(ROOT).with_suffix("") for p in (ROOT / "core").rglob("*.py") if p.stem != "__main__"]
    modules = [".".join(f.parts[:-1] if f.name == "__init__" else f.parts) for f in files]  # packages too
    assert "core.training.trainer" in modules and "core.demo.writing" in modules
    code = f"import sys, {', '.join(modules)}; print('streamlit' in sys.modules)"
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "False"


def test_the_parser_and_the_config_load_without_torch(tmp_path):
    """Every flag comes from the rule book and TrainConfig's field rules, which import no torch
    (seconds), so --help, demo, info and faces start at once."""
    code = ("import sys; from core.cli import build_parser; "
            f"a = build_parser().parse_args(['train', '--data', {str(tmp_path)!r}, '--epochs', '3']); "
            "print('torch' in sys.modules, 'core.training.config' in sys.modules, a.epochs)")
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.stdout.strip() == "False True 3", done.stderr


def test_a_logged_progress_bar_writes_a_line_per_tenth_and_no_rate_for_an_instant_finish(capsys, monkeypatch):
    """Redirected stderr (a log file): one line per tenth of the way; a run that finds everything
    cached reports 100 % at once, without a rate of millions of images a second."""
    from core.cli.util import progress_bar

    monkeypatch.setattr(sys.stderr, "isatty", lambda: False)
    instant = progress_bar("images")
    instant(1890, 1890)
    line = capsys.readouterr().err.strip()
    assert line.startswith("images: 100%") and "1890/1890" in line and "?it/s" in line
    steps = progress_bar("demo")
    for done in range(0, 101):
        steps(done, 100)
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 11 and lines[-1].startswith("demo: 100%")


def test_train_faces_and_health_say_which_files_the_scan_left_out(tmp_path):
    """A file that is not an image is skipped, not fatal, and each command that reads the
    dataset says so in one line naming it, where `info` would list them all."""
    data = layout_folders(tmp_path / "data", per_class=6)
    (data / "cat" / "broken.png").write_bytes(b"not a png")
    note = f"1 file(s) left out of the index of {data}, e.g. {data / 'cat' / 'broken.png'}: not an image"
    faces = cli("faces", "--data", str(data), "--out", str(tmp_path / "faces.csv"), "--workers", "1")
    health = cli("health", "--data", str(data), "--out", str(tmp_path / "health.csv"), "--workers", "1")
    train = cli("train", "--data", str(data), "--epochs", "1", "--out", str(tmp_path / "runs"), "--workers", "1")
    for proc in (faces, health, train):
        assert proc.returncode == 0, proc.stderr
        said = proc.stdout + proc.stderr  # (train's progress and notes go to stderr)
        assert note in said and f"python -m core info --data {data}" in said
    assert "12 rows" in faces.stdout and "on 12 images" in health.stdout
    run = Path(next(l for l in train.stdout.splitlines() if l.startswith("run: ")).removeprefix("run: "))
    assert note in (run / "train.log").read_text()
