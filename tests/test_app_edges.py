"""Every control that takes typed input in the app ends bad input in an error box, never in a
traceback: the dataset folder, the corrections CSV, the recipe path (load and save), the recipe
upload and the image upload. MASKLAB_RAISE=1 lets a bug through as an exception, so "no
exception" here means the input was handled, not hidden."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.apptest import assert_clean, open_app
from tests.helpers import layout_train


@pytest.fixture(autouse=True)
def _home(monkeypatch, tmp_path):
    monkeypatch.setenv("MASKLAB_RAISE", "1")
    monkeypatch.setenv("MASKLAB_HOME", str(tmp_path))


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    return layout_train(tmp_path_factory.mktemp("edges") / "train")


ODD_PATHS = {"unknown user": "~no_such_user_xyz/data", "over-long name": "a" * 300, "NUL": "x\x00y",
             "only spaces": "   "}


def shown(at) -> list[str]:
    return [e.value for e in at.error] + [w.value for w in at.warning]


@pytest.mark.parametrize("kind", [*ODD_PATHS, "a file"])
def test_a_bad_dataset_folder_is_an_error_box(data, kind):
    typed = str(data / "train.csv") if kind == "a file" else ODD_PATHS[kind]
    at = open_app(data, "overview")
    at.text_input(key="data_root").set_value(typed).run()
    assert_clean(at)
    assert at.session_state["_loaded"].dataset is None
    assert any("no user" in e or "longer than" in e or "NUL" in e or "Type a dataset" in e or "is a file" in e
               for e in shown(at)), shown(at)


CSVS = {"binary": b"\x00\x01\x02person,field,value", "latin-1": "person,field,value\n000001,race,Fran\xe7ais\n"
        .encode("latin-1"), "bad value": b"person,field,value\n000001,age,\xc2\xb2\n",
        "unknown field": b"person,field,value\n000001,height,180\n", "empty": b"", "no columns": b"a,b\n1,2\n"}


@pytest.mark.parametrize("kind", [*CSVS, *ODD_PATHS])
def test_a_bad_corrections_csv_is_refused_with_its_reason(data, tmp_path, kind):
    if kind in CSVS:
        (tmp_path / "fix.csv").write_bytes(CSVS[kind])
        typed = "fix.csv"
    else:
        typed = ODD_PATHS[kind] + ".csv"
    at = open_app(data, "overview")
    at.text_input(key="corrections_path").set_value(typed).run()
    assert_clean(at)
    assert at.session_state["_loaded"].corrections is None  # nothing half-applied
    assert at.session_state["_loaded"].dataset is not None  # the dataset itself still loads
    assert any("not applied" in e for e in shown(at)), shown(at)


def test_a_header_only_corrections_csv_applies_nothing(data, tmp_path):
    (tmp_path / "fix.csv").write_text("person,field,value\n")
    at = open_app(data, "overview")
    at.text_input(key="corrections_path").set_value("fix.csv").run()
    assert_clean(at)
    assert at.session_state["_loaded"].corrections == str(tmp_path.resolve() / "fix.csv")
    assert not at.session_state["_loaded"].dataset.df["corrected"].any()


RECIPES = {"binary": b"\x00\xff\x00", "utf-16": '{"enhance": {"contrast": 1.5}}'.encode("utf-16"),
           "nested": b"[" * 100_000, "a list": b"[1, 2]", "number as text": b'{"input_size": ["96", 96]}'}


@pytest.mark.parametrize("kind", [*RECIPES, *ODD_PATHS])
def test_a_bad_recipe_file_or_path_is_refused_and_the_recipe_kept(data, tmp_path, kind):
    if kind in RECIPES:
        (tmp_path / "r.json").write_bytes(RECIPES[kind])
        typed = "r.json"
    else:
        typed = ODD_PATHS[kind] + ".json"
    at = open_app(data, "overview")
    before = at.session_state["recipe"]
    at.text_input(key="recipe_path").set_value(typed).run()
    at.button(key="recipe_load").click().run()
    assert_clean(at)
    assert any(e.startswith("Recipe not loaded") for e in [e.value for e in at.sidebar.error]), shown(at)
    assert at.session_state["recipe"] == before
    at.button(key="recipe_save").click().run()  # the same odd path to save to
    assert_clean(at)
    if kind in ODD_PATHS:
        assert any(e.startswith("Recipe not saved") for e in [e.value for e in at.sidebar.error]), shown(at)


@pytest.mark.parametrize("kind", RECIPES)
def test_a_bad_recipe_upload_is_refused(data, kind):
    at = open_app(data, "overview")
    before = at.session_state["recipe"]
    at.file_uploader(key="recipe_upload").set_value(("r.json", RECIPES[kind], "application/json")).run()
    assert_clean(at)
    assert any(e.startswith("Recipe not loaded from r.json") for e in [e.value for e in at.sidebar.error])
    assert at.session_state["recipe"] == before


@pytest.mark.parametrize("content", [b"", b"not an image at all", b"\xff\xd8\xff\xe0 truncated jpeg"])
def test_a_bad_image_upload_is_an_error_box(data, content):
    at = open_app(data, "preprocess")
    at.radio(key="pp_source").set_value("Upload").run()
    at.file_uploader(key="pp_upload").set_value(("photo.jpg", content, "image/jpeg")).run()
    assert_clean(at)
    assert any("photo.jpg: not an image" in e for e in shown(at)), shown(at)
