"""A first start without data: the page offers to create the demo dataset where the sidebar points.

The demo is ``core.demo.make_demo`` (the same as ``python -m core demo``), drawn with a
progress bar; the sidebar then switches to its train folder.
"""

from __future__ import annotations

from pathlib import Path

import streamlit as st

from core.demo import make_demo
from core.errors import UserError
from core.rulebook import DEMO_PEOPLE
from explorer.data import switch_root_on_next_run
from explorer.widgets import param_widget


def demo_target(path: Path) -> tuple[Path, Path]:
    """(the folder make_demo writes, the train folder the sidebar then opens) for a missing folder.

    A path ending in ``train`` (the default ``demo_data/train``) gets the demo one level up, so
    the typed path is exactly its train folder; any other path holds the demo itself.
    """
    return (path.parent, path) if path.name == "train" else (path, path / "train")


def offer_demo(path: Path) -> None:
    """A 'Create the demo dataset here' button for the missing folder ``path``."""
    out, data = demo_target(path)
    st.markdown(f"Start with the synthetic demo dataset: the competition's layout (train and eval with "
                f"answers), written to `{out}`; the sidebar then opens `{data}`. Or type another folder in "
                "the sidebar.")
    people, button = st.columns([1, 3], vertical_alignment="bottom")
    n = param_widget(DEMO_PEOPLE, "demo_people", DEMO_PEOPLE.default, where=people)
    if not button.button("Create the demo dataset here", key="demo_create", type="primary",
                         icon=":material/add_photo_alternate:"):
        return
    bar = st.progress(0.0, text="Drawing the demo people…")
    try:
        make_demo(out, people=int(n), progress=lambda done, total: bar.progress(
            done / max(total, 1), text=f"Drawing the demo dataset: {done:,} / {total:,} images"))
    except (UserError, OSError) as exc:  # a folder that is not a demo's, or one we may not write
        bar.empty()
        st.error(f"The demo dataset was not created in `{out}`: {exc}. Type another folder in the sidebar.")
        return
    switch_root_on_next_run(data)
    st.rerun()
