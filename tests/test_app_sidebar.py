"""The sidebar through AppTest: the recipe download, typed paths, the demo offer and the cache."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from streamlit.runtime.media_file_manager import MediaFileManager
from streamlit.testing.v1 import AppTest

from core.cache import cache_usage
from core.dataset import scan
from core.recipe import starter_recipe
from tests.apptest import assert_clean, open_app
from tests.helpers import layout_train


@pytest.fixture(autouse=True)
def _raise_unexpected(monkeypatch, tmp_path):
    monkeypatch.setenv("MASKLAB_RAISE", "1")
    monkeypatch.setenv("MASKLAB_HOME", str(tmp_path))  # relative paths typed in the app start here


@pytest.fixture(scope="module")
def train(demo_root) -> Path:
    return demo_root / "train"


def errors(at: AppTest) -> list[str]:
    return [e.value for e in at.error]


def sidebar_errors(at: AppTest) -> list[str]:
    return [e.value for e in at.sidebar.error]


# ----------------------------------------------------------------------------- download

@pytest.fixture
def deferred(monkeypatch) -> dict:
    """file id -> the callable each deferred download registered (what a click would run)."""
    made: dict = {}
    register = MediaFileManager.add_deferred

    def spy(self, data, *args, **kwargs):
        file_id = register(self, data, *args, **kwargs)
        made[file_id] = data
        return file_id

    monkeypatch.setattr(MediaFileManager, "add_deferred", spy)
    return made


def recipe_download(at: AppTest):
    return next(b for b in at.sidebar.get("download_button") if b.proto.label == "Download recipe.json")


def test_download_holds_the_recipe_of_the_click_not_of_the_sidebar_drawing(train, deferred):
    at = open_app(train, "preprocess")
    # The button as a browser holds it after this run. A slider in the page's fragment reruns
    # only the fragment, so the browser keeps this very button, drawn before the slider moved.
    drawn = deferred[recipe_download(at).proto.deferred_file_id]
    assert json.loads(drawn())["enhance"]["contrast"] == starter_recipe("train").enhance.contrast
    at.slider(key="r.enhance.contrast").set_value(1.5).run()
    assert_clean(at)
    assert json.loads(drawn())["enhance"]["contrast"] == 1.5
    assert json.loads(deferred[recipe_download(at).proto.deferred_file_id]()) == at.session_state["recipe"].to_dict()


# ----------------------------------------------------------------------------- recipe paths

def load_path(at: AppTest, typed: str) -> AppTest:
    at.text_input(key="recipe_path").set_value(typed).run()
    return at.button(key="recipe_load").click().run()


@pytest.mark.parametrize("typed, needle", [
    ("secret.txt", "must end in .json; give the path of such a recipe"),
    ("secret.json", "recipe is not valid JSON"),
    ("folder.json", "is a folder; give the path of a recipe file"),
    ("nope.json", "does not exist; give the path of an existing file ending in .json; relative paths start at "
                  "$MASKLAB_HOME"),
    ("huge.json", "too big for a recipe"),
])
def test_recipe_load_refusals_name_the_path_never_the_contents(train, tmp_path, typed, needle):
    (tmp_path / "secret.txt").write_text("password=hunter2\n")
    (tmp_path / "secret.json").write_text("password=hunter2\n")
    (tmp_path / "folder.json").mkdir()
    (tmp_path / "huge.json").write_text('{"x": "hunter2' + " " * 1_000_001 + '"}')
    at = open_app(train, "overview")
    before = at.session_state["recipe"]
    load_path(at, typed)
    assert_clean(at)
    shown = [e for e in sidebar_errors(at) if needle in e]
    assert shown, sidebar_errors(at)
    assert str(tmp_path.resolve() / typed) in shown[0]
    assert not any("hunter2" in e for e in errors(at))
    assert at.session_state["recipe"] == before


def test_relative_recipe_paths_save_and_load_under_the_documented_folder(train, tmp_path):
    at = open_app(train, "preprocess")
    at.slider(key="r.enhance.contrast").set_value(2.0).run()
    at.text_input(key="recipe_path").set_value("mine.json").run()
    at.button(key="recipe_save").click().run()
    assert_clean(at)
    saved = tmp_path.resolve() / "mine.json"
    assert json.loads(saved.read_text())["enhance"]["contrast"] == 2.0
    assert any(str(saved) in s.value for s in at.sidebar.success)
    at.slider(key="r.enhance.contrast").set_value(1.0).run()
    load_path(at, "mine.json")
    assert at.session_state["recipe"].enhance.contrast == 2.0
    at.text_input(key="recipe_path").set_value("missing_dir/r.json").run()
    at.button(key="recipe_save").click().run()
    assert any("does not exist" in e and "missing_dir" in e for e in sidebar_errors(at))


# ----------------------------------------------------------------------------- corrections path

def test_corrections_path_is_absolute_before_training_and_refusals_are_errors(tmp_path):
    root = layout_train(tmp_path / "train")
    (tmp_path / "fix.csv").write_text("person,field,value\n000001,gender,male\n")
    at = open_app(root, "train", corrections_path="fix.csv")
    assert_clean(at)
    assert at.session_state["_loaded"].corrections == str(tmp_path.resolve() / "fix.csv")
    assert f"--corrections {tmp_path.resolve() / 'fix.csv'}" in at.main.code[-1].value  # what the subprocess gets

    (tmp_path / "bad.csv").write_text("password,hunter2\n")
    for typed, needle in (("fix.txt", "must end in .csv"), (".", "is a folder"), ("gone.csv", "does not exist"),
                          ("bad.csv", "missing column(s) person, field, value")):
        at.text_input(key="corrections_path").set_value(typed).run()
        assert_clean(at)
        shown = [e for e in sidebar_errors(at) + [w.value for w in at.sidebar.warning] if needle in e]
        assert shown and "not applied" in shown[0], (typed, sidebar_errors(at))
        assert not any("hunter2" in e for e in errors(at))
        assert at.session_state["_loaded"].corrections is None


# ----------------------------------------------------------------------------- demo and cache

def test_create_demo_button_writes_a_dataset_and_opens_it(tmp_path):
    at = open_app(tmp_path / "fresh" / "train")
    at.number_input(key="demo_people").set_value(12).run()
    at.button(key="demo_create").click().run()
    assert_clean(at)
    assert at.session_state["data_root"] == str(tmp_path / "fresh" / "train")
    assert (tmp_path / "fresh" / "eval" / "gt.csv").is_file()
    images = len(scan(tmp_path / "fresh" / "train").df)
    assert images == 12 * 7
    assert next(m.value for m in at.metric if m.label == "Images") == f"{images:,}"
    assert not errors(at)


def test_create_demo_refuses_a_folder_that_is_not_a_demo(tmp_path):
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("keep me")
    at = open_app(tmp_path / "mine" / "train")
    at.number_input(key="demo_people").set_value(12).run()
    at.button(key="demo_create").click().run()
    assert_clean(at)
    assert any(e.startswith(f"The demo dataset was not created in `{tmp_path / 'mine'}`") for e in errors(at))
    assert sorted(p.name for p in (tmp_path / "mine").iterdir()) == ["notes.txt"]  # nothing written or removed


def test_cache_size_and_clear_button(tmp_path, monkeypatch):
    monkeypatch.setenv("MASKLAB_CACHE", str(tmp_path / "cache"))
    at = open_app(layout_train(tmp_path / "train"), "faces")  # a new dataset: its face table is written now
    n, size = cache_usage()
    assert n >= 1 and size > 0
    at.switch_page("views/overview.py").run()  # a page that does not rebuild the face table at once
    assert any(f"{size / 1e6:,.1f} MB" in c.value for c in at.sidebar.caption)
    at.button(key="cache_clear").click().run()
    assert_clean(at)
    assert cache_usage() == (0, 0)
    assert any(s.value.startswith("Cleared the cache:") for s in at.sidebar.success)
    assert at.button(key="cache_clear").disabled
