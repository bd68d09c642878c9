"""The dataset scan: three layouts, the label encoding, corrections and every bad-input rule."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from core import labels
from core.dataset import REPORTED_CORRECTIONS, apply_corrections, load_corrections, scan
from core.errors import DatasetError
from tests.helpers import layout_eval, layout_folders, layout_train, make_person, write_image


def problems_text(ds) -> str:
    return "\n".join(str(p) for p in ds.problems)


# ----------------------------------------------------------------------------- encoding

def test_class_encoding_is_the_competitions():
    assert labels.encode(0, 0, 0) == 0
    assert labels.encode(2, 1, 2) == 17
    assert labels.encode(1, 1, 0) == 9  # incorrect, female, <30
    assert [labels.age_group(a) for a in (18, 29, 30, 59, 60, 75)] == [0, 0, 1, 1, 2, 2]
    for c in range(labels.NUM_CLASSES):
        assert labels.encode(*labels.decode(c)) == c
    assert labels.class_name(4) == "Wear · Female · 30-59"


# ----------------------------------------------------------------------------- layouts

def test_train_layout_labels_every_photo(tmp_path):
    ds = scan(layout_train(tmp_path))
    assert ds.layout == "train"
    assert len(ds.df) == 21 and ds.df["person"].nunique() == 3
    female45 = ds.df[ds.df.person == "000001"].set_index("stem")
    assert female45.loc["mask3", "label"] == labels.encode(0, 1, 1)
    assert female45.loc["incorrect_mask", "label"] == labels.encode(1, 1, 1)
    assert female45.loc["normal", "label"] == labels.encode(2, 1, 1)
    assert female45.loc["normal", "label_name"] == "Not wear · Female · 30-59"
    sixty = ds.df[ds.df.person == "000003"]
    assert set(sixty["age_group"]) == {2}
    assert ds.problems == []


def test_train_layout_from_the_images_folder_itself(tmp_path):
    layout_train(tmp_path, csv=False)
    ds = scan(tmp_path / "images")
    assert ds.layout == "train" and len(ds.df) == 21


def test_hidden_appledouble_files_are_skipped_and_extensions_mixed(tmp_path):
    images = tmp_path / "images"
    make_person(images, "000001_female_Asian_45", ext=".jpeg")
    make_person(images, "000002_male_Asian_20", ext=".png")
    (images / "000001_female_Asian_45" / "._mask1.jpeg").write_bytes(b"\x00\x05\x16\x07" + b"\x00" * 60)
    ds = scan(tmp_path)
    assert len(ds.df) == 14 and ds.skipped_hidden == 1 and ds.problems == []
    assert not ds.df["path"].str.contains("/._").any()


def test_eval_layout_with_and_without_ground_truth(tmp_path):
    ds = scan(layout_eval(tmp_path / "e1", answers=(0, 7, 17)))
    assert ds.layout == "eval"
    assert list(ds.df["image_id"]) == ["img000.jpg", "img001.jpg", "img002.jpg"]
    assert list(ds.df["label"]) == [0, 7, 17]
    assert ds.df.loc[1, "label_name"] == labels.class_name(7)
    ds2 = scan(layout_eval(tmp_path / "e2", gt=False))
    assert list(ds2.df["label"]) == [-1, -1, -1] and not ds2.has_labels


def test_folder_per_class_layout(tmp_path):
    ds = scan(layout_folders(tmp_path, classes=("cat", "dog", "emu"), per_class=2))
    assert ds.layout == "folders"
    assert ds.class_names == ["cat", "dog", "emu"]
    assert sorted(ds.df["label_name"].unique()) == ["cat", "dog", "emu"]
    assert (ds.df["mask"] == -1).all()


# ----------------------------------------------------------------------------- bad input

def test_missing_root(tmp_path):
    with pytest.raises(DatasetError, match=r"does-not-exist: dataset folder does not exist"):
        scan(tmp_path / "does-not-exist")


def test_empty_root(tmp_path):
    with pytest.raises(DatasetError, match="dataset folder is empty"):
        scan(tmp_path)


def test_layout_matching_none(tmp_path):
    (tmp_path / "notes.txt").write_text("hello")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "readme.md").write_text("x")
    with pytest.raises(DatasetError, match="matches none of the supported layouts"):
        scan(tmp_path)


def test_folder_name_that_does_not_parse(tmp_path):
    images = layout_train(tmp_path, csv=False) / "images"
    make_person(images, "000010_female_Asian_old")
    make_person(images, "000011_robot_Asian_40")
    make_person(images, "just-a-folder")
    text = problems_text(scan(tmp_path))
    assert "000010_female_Asian_old: age in the folder name 'old': must be a whole number from 0 to 120" in text
    assert "000011_robot_Asian_40: unknown gender 'robot'" in text
    assert "just-a-folder: folder name does not parse as <id>_<gender>_<race>_<age>" in text


def test_unknown_file_stem(tmp_path):
    layout_train(tmp_path)
    write_image(tmp_path / "images" / "000001_female_Asian_45" / "mask6.jpg")
    ds = scan(tmp_path)
    assert "mask6.jpg: unknown file stem 'mask6'" in problems_text(ds)
    assert len(ds.df) == 21


def test_duplicate_person(tmp_path):
    layout_train(tmp_path, csv=False)
    make_person(tmp_path / "images", "000001_male_Asian_45")
    ds = scan(tmp_path)
    assert "duplicate person id 000001" in problems_text(ds)
    assert (ds.df.person == "000001").sum() == 7


def test_non_image_file(tmp_path):
    layout_train(tmp_path)
    (tmp_path / "images" / "000002_male_Asian_25" / "notes.txt").write_text("not a photo")
    ds = scan(tmp_path)
    assert "notes.txt: not an image file (allowed: .jpg, .jpeg, .png)" in problems_text(ds)


def test_unreadable_and_truncated_images_are_listed_and_left_out(tmp_path):
    layout_train(tmp_path)
    person = tmp_path / "images" / "000002_male_Asian_25"
    noisy = np.random.default_rng(0).integers(0, 255, (256, 192, 3), dtype=np.uint8)
    Image.fromarray(noisy).save(person / "mask1.jpg")
    good = (person / "mask1.jpg").read_bytes()
    (person / "mask1.jpg").write_bytes(good[: len(good) // 2])  # truncated: opens, fails on load
    with Image.open(person / "mask1.jpg") as im:  # the trap: the header still reads fine
        assert im.size == (192, 256)
    (person / "mask2.jpg").write_bytes(b"this is not a jpeg at all")
    png = write_image(tmp_path / "x.png", fmt="PNG").read_bytes()
    (person / "mask3.png").write_bytes(png[:-20])
    (person / "mask3.jpg").unlink()
    ds = scan(tmp_path)
    text = problems_text(ds)
    assert "mask1.jpg: truncated JPEG" in text
    assert "mask2.jpg: not an image" in text
    assert "mask3.png: truncated PNG" in text
    assert len(ds.df) == 21 - 3
    assert not ds.df["path"].str.contains("000002_male_Asian_25/mask[123]").any()


def test_an_image_over_pils_pixel_limit_is_listed_as_too_large(tmp_path, monkeypatch):
    """PIL refuses to open an image of more than twice MAX_IMAGE_PIXELS (a decompression bomb
    guard); such a file is an image, so the problem says it is too large, not that it is none."""
    layout_train(tmp_path)
    big = tmp_path / "images" / "000002_male_Asian_25" / "mask1.jpg"
    Image.fromarray(np.zeros((256, 192, 3), dtype=np.uint8)).save(big)
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 10_000)  # 49,152 pixels > 2 x 10,000
    ds = scan(tmp_path)
    assert f"{big}: too large to decode: over 20,000 pixels" in problems_text(ds)
    assert len(ds.df) == 20


def test_train_csv_with_missing_columns(tmp_path):
    layout_train(tmp_path, csv=False)
    (tmp_path / "train.csv").write_text("id,gender\n000001,female\n")
    ds = scan(tmp_path)
    assert "train.csv: missing column(s) race, age, path" in problems_text(ds)
    assert len(ds.df) == 21  # still indexed from the folder names


def test_train_csv_and_folders_disagree(tmp_path):
    layout_train(tmp_path)
    with open(tmp_path / "train.csv", "a") as fh:
        fh.write("000009,male,Asian,33,000009_male_Asian_33\n")
    make_person(tmp_path / "images", "000004_male_Asian_50")
    text = problems_text(scan(tmp_path))
    assert "000009_male_Asian_33: listed in train.csv but the folder is missing" in text
    assert "000004_male_Asian_50: not listed in train.csv" in text


def test_eval_info_csv_with_missing_columns(tmp_path):
    layout_eval(tmp_path)
    (tmp_path / "info.csv").write_text("name\nimg000.jpg\n")
    with pytest.raises(DatasetError, match="info.csv.*missing column.*ImageID"):
        scan(tmp_path)


def test_eval_image_listed_but_missing(tmp_path):
    layout_eval(tmp_path)
    (tmp_path / "images" / "img001.jpg").unlink()
    ds = scan(tmp_path)
    assert "img001.jpg: listed in info.csv but the file is missing" in problems_text(ds)
    assert len(ds.df) == 2


# ----------------------------------------------------------------------------- corrections

def test_reported_corrections_file_is_shipped_and_valid():
    table = load_corrections(REPORTED_CORRECTIONS)
    assert {"000020", "004418", "005227", "006359", "006364", "001498-1", "004432"} <= set(table["person"])


def test_corrections_are_applied_and_recorded(tmp_path):
    layout_train(tmp_path, people=("000020_female_Asian_45", "006359_female_Asian_25", "004432_male_Asian_50",
                                 "000007_male_Asian_20"))
    ds = scan(tmp_path, corrections=REPORTED_CORRECTIONS)
    df = ds.df.set_index(["person", "stem"])
    # swapped photos: the file called normal shows an incorrectly worn mask, and vice versa
    assert df.loc[("000020", "normal"), "mask"] == 1 and df.loc[("000020", "incorrect_mask"), "mask"] == 2
    assert df.loc[("000020", "mask1"), "corrected"] == False  # noqa: E712 - numpy bool
    assert (ds.df[ds.df.person == "006359"]["gender_name"] == "Male").all()
    assert (ds.df[ds.df.person == "004432"]["gender_name"] == "Female").all()
    assert df.loc[("006359", "mask1"), "label"] == labels.encode(0, 0, 0)
    assert int(ds.df["corrected"].sum()) == 2 + 7 + 7
    assert not ds.df[ds.df.person == "000007"]["corrected"].any()


def test_bad_corrections_file_names_row_and_rule(tmp_path):
    bad = tmp_path / "fix.csv"
    bad.write_text("person,field,value\n000001,gender,robot\n")
    with pytest.raises(DatasetError, match=r"fix.csv row 2: gender value 'robot': must be one of: male, female"):
        load_corrections(bad)
    bad.write_text("person,what\n000001,x\n")
    with pytest.raises(DatasetError, match="missing column"):
        load_corrections(bad)


def test_apply_corrections_ignores_unknown_persons(tmp_path):
    ds = scan(layout_train(tmp_path))
    fixes = pd.DataFrame({"person": ["999999"], "field": ["gender"], "value": ["male"]})
    out = apply_corrections(ds.df, fixes)
    assert not out["corrected"].any() and (out["label"] == ds.df["label"]).all()
