"""Planted label errors in the demo (``--label-noise``): where the truth goes, what changes, and
that the corrections file written beside train/ restores the clean labels through core.dataset."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pandas as pd
import pytest

from core import demo
from core.cli import main
from core.dataset import scan
from core.demo.noise import planted_count
from core.labels import age_group

PEOPLE, SEED, RATE = 20, 5, 0.2  # 4 planted persons: every kind at least once


@pytest.fixture(scope="module")
def pair(tmp_path_factory):
    """The same tiny demo twice, clean and with planted errors, plus the noisy one's truth."""
    root = tmp_path_factory.mktemp("noise")
    demo.make_demo(root / "clean", people=PEOPLE, seed=SEED, eval_people=2, workers=1)
    summary = demo.make_demo(root / "noisy", people=PEOPLE, seed=SEED, eval_people=2, workers=1,
                             label_noise=RATE)
    truth = pd.read_csv(root / "noisy" / demo.TRUTH_FILE, dtype=str)
    return root / "clean", root / "noisy", summary, truth


def tree_hashes(root: Path) -> dict[str, str]:
    return {str(f.relative_to(root)): hashlib.sha1(f.read_bytes()).hexdigest()
            for f in sorted(root.rglob("*")) if f.is_file()}


def folders_by_id(images: Path) -> dict[str, Path]:
    return {d.name[:6]: d for d in images.iterdir()}


def test_truth_lies_beside_train_and_eval_never_inside(pair):
    clean, noisy, summary, truth = pair
    assert (noisy / demo.TRUTH_FILE).is_file() and (noisy / demo.CORRECTIONS_FILE).is_file()
    inside = [f for sub in ("train", "eval") for f in (noisy / sub).rglob("*") if "label_noise" in f.name]
    assert inside == []
    assert not (clean / demo.TRUTH_FILE).exists() and not (clean / demo.CORRECTIONS_FILE).exists()
    assert list(truth.columns) == ["person", "kind", "field", "given", "true", "stems"]
    assert len(truth) == planted_count(PEOPLE, RATE) == 4 == sum(summary["label_noise"].values())
    assert set(truth.kind) == {"swap", "gender", "age"}
    assert summary["label_noise_file"] == str(noisy / demo.TRUTH_FILE)


def test_planted_persons_differ_from_the_clean_demo_and_nobody_else(pair):
    clean, noisy, _, truth = pair
    clean_dirs, noisy_dirs = folders_by_id(clean / "train" / "images"), folders_by_id(noisy / "train" / "images")
    planted = {row.person[:6]: row for row in truth.itertuples()}
    for pid, c in clean_dirs.items():
        n = noisy_dirs[pid]
        files = {f.name: f.read_bytes() for f in c.iterdir()}
        moved = {f.name: f.read_bytes() for f in n.iterdir()}
        row = planted.get(pid)
        if row is None:  # untouched: same name, same bytes (the noise drew from its own stream)
            assert n.name == c.name and moved == files
        elif row.kind == "swap":
            assert n.name == c.name == row.person and row.stems == "incorrect_mask;normal"
            ext = Path(next(iter(files))).suffix
            swapped = {f"normal{ext}": f"incorrect_mask{ext}", f"incorrect_mask{ext}": f"normal{ext}"}
            assert moved == {swapped.get(name, name): data for name, data in files.items()}
        else:  # the labels lie, the photos are the true person's
            field = 1 if row.kind == "gender" else 3
            assert n.name == row.person != c.name and moved == files
            assert n.name.split("_")[field] == row.given and c.name.split("_")[field] == row.true
            if row.kind == "age":
                assert abs(age_group(int(row.given)) - age_group(int(row.true))) == 1
    csvs = [pd.read_csv(d / "train" / "train.csv", dtype=str).set_index("id") for d in (clean, noisy)]
    changed = set(csvs[0].index[(csvs[0] != csvs[1]).any(axis=1)])
    assert changed == {pid for pid, row in planted.items() if row.kind != "swap"}
    assert tree_hashes(clean / "eval") == tree_hashes(noisy / "eval")  # eval is never noisy


def test_corrections_file_restores_the_clean_labels(pair):
    clean, noisy, _, truth = pair
    cols = ["label", "mask", "gender", "age", "age_group"]

    def labels(ds):  # keyed by the photo itself: a swap moves photos between file names
        photo = [hashlib.sha1(Path(p).read_bytes()).hexdigest() for p in ds.df["path"]]
        return ds.df.assign(photo=photo).set_index(["person", "photo"]).sort_index()[cols]

    want = labels(scan(clean / "train"))
    wrong = labels(scan(noisy / "train"))
    fixed = labels(scan(noisy / "train", corrections=noisy / demo.CORRECTIONS_FILE))
    pd.testing.assert_frame_equal(fixed, want)
    differs = (wrong["label"] != want["label"]).groupby(level="person").any()
    assert set(differs[differs].index) == {p[:6] for p in truth.person}


def test_rate_zero_writes_no_truth_and_regenerating_clears_an_old_one(tmp_path):
    noisy = demo.make_demo(tmp_path / "d", people=3, seed=2, eval_people=0, label_noise=0.4)
    assert noisy["label_noise_file"] and (tmp_path / "d" / demo.TRUTH_FILE).is_file()
    again = demo.make_demo(tmp_path / "d", people=3, seed=2, eval_people=0, label_noise=0)
    fresh = demo.make_demo(tmp_path / "e", people=3, seed=2, eval_people=0)
    assert again["label_noise_file"] is None and sum(again["label_noise"].values()) == 0
    assert tree_hashes(tmp_path / "d") == tree_hashes(tmp_path / "e") and fresh["label_noise_file"] is None


@pytest.mark.parametrize("people, rate, n", [(270, 0.02, 5), (20, 0.2, 4), (20, 0.01, 1), (20, 0, 0),
                                             (30, 0.5, 15), (1, 0.5, 1)])
def test_planted_count_is_the_rounded_share_and_at_least_one(people, rate, n):
    assert planted_count(people, rate) == n


def test_cli_prints_the_planted_errors_and_rejects_bad_values(tmp_path, capsys):
    out = tmp_path / "d"
    assert main(["demo", "--out", str(out), "--people", "12", "--eval-people", "0", "--seed", "1",
                 "--workers", "1", "--label-noise", "0.25"]) == 0
    printed = capsys.readouterr().out
    assert "planted label errors: 3 of 12 train persons (1 swap, 1 gender, 1 age)" in printed
    assert str(out / demo.TRUTH_FILE) in printed and str(out / demo.CORRECTIONS_FILE) in printed
    for flag, value, word in (("--label-noise", "0.7", "--label-noise"), ("--workers", "-1", "--workers")):
        assert main(["demo", "--out", str(tmp_path / "x"), "--people", "3", flag, value]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and err[0].startswith("error: ") and word in err[0] and value in err[0]
