"""The health check (core.health) on faults the tests plant themselves: a dark photo, a blurred one,
an exact copy, one person under two ids, an eval photo copied from training; cleanvision's own
checks on images without persons; the cache; the fold groups the splitter reads."""

from __future__ import annotations

import shutil
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pytest
from PIL import Image

from core import rulebook as rb
from core.errors import UserError
from core.health import ISSUES, check_health, fold_groups, leave_out_rows, read_health_csv, write_health_csv
from core.health.findings import COLUMNS


def folders(images: Path) -> list[Path]:
    return sorted(p for p in images.iterdir() if p.is_dir())


def photo(folder: Path, stem: str) -> Path:
    return next(p for p in folder.iterdir() if p.stem == stem)


def rewrite(path: Path, change) -> None:
    img = cv2.imread(str(path))
    cv2.imwrite(str(path), change(img), [cv2.IMWRITE_JPEG_QUALITY, 90])


@pytest.fixture(scope="module")
def planted(demo_root, tmp_path_factory) -> dict:
    """The 30-person demo with one fault of each kind the tests check, and what was planted."""
    root = tmp_path_factory.mktemp("health") / "demo"
    shutil.copytree(demo_root, root)
    images = root / "train" / "images"
    people = folders(images)
    jpgs = [p for p in people if photo(p, "mask1").suffix == ".jpg"]
    dark, blurred, source, target, twin_of, overlap_of = jpgs[:6]
    truth = {"dark": photo(dark, "mask2"), "blurry": photo(blurred, "mask3")}
    rewrite(truth["dark"], lambda img: (img * 0.15).astype(np.uint8))
    rewrite(truth["blurry"], lambda img: cv2.GaussianBlur(img, (0, 0), 5))
    truth["exact"] = (photo(source, "mask1"), photo(target, "mask4"))
    truth["exact"][1].write_bytes(truth["exact"][0].read_bytes())
    # one person under two ids: a new id whose photos are re-encoded copies of another's
    twin = images / ("000099" + twin_of.name[6:])
    twin.mkdir()
    for f in twin_of.iterdir():
        if not f.name.startswith("."):
            Image.open(f).convert("RGB").save(twin / f.name, "JPEG", quality=75)
    pid, gender, race, age = twin.name.split("_")
    with open(root / "train" / "train.csv", "a") as f:
        f.write(f"{pid},{gender},{race},{age},{twin.name}\n")
    truth["twins"] = {twin_of.name[:6], "000099"}
    # an eval photo that is a training photo, resized and re-encoded
    copied = photo(overlap_of, "normal")
    Image.open(copied).convert("RGB").resize((288, 384)).save(root / "eval" / "images" / "copied.jpg", quality=80)
    for name in ("info.csv", "gt.csv"):
        with open(root / "eval" / name, "a") as f:
            f.write("copied.jpg,0\n")
    truth["overlap"] = (root / "eval" / "images" / "copied.jpg", overlap_of.name[:6], copied)
    result = check_health(root / "train", root / "eval", workers=1)
    return {"root": root, "truth": truth, "result": result}


def rows(result, issue: str) -> pd.DataFrame:
    return result.findings[result.findings["issue"] == issue]


def test_every_planted_fault_is_found_and_nothing_else(planted):
    result, truth = planted["result"], planted["truth"]
    found = result.findings
    assert list(found.columns) == COLUMNS
    assert set(found["issue"]) <= set(ISSUES)
    assert rows(result, "dark")["path"].tolist() == [str(truth["dark"])]
    assert rows(result, "blurry")["path"].tolist() == [str(truth["blurry"])]
    assert result.counts() == {"exact_duplicate": 2, "near_duplicate": 0, "duplicate_person": 2,
                               "train_eval_overlap": 1, "dark": 1, "light": 0, "blurry": 1, "low_information": 0,
                               "odd_size": 0, "odd_aspect_ratio": 0}


def test_an_exact_copy_is_one_group_of_two(planted):
    exact = rows(planted["result"], "exact_duplicate")
    assert sorted(exact["path"]) == sorted(str(p) for p in planted["truth"]["exact"])
    assert exact["group"].nunique() == 1 and exact["score"].tolist() == [1.0, 1.0]


def test_one_person_under_two_ids_is_one_group(planted):
    twins = rows(planted["result"], "duplicate_person")
    assert set(twins["person"]) == planted["truth"]["twins"]
    assert twins["group"].tolist() == ["person-1", "person-1"]
    assert all(Path(p).is_dir() for p in twins["path"])  # the persons' folders

def test_fold_groups_tie_persons_whose_photos_are_copies(planted):
    """The twins, and the two persons sharing an exact copy: each set shares a fold."""
    twins = planted["truth"]["twins"]
    sharing = {Path(p).parent.name[:6] for p in planted["truth"]["exact"]}
    assert fold_groups(planted["result"].findings) == {**{p: min(twins) for p in twins},
                                                       **{p: min(sharing) for p in sharing}}


def test_an_eval_photo_copied_from_training_is_an_overlap(planted):
    overlap = rows(planted["result"], "train_eval_overlap")
    eval_photo, person, train_photo = planted["truth"]["overlap"]
    assert overlap[["path", "person"]].values.tolist() == [[str(eval_photo), person]]
    pairs = planted["result"].pairs
    assert pairs.loc[pairs["issue"] == "train_eval_overlap", ["a", "b"]].values.tolist() == [[str(train_photo),
                                                                                            str(eval_photo)]]


def test_a_second_call_reads_the_cache(planted):
    again = check_health(planted["root"] / "train", planted["root"] / "eval", workers=1)
    assert again.cached and not planted["result"].cached
    pd.testing.assert_frame_equal(again.findings, planted["result"].findings)


def test_every_issue_list_is_the_rule_books():
    from core.health import LINKING, OVERLAP
    from core.health.findings import ORDER
    from core.health.quality import CLEANVISION_COLUMNS, CLEANVISION_ISSUES

    assert ISSUES == ORDER == (*rb.HEALTH_DUPLICATES, *rb.HEALTH_QUALITY)
    assert set(CLEANVISION_ISSUES) == set(CLEANVISION_COLUMNS) == set(rb.HEALTH_QUALITY)
    assert (*LINKING, OVERLAP) == ("duplicate_person", "exact_duplicate", "near_duplicate", "train_eval_overlap")


def test_health_csv_round_trip_and_its_rules(planted, tmp_path):
    out = write_health_csv(planted["result"].findings, tmp_path / "health.csv")
    assert out.read_text().splitlines()[0] == "issue,path,person,score,group"
    back = read_health_csv(out)
    assert back["issue"].tolist() == planted["result"].findings["issue"].tolist()
    bad = tmp_path / "bad.csv"
    bad.write_text("issue,path,person,score,group\nsmudged,/x.jpg,1,0.5,\n")
    with pytest.raises(UserError) as err:
        read_health_csv(bad)
    assert str(err.value) == (f"{bad} row 2: issue 'smudged': must be one of: duplicate_person, train_eval_overlap, "
                              "exact_duplicate, near_duplicate, dark, light, blurry, low_information, odd_size, "
                              "odd_aspect_ratio; a health CSV is written by python -m core health (see docs/health.md)")


def test_leave_out_rows_keep_one_copy(planted):
    result, truth = planted["result"], planted["truth"]
    chosen = leave_out_rows(result, ["exact_duplicate", "duplicate_person", "train_eval_overlap", "dark"])
    exact = sorted(str(p) for p in truth["exact"])
    twins = rows(result, "duplicate_person").sort_values("path")["path"].tolist()
    assert chosen.values.tolist() == [[twins[1], "duplicate_person"],
                                      [str(truth["overlap"][2]), "train_eval_overlap"],
                                      [exact[1], "exact_duplicate"], [str(truth["dark"]), "dark"]]


# ----------------------------------------------------------------------------- cleanvision alone

def texture(seed: int, size=(96, 128)) -> np.ndarray:
    rng = np.random.default_rng(seed)
    small = rng.integers(0, 256, (size[1] // 8, size[0] // 8, 3)).astype(np.uint8)
    return cv2.resize(small, size, interpolation=cv2.INTER_CUBIC)


def test_cleanvision_checks_on_a_dataset_without_persons(tmp_path):
    """One folder per class (no persons): cleanvision's verdicts alone, and exact copies."""
    for c, name in enumerate(("cat", "dog")):
        for n in range(8):
            (tmp_path / name).mkdir(exist_ok=True)
            Image.fromarray(texture(10 * c + n)).save(tmp_path / name / f"{n}.png")
    Image.fromarray(np.zeros((128, 96, 3), np.uint8)).save(tmp_path / "cat" / "black.png")
    Image.fromarray(np.full((128, 96, 3), 128, np.uint8)).save(tmp_path / "dog" / "grey.png")
    Image.fromarray(texture(99, (96, 20))).save(tmp_path / "dog" / "strip.png")
    shutil.copy(tmp_path / "cat" / "3.png", tmp_path / "dog" / "copy.png")
    found = check_health(tmp_path, workers=1).findings
    got = sorted((issue, Path(path).relative_to(tmp_path).as_posix()) for issue, path in zip(found.issue, found.path))
    assert got == [("dark", "cat/black.png"), ("exact_duplicate", "cat/3.png"), ("exact_duplicate", "dog/copy.png"),
                   ("low_information", "dog/grey.png"), ("odd_aspect_ratio", "dog/strip.png")]
    assert found.loc[found.issue == "exact_duplicate", "person"].tolist() == ["cat/3", "dog/copy"]
