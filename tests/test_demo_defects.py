"""Planted data faults in the demo (``--defects``): the truth beside train/, one of each kind, the
demo unchanged without them, and the health check finding every one on a tiny planted demo."""

from __future__ import annotations

import hashlib
import io
from contextlib import redirect_stdout
from pathlib import Path

import pandas as pd
import pytest

from core import demo
from core.cli import main
from core.demo.defects import KINDS, TRUTH_COLUMNS, TRUTH_FILE, score_findings
from core.health import check_health

PEOPLE, SEED, RATE = 20, 2, 0.5  # 10 faults: every kind once


@pytest.fixture(scope="module")
def planted(tmp_path_factory) -> tuple[Path, dict, pd.DataFrame]:
    root = tmp_path_factory.mktemp("defects") / "demo"
    summary = demo.make_demo(root, people=PEOPLE, seed=SEED, eval_people=3, workers=1, defect_rate=RATE)
    return root, summary, pd.read_csv(root / TRUTH_FILE, dtype=str, keep_default_na=False)


def tree(root: Path) -> dict[str, str]:
    return {str(f.relative_to(root)): hashlib.sha1(f.read_bytes()).hexdigest() for f in sorted(root.rglob("*"))
            if f.is_file()}


def test_without_faults_the_demo_is_byte_identical(tmp_path):
    demo.make_demo(tmp_path / "plain", people=8, seed=4, eval_people=2, workers=1)
    summary = demo.make_demo(tmp_path / "zero", people=8, seed=4, eval_people=2, workers=1, defect_rate=0.0)
    assert tree(tmp_path / "plain") == tree(tmp_path / "zero")
    assert summary["defects_file"] is None and sum(summary["defects"].values()) == 0


def test_each_kind_is_planted_once_with_its_truth_beside_train(planted):
    root, summary, truth = planted
    assert summary["defects"] == dict.fromkeys(KINDS, 1)
    assert summary["defects_file"] == str(root / TRUTH_FILE)
    assert list(truth.columns) == list(TRUTH_COLUMNS)
    assert [f for sub in ("train", "eval") for f in (root / sub).rglob("*") if "defect" in f.name] == []
    assert truth.groupby("issue").size().to_dict() == {
        "exact_duplicate": 2, "near_duplicate": 2, "duplicate_person": 2, "train_eval_overlap": 1, "dark": 1,
        "light": 1, "blurry": 1, "low_information": 1, "odd_size": 1, "odd_aspect_ratio": 1}
    assert all((root / p).exists() for p in truth["path"])


def test_the_planted_person_and_eval_photo_are_listed_like_any_other(planted):
    root, summary, truth = planted
    twin = truth[(truth.issue == "duplicate_person") & (truth.detail != "the original")].iloc[0]
    listed = pd.read_csv(root / "train" / "train.csv", dtype=str)
    assert len(listed) == PEOPLE + 1 and Path(twin.path).name in set(listed["path"])
    assert summary["train_images"] == 7 * (PEOPLE + 1)
    copied = Path(truth[truth.issue == "train_eval_overlap"].path.iloc[0]).name
    for name in ("info.csv", "gt.csv"):
        assert copied in set(pd.read_csv(root / "eval" / name, dtype=str)["ImageID"])


def test_the_health_check_finds_every_planted_fault(planted):
    root, _, truth = planted
    result = check_health(root / "train", root / "eval", workers=1)
    score = score_findings(truth, result.findings, root)
    assert score[["issue", "planted", "found", "right"]].values.tolist() == [
        ["exact_duplicate", 2, 2, 2], ["near_duplicate", 2, 2, 2], ["duplicate_person", 2, 2, 2],
        ["train_eval_overlap", 1, 1, 1], ["dark", 1, 1, 1], ["light", 1, 1, 1], ["blurry", 1, 1, 1],
        ["low_information", 1, 1, 1], ["odd_size", 1, 1, 1], ["odd_aspect_ratio", 1, 1, 1]]


def test_the_cli_plants_them_and_says_where_the_truth_is(tmp_path):
    out = io.StringIO()
    with redirect_stdout(out):
        assert main(["demo", "--out", str(tmp_path / "d"), "--people", "10", "--eval-people", "2", "--workers", "1",
                     "--defects", "0.3"]) == 0
    assert out.getvalue().splitlines()[-1] == (
        "  planted data faults: 3 (1 duplicate_person, 1 train_eval_overlap, 1 dark); truth: "
        f"{tmp_path / 'd' / TRUTH_FILE}")
