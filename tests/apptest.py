"""Opening the explorer under streamlit.testing.v1.AppTest, shared by the app tests."""

from __future__ import annotations

from pathlib import Path

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
