"""python -m core faces end to end: the detector flag, the columns written, a bad detector."""

from __future__ import annotations

import pandas as pd
from test_cli import assert_one_line_error, cli

from core.faces import FACE_COLUMNS


def test_faces_writes_sources_landmarks_and_the_person_fallback(demo_root, tmp_path):
    out = tmp_path / "f.csv"
    proc = cli("faces", "--data", str(demo_root / "train"), "--detector", "mtcnn", "--out", str(out))
    assert proc.returncode == 0, proc.stderr
    table = pd.read_csv(out, keep_default_na=False, na_values={"x": [""], "confidence": [""], "nose_x": [""]})
    assert list(table.columns) == FACE_COLUMNS
    assert len(table) == 210 and set(table["source"]) <= {"mtcnn", "person", "none"}
    assert (table["source"] == "person").any()  # masked photos MTCNN missed take their person's box
    mtcnn = table[table["source"] == "mtcnn"]
    assert mtcnn["confidence"].notna().all() and mtcnn["nose_x"].notna().all()
    borrowed = table[table["source"] == "person"]
    assert borrowed["x"].notna().all() and borrowed["confidence"].isna().all() and borrowed["nose_x"].isna().all()
    assert "wrote 210 rows" in proc.stdout and "(detector: mtcnn)" in proc.stdout
    assert "faces found (Not wear): 100.0% of 30" in proc.stdout
    assert f"boxed by person: {(table['source'] == 'person').mean():.1%}" in proc.stdout


def test_a_bad_detector_is_one_line_naming_the_flag(demo_root, tmp_path):
    proc = cli("faces", "--data", str(demo_root / "train"), "--detector", "retina", "--out", str(tmp_path / "f.csv"))
    assert_one_line_error(proc, "--detector", "'retina'", "haar, mtcnn, both")
    assert not (tmp_path / "f.csv").exists()


def test_faces_makes_the_out_folder(demo_root, tmp_path):
    out = tmp_path / "not" / "yet" / "f.csv"
    proc = cli("faces", "--data", str(demo_root / "train"), "--detector", "mtcnn", "--out", str(out))
    assert proc.returncode == 0, proc.stderr
    assert len(pd.read_csv(out)) == 210
