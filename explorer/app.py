"""The explorer's entry point: ``streamlit run explorer/app.py``.

It only routes (``st.navigation``) and draws the controls every page shares in the sidebar
(explorer/sidebar.py): the dataset folder, label corrections, the recipe and the image cache.
"""

from __future__ import annotations

import sys
from pathlib import Path

# `core` and `explorer` importable however streamlit was started. The pages run inside this
# script (st.navigation), so this is the only place that needs it.
ROOT = str(Path(__file__).resolve().parents[1])
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

import streamlit as st  # noqa: E402

from explorer import sidebar  # noqa: E402
from explorer.guard import guard  # noqa: E402

st.set_page_config(page_title="Mask explorer", layout="wide")

# The folder is views/, not pages/: a pages/ folder would switch Streamlit to its older
# multipage mode, which runs a page file without this entry point.
PAGES = {
    "Data": [
        st.Page("views/overview.py", title="Overview", icon=":material/bar_chart:", default=True),
        st.Page("views/faces.py", title="Faces and crop", icon=":material/face:"),
        st.Page("views/health.py", title="Data health", icon=":material/health_and_safety:"),
    ],
    "Recipe": [
        st.Page("views/preprocess.py", title="Preprocessing", icon=":material/tune:"),
        st.Page("views/augment.py", title="Augmentation", icon=":material/auto_awesome_motion:"),
        st.Page("views/sampling.py", title="Oversampling", icon=":material/balance:"),
    ],
    "Model": [
        st.Page("views/train.py", title="Train & evaluate", icon=":material/model_training:"),
        st.Page("views/runs.py", title="Runs", icon=":material/history:"),
        st.Page("views/label_issues.py", title="Label issues", icon=":material/rule:"),
        st.Page("views/sweep.py", title="Sweep", icon=":material/manage_search:"),
    ],
}

page = st.navigation(PAGES)
with st.sidebar, guard():  # a typed folder or corrections path never shows a traceback box
    sidebar.dataset_controls()
    recipe_slot = st.container()
    cache_slot = st.container()
with guard():
    page.run()
# After the page, so the recipe shown includes what this run's widgets changed.
with recipe_slot, guard():
    sidebar.recipe_controls()
with cache_slot, guard():
    sidebar.cache_controls()  # after the page too: the size includes what the page just cached
