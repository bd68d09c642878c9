"""Every explorer page through Streamlit's AppTest, asserting what a user would see."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from streamlit.testing.v1 import AppTest

from core import stats
from core.dataset import scan
from core.faces import cached_faces, normalized, suggest_crop
from core.recipe import Recipe, starter_recipe
from core.splits import person_split
from tests.apptest import assert_clean, open_app
from tests.helpers import layout_eval, layout_folders, layout_train



@pytest.fixture(autouse=True)
def _raise_unexpected(monkeypatch):
    """Let unexpected page errors reach ``at.exception`` instead of the page's st.error."""
    monkeypatch.setenv("MASKLAB_RAISE", "1")


@pytest.fixture(scope="module")
def train(demo_root) -> Path:
    return demo_root / "train"


def metric(at: AppTest, label: str) -> str:
    return next(m.value for m in at.metric if m.label == label)


def recipe(at: AppTest) -> Recipe:
    return at.session_state["recipe"]


def codes(at: AppTest) -> str:
    return "\n".join(c.value for c in at.code)


def charts(at: AppTest) -> list:
    return at.get("plotly_chart")


# ----------------------------------------------------------------------------- overview

def test_overview_counts_imbalance_and_samples(train):
    at = open_app(train)
    ds = scan(train)
    counts = stats.class_counts(ds.df, ds.class_names)
    assert metric(at, "Images") == f"{len(ds.df):,}"
    assert metric(at, "Persons") == str(ds.df["person"].nunique())
    assert metric(at, "Imbalance ratio (largest / smallest)") == f"{stats.imbalance(counts)['ratio']:.1f}x"
    minority = next(w.value for w in at.warning if w.value.startswith("Minority classes"))
    assert all(name in minority for name in counts.loc[counts["minority"] & (counts["count"] > 0), "name"])
    assert len(charts(at)) >= 5  # classes, mask, gender, age, sunburst
    assert [s.value for s in at.subheader][:2] == ["Classes", "Mask, gender and age"]
    assert sum(len(img.value) for img in at.image) == len(stats.sample_per_class(ds.df, 4, 0))
    assert "Rows changed by label corrections" not in [s.value for s in at.subheader]
    near = ds.df[ds.df["age"].between(57, 59)]["person"].nunique()
    assert any(c.value.startswith(f"Persons aged 57-59: {near} ") for c in at.caption)


def test_overview_shows_rows_changed_by_reported_corrections(train):
    at = open_app(train, use_reported=True)
    assert "Rows changed by label corrections" in [s.value for s in at.subheader]
    changed = next(d.value for d in at.dataframe if "correction" in d.value.columns)
    # Person 000020 has its normal and incorrect_mask photos swapped in the reported list.
    assert set(changed.loc[changed["person"] == "000020", "correction"]) == {"swap=incorrect_mask:normal"}


def test_overview_of_a_class_per_folder_dataset(tmp_path):
    root = layout_folders(tmp_path / "pets", classes=("cat", "dog", "fox"), per_class=4)
    (root / "fox" / "3.png").unlink()
    at = open_app(root)
    assert metric(at, "Images") == "11"
    assert metric(at, "Layout") == "folders"
    assert metric(at, "Imbalance ratio (largest / smallest)") == "1.3x"
    assert "Mask, gender and age" not in [s.value for s in at.subheader]
    assert [m.value for m in at.markdown if m.value.startswith("**")][:3] == [
        "**cat** · 4 images", "**dog** · 4 images", "**fox** · 3 images"]


def test_recipe_starts_neutral_for_folders_and_resets_to_the_starter(tmp_path, train):
    at = open_app(layout_folders(tmp_path / "pets"))
    assert recipe(at) == Recipe()  # nothing known about the framing: whole frame, no enhancement

    at = open_app(train, "preprocess")
    at.slider(key="r.enhance.contrast").set_value(1.5).run()
    assert recipe(at).enhance.contrast == 1.5
    at.button(key="recipe_reset").click().run()
    assert_clean(at)
    assert recipe(at) == starter_recipe("train")
    assert at.slider(key="r.enhance.contrast").value == starter_recipe("train").enhance.contrast  # widgets follow
    assert any("starting recipe" in s.value for s in at.success)


def test_overview_of_an_eval_set_without_answers(tmp_path):
    root = layout_eval(tmp_path / "eval", gt=False)
    at = open_app(root)
    assert metric(at, "Layout") == "eval"
    assert any("no labels" in i.value for i in at.info)
    assert not charts(at)


def test_corrupt_image_is_listed_and_the_page_still_renders(tmp_path):
    root = layout_train(tmp_path / "train")
    bad = root / "images" / "000002_male_Asian_25" / "mask3.jpg"
    bad.write_bytes(b"not a jpeg at all")
    at = open_app(root)
    assert metric(at, "Images") == "20"
    assert metric(at, "Problems") == "1"
    assert any("1 problem(s) found" in w.value for w in at.warning)
    problems = next(d.value for d in at.dataframe if "problem" in d.value.columns)
    assert problems.loc[0, "path"] == str(bad) and "not an image" in problems.loc[0, "problem"]


@pytest.mark.parametrize("page", [None, "faces", "preprocess", "augment", "sampling"])
def test_missing_dataset_folder_offers_to_create_the_demo(tmp_path, page):
    at = open_app(tmp_path / "nope", page)
    assert len(at.error) == 1
    assert "does not exist" in at.error[0].value and str(tmp_path / "nope") in at.error[0].value
    assert at.button(key="demo_create").label == "Create the demo dataset here"


# ----------------------------------------------------------------------------- faces and crop

def test_faces_page_rates_heatmap_and_crop_recipe(train):
    at = open_app(train, "faces")
    ds = scan(train)
    norm = normalized(cached_faces(ds.df["path"]), ds.df)
    assert metric(at, "Faces found") == f"{len(norm) / len(ds.df):.0%}"
    assert len(charts(at)) == 2  # rates per mask state, heatmap
    assert recipe(at) == starter_recipe("train")  # competition layouts start from the tuned recipe

    at.radio(key="r.crop.mode").set_value("none").run()
    assert recipe(at).crop.mode == "none"
    at.radio(key="r.crop.mode").set_value("fixed").run()
    assert_clean(at)
    assert recipe(at).crop.mode == "fixed"
    at.slider(key="faces_k").set_value(0.5).run()
    at.button(key="faces_use_suggested").click().run()
    assert_clean(at)
    assert recipe(at).crop.box == pytest.approx(suggest_crop(norm, 0.5), abs=1e-6)
    assert at.slider(key="r.crop.box.2").value == pytest.approx(suggest_crop(norm, 0.5)[2])  # widgets follow

    at.radio(key="r.crop.mode").set_value("face").run()
    at.slider(key="r.crop.face_margin").set_value(0.25).run()
    at.number_input(key="r.input_size.w").set_value(64).run()
    assert_clean(at)
    assert recipe(at).crop.mode == "face" and recipe(at).crop.face_margin == 0.25
    height = starter_recipe("train").input_size[1]
    assert recipe(at).input_size == (64, height)
    assert '"mode": "face"' in codes(at) and f'"input_size": [64, {height}]' in codes(at)


def test_box_outside_the_image_is_clipped_not_an_error(train):
    at = open_app(train, "faces", **{"r.crop.mode": "fixed"})
    at.slider(key="r.crop.box.0").set_value(0.6).run()  # x=0.6 with w=1.0 would leave the image
    assert_clean(at)
    assert recipe(at).crop.box[0] == pytest.approx(0.6) and recipe(at).crop.box[2] == pytest.approx(0.4)
    assert any("must lie inside the image" in w.value for w in at.warning)


# ----------------------------------------------------------------------------- preprocessing

def test_contrast_slider_edits_the_recipe_and_the_preview(train):
    at = open_app(train, "preprocess")
    before = [img.value for img in at.image]
    assert recipe(at).enhance.contrast == starter_recipe("train").enhance.contrast
    at.slider(key="r.enhance.contrast").set_value(1.5).run()
    assert_clean(at)
    assert recipe(at).enhance.contrast == 1.5
    assert '"contrast": 1.5' in at.sidebar.code[0].value  # the sidebar's recipe
    snippet = next(c.value for c in at.main.code)
    assert json.loads(snippet)["enhance"]["contrast"] == 1.5  # the page's reproducible snippet
    assert set(json.loads(snippet)) == {"input_size", "crop", "enhance"}
    after = [img.value for img in at.image]
    assert after[0] == before[0]  # "before" is the untouched photo
    assert after[1] != before[1]  # "after" changed with the slider

    at.radio(key="r.enhance.equalize").set_value("clahe").run()
    at.toggle(key="r.enhance.grayscale").set_value(True).run()
    assert_clean(at)
    assert recipe(at).enhance.equalize == "clahe" and recipe(at).enhance.grayscale is True


def test_preprocess_preview_of_an_uploaded_image(train):
    at = open_app(train, "preprocess")
    at.radio(key="pp_source").set_value("Upload").run()
    png = (Path(train) / "images").glob("*/mask1.*")
    data = next(p for p in png if p.suffix == ".jpg").read_bytes()
    at.file_uploader(key="pp_upload").set_value(("mine.jpg", data, "image/jpeg")).run()
    assert_clean(at)
    assert any(c.startswith("Before: mine.jpg") for img in at.image for c in img.captions)
    at.file_uploader(key="pp_upload").set_value(("junk.jpg", b"junk", "image/jpeg")).run()
    assert_clean(at)
    assert any("junk.jpg: not an image" in e.value for e in at.error)


# ----------------------------------------------------------------------------- augmentation

def test_augmentation_controls_edit_the_recipe_and_redraw(train):
    at = open_app(train, "augment")
    assert any("never augmented" in i.value for i in at.info)
    assert any("Validation view (never augmented)" in c for img in at.image for c in img.captions)
    draws = [img.value for img in at.image]
    assert len(draws) == 1 + 12
    at.slider(key="r.augment.rotate").set_value(30.0).run()
    at.toggle(key="r.augment.hflip").set_value(False).run()
    at.slider(key="r.augment.erasing").set_value(0.5).run()
    assert_clean(at)
    a = recipe(at).augment
    assert (a.rotate, a.hflip, a.erasing) == (30.0, False, 0.5)
    moved = [img.value for img in at.image]
    at.button(key="aug_redraw").click().run()
    assert_clean(at)
    assert at.session_state["aug_seed"] == 1
    redrawn = [img.value for img in at.image]
    assert redrawn[0] == moved[0] and redrawn[1:] != moved[1:]  # validation view fixed, draws new


# ----------------------------------------------------------------------------- oversampling

def _counts_table(at: AppTest):
    return next(d.value for d in at.dataframe if "train after" in d.value.columns).set_index("label")


def test_oversampling_random_and_smote_grow_the_training_split_only(train):
    ds = scan(train)
    train_idx, val_idx = person_split(ds.df, 0.2, 0)
    labels = ds.df["label"].to_numpy()
    val = np.bincount(labels[val_idx], minlength=18)

    at = open_app(train, "sampling", **{"r.sampling.method": "none", "r.sampling.target": 1.0})
    t = _counts_table(at)
    assert (t["train after"] == t["train before"]).all()
    assert list(t["val"]) == list(val)
    assert list(t["train before"]) == list(np.bincount(labels[train_idx], minlength=18))

    at.radio(key="r.sampling.method").set_value("random").run()
    assert_clean(at)
    assert recipe(at).sampling.method == "random"
    t = _counts_table(at)
    present = t[t["train before"] > 0]
    biggest = present["train before"].max()
    assert (present["train after"] == biggest).all()  # target 1.0: every class up to the largest
    small = present[present["train before"] < biggest]
    assert len(small) and (small["train after"] > small["train before"]).all()
    assert list(t["val"]) == list(val)

    at.radio(key="r.sampling.method").set_value("smote").run()
    at.slider(key="r.sampling.target").set_value(0.5).run()
    assert_clean(at)
    s = recipe(at).sampling
    assert (s.method, s.target, s.k_neighbors) == ("smote", 0.5, 5)
    t = _counts_table(at)
    assert list(t["val"]) == list(val)
    grown = t[(t["train before"] > 0) & (t["train before"] < round(0.5 * biggest))]
    assert (grown["train after"] == round(0.5 * biggest)).all()
    notes = " ".join(i.value for i in at.info)
    assert "k_neighbors=5" in notes  # the demo's smallest classes are under 6 images
    grown = t["train after"] - t["train before"]
    synthetic = int(grown[t["train before"] >= 2].sum())  # a class of one image is duplicated, not interpolated
    assert synthetic > 0 and int(metric(at, "Synthetic (SMOTE) images").replace(",", "")) == synthetic
    assert any("synthetic (gap" in c for img in at.image for c in img.captions)
    assert any(img.captions[0] == "parent A" for img in at.image)


# ----------------------------------------------------------------------------- recipe save / load

def test_recipe_survives_save_and_load(train, tmp_path):
    at = open_app(train, "preprocess")
    at.slider(key="r.enhance.contrast").set_value(1.5).run()
    at.radio(key="r.enhance.equalize").set_value("hist").run()
    saved = recipe(at)
    path = tmp_path / "recipe.json"
    at.text_input(key="recipe_path").set_value(str(path)).run()
    at.button(key="recipe_save").click().run()
    assert_clean(at)
    assert any("Saved the recipe" in s.value for s in at.success)
    assert Recipe.load(path) == saved

    at.slider(key="r.enhance.contrast").set_value(2.5).run()
    assert recipe(at).enhance.contrast == 2.5
    at.button(key="recipe_load").click().run()
    assert_clean(at)
    assert recipe(at) == saved
    assert at.slider(key="r.enhance.contrast").value == 1.5  # the widget shows the loaded value

    at.slider(key="r.enhance.contrast").set_value(0.5).run()
    at.file_uploader(key="recipe_upload").set_value(("r.json", path.read_bytes(), "application/json")).run()
    assert_clean(at)
    assert recipe(at) == saved and at.slider(key="r.enhance.contrast").value == 1.5


@pytest.mark.parametrize("content, needle", [
    ({"enhance": {"contrats": 1.2}}, "unknown key 'enhance.contrats'"),
    ({"enhance": {"contrast": 9}}, "enhance.contrast 9.0: must be a number from 0 to 3"),
    ({"crop": {"mode": "zoom"}}, "crop.mode 'zoom': must be one of: none, fixed, face"),
])
def test_bad_recipe_file_shows_the_key_and_keeps_the_recipe(train, tmp_path, content, needle):
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(content))
    at = open_app(train, "preprocess")
    at.text_input(key="recipe_path").set_value(str(path)).run()
    at.button(key="recipe_load").click().run()
    assert_clean(at)
    assert recipe(at) == starter_recipe("train")
    assert any(needle in e.value and str(path) in e.value for e in at.error), [e.value for e in at.error]
    at.file_uploader(key="recipe_upload").set_value(("bad.json", path.read_bytes(), "application/json")).run()
    assert_clean(at)
    assert any(needle in e.value and "bad.json" in e.value for e in at.error)
    assert recipe(at) == starter_recipe("train")


def test_every_page_renders_on_the_eval_set(demo_root, tmp_path):
    root = tmp_path / "eval"
    shutil.copytree(demo_root / "eval", root)
    for page in ("overview", "faces", "preprocess", "augment", "sampling"):
        open_app(root, page)
