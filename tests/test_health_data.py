"""What training does with a health check: the leave-out file the dataset layer reads (nothing is
deleted), and a run that keeps duplicated persons in one fold and records both in config.json."""

from __future__ import annotations

import json

import pandas as pd
import pytest
from tests.helpers import layout_train, tiny_recipe
from tests.helpers import make_train as make_tiny

from core.dataset import scan
from core.errors import DatasetError, UserError
from core.training import TrainConfig, train

PEOPLE = ("000001_female_Asian_45", "000002_male_Asian_25", "000003_female_Asian_60")


@pytest.fixture()
def data(tmp_path):
    return layout_train(tmp_path / "train", people=PEOPLE)


def leave_out(path, rows) -> str:
    pd.DataFrame(rows, columns=["path", "issue"]).to_csv(path, index=False)
    return str(path)


def test_the_dataset_layer_leaves_out_listed_photos_and_folders(data, tmp_path):
    photo = data / "images" / PEOPLE[0] / "mask2.jpg"
    listed = leave_out(tmp_path / "leave_out.csv", [(str(photo), "dark"), (f"images/{PEOPLE[1]}", "duplicate_person")])
    ds = scan(data, leave_out=listed)
    assert ds.left_out == 8 and len(ds.df) == 3 * 7 - 8 and ds.problems == []
    assert str(photo) not in set(ds.df["path"]) and PEOPLE[1][:6] not in set(ds.df["person"])
    assert photo.is_file() and (data / "images" / PEOPLE[1]).is_dir()  # nothing deleted
    assert len(scan(data).df) == 3 * 7 and scan(data).left_out == 0  # without the file, everything


def test_a_listed_path_missing_from_the_dataset_is_a_problem(data, tmp_path):
    gone = data / "images" / "000009_male_Asian_30" / "mask1.jpg"
    listed = leave_out(tmp_path / "leave_out.csv", [(str(gone), "blurry")])
    ds = scan(data, leave_out=listed)
    assert ds.left_out == 0
    assert [str(p) for p in ds.problems] == [(f"{gone}: listed in the leave-out file {listed} but not in the dataset; "
                                              "remove the row or check the dataset folder")]


def test_a_listed_folder_leaves_out_every_image_under_it_at_any_depth(data, tmp_path):
    """Any folder inside the dataset folder leaves out every image below it, however deep: the
    competition's images/ folder is two levels above its photos. A folder outside the dataset (one
    that holds the dataset folder) matches nothing and is reported."""
    everyone = leave_out(tmp_path / "images.csv", [("images", "dark")])
    with pytest.raises(DatasetError) as err:
        scan(data, leave_out=everyone)
    assert str(err.value) == f"{everyone}: leaves out every image of {data}; nothing is left to use"
    above = leave_out(tmp_path / "above.csv", [(str(tmp_path), "dark"), (f"images/{PEOPLE[2]}", "dark")])
    ds = scan(data, leave_out=above)
    assert ds.left_out == 7 and len(ds.df) == 2 * 7
    assert [str(p) for p in ds.problems] == [(f"{tmp_path}: listed in the leave-out file {above} but not in the "
                                              "dataset; remove the row or check the dataset folder")]


def test_bad_leave_out_files_are_refused_in_one_line(data, tmp_path):
    bad = tmp_path / "bad.csv"
    bad.write_text("photo,issue\nx.jpg,dark\n")
    with pytest.raises(DatasetError) as err:
        scan(data, leave_out=bad)
    assert str(err.value) == (f"{bad}: missing column(s) path; a leave-out CSV has the columns path,issue; the Data "
                              "health page writes one (see docs/health.md)")
    everyone = leave_out(tmp_path / "all.csv", [(f"images/{p}", "dark") for p in PEOPLE])
    with pytest.raises(DatasetError) as err:
        scan(data, leave_out=everyone)
    assert str(err.value) == f"{everyone}: leaves out every image of {data}; nothing is left to use"


def test_a_run_keeps_duplicated_persons_in_one_fold_and_records_it(tmp_path):
    data = make_tiny(tmp_path / "train", people=12)
    health = tmp_path / "health.csv"
    images = data / "images"
    folders = sorted(p.name for p in images.iterdir())
    pd.DataFrame({"issue": ["duplicate_person"] * 2 + ["near_duplicate"] * 2,
                  "path": [str(images / folders[0]), str(images / folders[5]), str(images / folders[2] / "mask1.jpg"),
                           str(images / folders[9] / "normal.jpg")],
                  "person": [folders[0][:6], folders[5][:6], folders[2][:6], folders[9][:6]],
                  "score": [0.99, 0.99, 0.97, 0.97], "group": ["person-1", "person-1", "near-1", "near-1"]}
                 ).to_csv(health, index=False)
    left = leave_out(tmp_path / "leave_out.csv", [(str(images / folders[3] / "mask4.jpg"), "blurry"),
                                                  (str(images / folders[4] / "normal.jpg"), "dark")])
    run = train(TrainConfig(data=str(data), recipe=str(tiny_recipe(tmp_path / "recipe.json")), out=str(tmp_path / "runs"),
                            model="smallcnn", epochs=1, batch_size=16, folds=3, seed=0, workers=1,
                            health=str(health), leave_out=left))
    config = json.loads((run / "config.json").read_text())
    assert config["config"]["health"] == str(health) and config["config"]["leave_out"] == left
    assert config["dataset"]["health"] == {"file": str(health), "groups": 2, "persons": 4}
    assert config["dataset"]["left_out"] == {"file": left, "images": 2}
    files = pd.read_csv(run / "dataset_files.csv", dtype={"path": str})
    assert len(files) == 12 * 7 - 2
    files["person"] = files["path"].str.extract(r"images/(\d{6})_")[0]
    fold = files.groupby("person")["val_fold"].unique()
    for a, b in ((0, 5), (2, 9)):
        assert list(fold[folders[a][:6]]) == list(fold[folders[b][:6]])
    assert "--health" in config["command"] and "--leave-out" in config["command"]


def test_a_missing_health_or_leave_out_file_is_named_before_the_run_starts(tmp_path):
    data = make_tiny(tmp_path / "train", people=4)
    for field, how in (("health", "python -m core health writes one"), ("leave_out", "the Data health page writes one")):
        with pytest.raises(UserError) as err:
            train(TrainConfig(data=str(data), out=str(tmp_path / "runs"), epochs=1, workers=1,
                              **{field: str(tmp_path / "nope.csv")}))
        flag = "--" + field.replace("_", "-")
        assert str(err.value) == (f"{flag} '{tmp_path / 'nope.csv'}': does not exist; give the path of an existing "
                                  f"file ending in .csv ({how})")
        assert not (tmp_path / "runs").exists()  # refused before any run directory was made


def _health_file(path, folders, issue="duplicate_person") -> str:
    pd.DataFrame({"issue": [issue] * len(folders), "path": [str(f) for f in folders],
                  "person": [f.name[:6] for f in folders], "score": [0.99] * len(folders),
                  "group": ["person-1"] * len(folders)}).to_csv(path, index=False)
    return str(path)


def test_a_health_file_that_ties_every_person_together_is_named(tmp_path):
    data = make_tiny(tmp_path / "train", people=4)
    health = _health_file(tmp_path / "health.csv", sorted((data / "images").iterdir()))
    with pytest.raises(UserError) as err:
        train(TrainConfig(data=str(data), out=str(tmp_path / "runs"), epochs=1, workers=1, health=health))
    assert str(err.value) == (f"--health {health}: it ties all 4 persons of {data} into one group (persons whose "
                              "photos are copies of each other share a fold), so none is left for validation; check "
                              f"that it was written for this dataset (python -m core health --data {data}) or leave "
                              "--health out")
    assert not (tmp_path / "runs").exists()


def test_a_health_file_of_another_dataset_is_refused(tmp_path):
    """Two datasets with the same person ids: a health.csv of one must not group the other's persons."""
    data = make_tiny(tmp_path / "train", people=6)
    other = make_tiny(tmp_path / "other" / "train", people=6)
    twins = sorted((other / "images").iterdir())[:2]
    health = _health_file(tmp_path / "health.csv", twins)
    with pytest.raises(UserError) as err:
        train(TrainConfig(data=str(data), out=str(tmp_path / "runs"), epochs=1, workers=1, health=health))
    assert str(err.value) == (f"--health {health}: row 2 names {twins[0]}, outside the dataset folder {data}; a "
                              "health CSV is used only with the dataset it was written for: python -m core health "
                              f"--data {data} writes one")
    assert not (tmp_path / "runs").exists()
    from core.training.data import health_groups

    link = tmp_path / "link"
    link.symlink_to(data)  # the same dataset reached through a link is still itself
    mine = [link / "images" / f.name for f in twins]
    ds = scan(data)
    tied = health_groups(_health_file(tmp_path / "mine.csv", mine), ds.df, ds.root)
    assert tied == {twins[0].name[:6]: twins[0].name[:6], twins[1].name[:6]: twins[0].name[:6]}


def test_a_run_trained_without_some_photos_is_read_back_without_them(tmp_path):
    """label-issues and the embedding map re-read a run's dataset as the run saw it: with its
    leave-out file, so a run trained with --leave-out is not refused as 'dataset changed'."""
    from core.label_issues import suspects_of

    data = make_tiny(tmp_path / "train", people=8)
    dropped = sorted((data / "images").glob("000001_*/mask3.jpg"))[0]
    listed = leave_out(tmp_path / "leave_out.csv", [(str(dropped), "blurry")])
    run = train(TrainConfig(data=str(data), recipe=str(tiny_recipe(tmp_path / "r.json")), out=str(tmp_path / "runs"),
                            epochs=1, folds=2, batch_size=16, workers=1, leave_out=listed))
    persons, images = suspects_of(run, data)
    assert len(images) == 8 * 7 - 1 and str(dropped) not in set(images["path"])
