"""Opening the explorer under streamlit.testing.v1.AppTest, shared by the app tests."""

from __future__ import annotations

from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

APP = str(Path(__file__).resolve().parents[1] / "explorer" / "app.py")


def open_app(data, page: str | None = None, **state) -> AppTest:
    """The app on dataset folder ``data``, with session ``state`` preset, switched to ``page``."""
    at = AppTest.from_file(APP, default_timeout=120)
    at.session_state["data_root"] = str(data)
    for key, value in state.items():
        at.session_state[key] = value
    at.run()
    if page:
        at.switch_page(f"views/{page}.py").run()
    assert_clean(at)
    return at


def assert_clean(at: AppTest) -> None:
    """No exception and no 'Unexpected error' box (what state.guard shows for a bug)."""
    assert not at.exception, [e.value for e in at.exception]
    assert not [e.value for e in at.error if e.value.startswith("Unexpected error")]


# ----------------------------------------------------------------------------- fixtures for the training pages
# Imported by the test modules that train from the app (an imported autouse fixture applies to
# that module only).

@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> Path:
    """The app's runs folder for one test module."""
    return tmp_path_factory.mktemp("runs")


@pytest.fixture(autouse=True)
def app_env(monkeypatch, runs):
    monkeypatch.setenv("MASKLAB_RAISE", "1")  # unexpected page errors reach at.exception
    monkeypatch.setenv("MASKLAB_RUNS", str(runs))


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> Path:
    """tiny/train (12 people, competition layout) and tiny/eval (2 people, with gt.csv)."""
    from tests.helpers import make_eval, make_train

    base = tmp_path_factory.mktemp("tiny")
    make_train(base / "train", people=12)
    make_eval(base / "eval", people=2)
    return base
