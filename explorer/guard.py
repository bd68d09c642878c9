"""The page guard: a page ends quietly (:class:`PageStop`) or with one readable error, never with
a traceback box, and a page that needs a dataset says why there is none (:func:`require_dataset`).
"""

from __future__ import annotations

import os
import traceback
from contextlib import contextmanager
from typing import Iterator

import pandas as pd
import streamlit as st

from core.dataset import Dataset, Problem
from core.errors import UserError
from explorer.data import loaded
from explorer.first_run import offer_demo


class PageStop(Exception):
    """Raised by a page to end quietly after it has shown why it cannot go on."""


@contextmanager
def guard() -> Iterator[None]:
    """Turn what a page raises into ``st.error`` instead of a traceback box.

    User errors show their one-line message; anything unexpected shows its type and message,
    with the traceback folded away for a bug report. Streamlit's own control flow (st.stop,
    st.rerun) derives from BaseException and passes through. Set ``MASKLAB_RAISE=1`` to let
    unexpected errors through while debugging.
    """
    try:
        yield
    except PageStop:
        pass
    except UserError as exc:
        st.error(str(exc))
    except Exception as exc:  # noqa: BLE001 - this is the last line of defence for a page
        if os.environ.get("MASKLAB_RAISE"):
            raise
        st.error(f"Unexpected error: {exc.__class__.__name__}: {exc}")
        with st.expander("Details for a bug report"):
            st.code(traceback.format_exc(), language="text")


def show_problems(problems: list[Problem]) -> None:
    """A warning with the number of problems and an expander listing each path and rule."""
    if not problems:
        return
    st.warning(f"{len(problems)} problem(s) found in the data; the files concerned are left out of the index.")
    with st.expander(f"Problems in the data ({len(problems)})"):
        st.dataframe(pd.DataFrame({"path": [p.path for p in problems], "problem": [p.rule for p in problems]}),
                     hide_index=True)


def require_dataset() -> Dataset:
    """The loaded dataset; else show why (the problems found, or an offer to create the demo
    dataset in a missing folder) and end the page."""
    info = loaded()
    if info.dataset is None:
        st.error(info.error or "No dataset loaded.")
        show_problems(info.problems)
        if info.missing and info.path is not None:
            offer_demo(info.path)
        raise PageStop
    return info.dataset
