"""The explorer's entry point: ``streamlit run explorer/app.py``.

It only routes (``st.navigation``) and draws the controls every page shares in the sidebar:
the dataset folder, label corrections, and the recipe (shown, saved, loaded).
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

from explorer import state  # noqa: E402

st.set_page_config(page_title="Mask explorer", layout="wide")

# The folder is views/, not pages/: a pages/ folder would switch Streamlit to its older
# multipage mode, which runs a page file without this entry point.
PAGES = {
    "Data": [
        st.Page("views/overview.py", title="Overview", icon=":material/bar_chart:", default=True),
        st.Page("views/faces.py", title="Faces and crop", icon=":material/face:"),
    ],
    "Recipe": [
        st.Page("views/preprocess.py", title="Preprocessing", icon=":material/tune:"),
        st.Page("views/augment.py", title="Augmentation", icon=":material/auto_awesome_motion:"),
        st.Page("views/sampling.py", title="Oversampling", icon=":material/balance:"),
    ],
    "Model": [
        st.Page("views/train.py", title="Train & evaluate", icon=":material/model_training:"),
        st.Page("views/runs.py", title="Runs", icon=":material/history:"),
    ],
}


def dataset_controls() -> state.Loaded:
    st.header("Dataset")
    root = st.text_input("Dataset folder", key=state.init_widget("data_root", state.default_data_root()),
                         help="Competition train folder (images/ + train.csv), competition eval folder "
                              "(info.csv + images/), or one folder per class.")
    use_reported = st.toggle("Apply reported label corrections", key="use_reported",
                             help="The label errors participants reported (swapped mask photos, wrong "
                                  "genders), shipped in core/data/reported_corrections.csv.")
    custom = st.text_input("Or a corrections CSV (person,field,value)", key="corrections_path",
                           placeholder="optional path")
    if st.button("Rescan folder", key="rescan", help="Read the folder again after files changed."):
        state.clear_caches()
    info = state.load_dataset(root, state.corrections_choice(use_reported, custom))
    st.session_state[state.LOADED] = info
    for note in info.notes:
        st.warning(note)
    if info.dataset is not None:
        ds = info.dataset
        st.caption(f"{ds.layout} layout · {len(ds.df):,} images"
                   + (f" · {len(ds.problems)} problem(s)" if ds.problems else ""))
    else:
        st.caption("No dataset loaded: see the page.")
    return info


def recipe_controls() -> None:
    st.header("Recipe")
    recipe = state.get_recipe()
    state.show_recipe_message()
    with st.expander("Current recipe (JSON)"):
        st.code(state.recipe_json(recipe), language="json", wrap_lines=True)
    st.download_button("Download recipe.json", recipe.to_json() + "\n", file_name="recipe.json",
                       mime="application/json", key="recipe_download", on_click="ignore")
    st.text_input("Recipe file path", key="recipe_path", placeholder="e.g. recipe.json")
    save, load = st.columns(2)
    save.button("Save", key="recipe_save", on_click=state.on_recipe_save_path, width="stretch")
    load.button("Load", key="recipe_load", on_click=state.on_recipe_load_path, width="stretch")
    st.file_uploader("Or upload a recipe", type=["json"], key="recipe_upload", on_change=state.on_recipe_upload)
    st.button("Reset to the starting recipe", key="recipe_reset", on_click=state.on_recipe_reset,
              help="Competition layouts start from the tuned recipe (see the README's Default training); "
                   "other datasets from the whole frame with no enhancement.")


page = st.navigation(PAGES)
with st.sidebar:
    dataset_controls()
    recipe_slot = st.container()
with state.guard():
    page.run()
# After the page, so the recipe shown includes what this run's widgets changed.
with recipe_slot, state.guard():
    recipe_controls()
