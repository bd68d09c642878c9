"""The label-issue finder: cleanlab on out-of-fold probabilities, persons ranked by field, the
planted errors of a tiny noisy dataset found, and accepted suggestions applied by the next scan."""

from __future__ import annotations

import contextlib
import io
import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from core import label_issues as li
from core.cli import main
from core.dataset import scan
from core.errors import UserError
from core.labels import CLASS_NAMES, encode
from tests.helpers import make_train, tiny_recipe

PEOPLE = 24
EPOCHS = "3"  # enough for these colour-coded images (tests/helpers.py) to be learned out of fold
# (person id, kind, given, true) planted into the tiny dataset: the three kinds of the real data.
PLANTED = (("000004", "gender", "male", "female"), ("000008", "age", "45", "22"), ("000014", "swap", "", ""))


def plant(images: Path) -> pd.DataFrame:
    """Plant PLANTED into make_train's folders; the truth in the demo's label_noise.csv form."""
    rows = []
    for pid, kind, given, true in PLANTED:
        folder = next(images.glob(f"{pid}_*"))
        _, gender, race, age = folder.name.split("_")
        if kind == "swap":
            (folder / "normal.jpg").rename(folder / "tmp.jpg")
            (folder / "incorrect_mask.jpg").rename(folder / "normal.jpg")
            (folder / "tmp.jpg").rename(folder / "incorrect_mask.jpg")
            name = folder.name
        else:
            assert (gender if kind == "gender" else age) == true, "PLANTED must match make_train's persons"
            name = "_".join([pid, given if kind == "gender" else gender, race, given if kind == "age" else age])
            folder.rename(images / name)
        rows.append({"person": name, "kind": kind, "field": kind, "given": given, "true": true,
                     "stems": "incorrect_mask;normal" if kind == "swap" else "all"})
    return pd.DataFrame(rows)


@pytest.fixture(scope="module")
def noisy(tmp_path_factory) -> dict:
    base = tmp_path_factory.mktemp("noisy")
    make_train(base / "train", people=PEOPLE)
    plant(base / "train" / "images").to_csv(base / "label_noise.csv", index=False)
    return {"base": base, "train": base / "train", "truth": base / "label_noise.csv",
            "recipe": tiny_recipe(base / "recipe.json")}


@pytest.fixture(scope="module")
def finder(noisy) -> dict:
    """``label-issues`` without --run: it trains its own 3-fold run, then ranks."""
    out, printed = noisy["base"] / "suspects.csv", io.StringIO()
    with contextlib.redirect_stdout(printed), contextlib.redirect_stderr(io.StringIO()):
        code = main(["label-issues", "--data", str(noisy["train"]), "--out", str(out), "--runs", str(noisy["base"] / "runs"),
                     "--recipe", str(noisy["recipe"]), "--epochs", EPOCHS, "--lr", "0.005", "--workers", "1",
                     "--truth", str(noisy["truth"])])
    assert code == 0
    run = next((noisy["base"] / "runs").iterdir())
    return {"out": out, "run": run, "printed": printed.getvalue(), "persons": pd.read_csv(out, dtype={"person": str}),
            "images": pd.read_csv(out.with_name("suspects_images.csv"))}


def test_finder_ranks_the_planted_persons_first(finder, noisy):
    persons = finder["persons"]
    assert list(persons.columns) == li.PERSON_COLUMNS
    assert json.loads((finder["run"] / "config.json").read_text())["config"]["folds"] == 3  # trained its own
    recall = li.planted_recall(persons, noisy["truth"], times=3)
    assert recall["recall"] >= 0.8, (recall, persons.head(9))
    strict = li.planted_recall(persons, noisy["truth"], times=1)  # here even the top 3 are exactly them
    assert strict["found"] == 3 and strict["field_right"] == 3, persons.head(6)
    top = persons.set_index("person").loc[[p for p, *_ in PLANTED]]
    assert list(top["value"]) == ["female", "29", li.SWAP_VALUE]  # age: the nearest age of the suggested group
    assert persons["score"].is_monotonic_increasing and list(persons["rank"]) == list(range(1, PEOPLE + 1))
    assert "planted persons among the top 9 suspects: 3 of 3" in finder["printed"]


def test_images_are_ranked_by_cleanlab_quality(finder):
    images = finder["images"]
    assert list(images.columns) == li.IMAGE_COLUMNS and len(images) == PEOPLE * 7
    worst = images.head(7 + 7 + 2)  # the wrong gender's and age's 7 photos, the swap's 2
    planted_rows = worst["path"].str.contains("|".join(p for p, *_ in PLANTED))
    assert planted_rows.mean() >= 0.5, worst  # most of the worst images are the planted persons' photos
    assert images["score"].is_monotonic_increasing and images["flagged"].head(3).all()


def test_persons_from_known_probabilities():
    """Without training: a wrong gender, a wrong age and a swap in hand-made probabilities; and a
    pair whose labels a correction already swapped, which the model agrees with (no suspect)."""
    stems = ("mask1", "mask2", "mask3", "mask4", "mask5", "incorrect_mask", "normal")
    rows, probs = [], []
    for i in range(9):
        gender, age = i % 2, i % 3
        for stem in stems:
            mask = {"incorrect_mask": 1, "normal": 2}.get(stem, 0)
            if i == 3:  # labels as a swap correction left them, and the photos agree
                mask = {1: 2, 2: 1}.get(mask, mask)
            seen = (1 - gender if i == 0 else gender, 2 if i == 1 else age,
                    {1: 2, 2: 1}.get(mask, mask) if i == 2 else mask)  # what the photo shows
            p = np.full(18, 0.02 / 17)
            p[encode(seen[2], seen[0], seen[1])] = 0.98
            rows.append({"path": f"/d/images/{i:06d}_x/{stem}.jpg", "person": f"{i:06d}", "stem": stem,
                         "gender": gender, "age": (20, 40, 70)[age], "age_group": age, "mask": mask,
                         "label": encode(mask, gender, age), "fold": i % 3})
            probs.append(p)
    oof = li.OutOfFold(pd.DataFrame(rows), np.array(probs), list(CLASS_NAMES), "train", Path("/r"))
    persons = li.rank_persons(oof)
    top = persons.head(3).set_index("person")
    assert set(top.index) == {"000000", "000001", "000002"}
    assert top.loc["000000", ["field", "value", "suggested"]].tolist() == ["gender", "female", "Female"]
    assert top.loc["000001", ["field", "value"]].tolist() == ["age", "60"]  # 40 -> the nearest age of 60+
    assert top.loc["000002", ["field", "value", "stems"]].tolist() == ["swap", li.SWAP_VALUE, "incorrect_mask;normal"]
    assert top.loc["000002", "given"] == "incorrect_mask: Incorrect, normal: Not wear"
    assert top.loc["000002", "suggested"] == "incorrect_mask: Not wear, normal: Incorrect"
    assert top["flagged"].all() and not persons["flagged"].iloc[3:].any()
    assert persons["score"].iloc[2] < 0.1 < persons["score"].iloc[3]


def test_accepting_writes_a_correction_the_next_scan_applies(noisy, tmp_path):
    csv = tmp_path / "corrections.csv"
    before = scan(noisy["train"]).df.set_index("rel")
    li.accept(csv, "000004", "gender", "female")
    li.accept(csv, "000014", "swap", li.SWAP_VALUE)
    li.accept(csv, "000008", "age", "29")
    li.accept(csv, "000008", "age", "22")  # a second answer for the same field replaces the first
    assert pd.read_csv(csv, dtype=str).values.tolist() == [["000004", "gender", "female"],
                                                           ["000014", "swap", li.SWAP_VALUE],
                                                           ["000008", "age", "22"]]
    after = scan(noisy["train"], corrections=csv).df.set_index("rel")
    changed = after.index[after["label"] != before.loc[after.index, "label"]]
    assert sorted({Path(r).parent.name[:6] for r in changed}) == ["000004", "000008", "000014"]
    p4 = after[after["person"] == "000004"]
    assert (p4["gender_name"] == "Female").all() and p4["corrected"].all()
    p14 = after[after["person"] == "000014"].set_index("stem")
    assert p14.loc["normal", "mask_name"] == "Incorrect" and p14.loc["incorrect_mask", "mask_name"] == "Not wear"
    assert (after.loc[after["person"] == "000008", "age_name"] == "<30").all()

    li.accept(csv, "000014", "swap", li.SWAP_VALUE)  # swapping back: the line goes, not a second swap
    assert "swap" not in set(pd.read_csv(csv, dtype=str)["field"])
    li.withdraw(csv, "000004", "gender")
    assert pd.read_csv(csv, dtype=str)["person"].tolist() == ["000008"]
    with pytest.raises(UserError, match="gender value 'maybe': must be one of: male, female"):
        li.accept(csv, "000001", "gender", "maybe")
    assert pd.read_csv(csv, dtype=str)["person"].tolist() == ["000008"]  # the refused line never landed


def test_review_state_and_dismissals(tmp_path):
    csv = tmp_path / "c.csv"
    suspects = pd.DataFrame({"person": ["000001", "000002", "000003"], "field": ["gender", "age", "swap"],
                             "value": ["male", "29", li.SWAP_VALUE]})
    assert li.review_state(suspects, csv).tolist() == ["open"] * 3
    li.accept(csv, "000001", "gender", "male")
    li.dismiss(csv, "000002", "age", "29")
    li.dismiss(csv, "000002", "age", "29")
    assert li.review_state(suspects, csv).tolist() == ["accepted", "dismissed", "open"]
    assert len(pd.read_csv(li.dismissed_path(csv))) == 1 and li.dismissed_path(csv).name == "c.dismissed.csv"


def test_retrain_config_repeats_the_run_and_baseline_finds_it(finder, tmp_path):
    run = finder["run"]
    cfg, recipe = li.retrain_config(run, tmp_path / "c.csv", tmp_path / "runs")
    stored = json.loads((run / "config.json").read_text())
    assert cfg.folds == 3 and cfg.epochs == int(EPOCHS) and cfg.seed == stored["config"]["seed"]
    assert cfg.corrections == str((tmp_path / "c.csv").resolve()) and recipe["input_size"] == [24, 32]
    later = tmp_path / "later"
    shutil.copytree(run, later, ignore=shutil.ignore_patterns("*.pt"))
    stored["config"]["corrections"], stored["created"] = cfg.corrections, "2999-01-01 00:00:00"
    (later / "config.json").write_text(json.dumps(stored))
    assert li.baseline_run(later, [run, later]) == run
    assert li.baseline_run(run, [run, later]) is None  # the later run is not "before"
    stored["config"]["epochs"] = int(EPOCHS) + 1
    (later / "config.json").write_text(json.dumps(stored))
    assert li.baseline_run(later, [run, later]) is None  # other settings: not comparable


def test_finder_needs_out_of_fold_predictions(finder, noisy, tmp_path, capsys):
    single = tmp_path / "single"
    shutil.copytree(finder["run"], single, ignore=shutil.ignore_patterns("*.pt"))
    table = pd.read_csv(single / "val_predictions.csv")
    table.head(20).to_csv(single / "val_predictions.csv", index=False)
    config = json.loads((single / "config.json").read_text())
    assert main(["label-issues", "--data", str(noisy["train"]), "--run", str(single)]) == 2
    err = capsys.readouterr().err
    assert "predicted 20 images but" in err and "the dataset changed since the run" in err
    config["config"]["folds"] = 0  # a single validation split
    (single / "config.json").write_text(json.dumps(config))
    assert main(["label-issues", "--data", str(noisy["train"]), "--run", str(single)]) == 2
    assert "held-out predictions for 20 of its 168 images" in capsys.readouterr().err
    assert main(["label-issues", "--data", str(noisy["base"]), "--run", str(finder["run"])]) == 2
    assert "was trained on" in capsys.readouterr().err
    assert main(["label-issues", "--data", str(noisy["train"]), "--folds", "1"]) == 2
    assert "--folds: 1: must be a whole number from 2 to 20" in capsys.readouterr().err
