"""The controls every page shares, drawn in the sidebar: the dataset folder and label
corrections, the recipe (shown, downloaded, saved, loaded) and the image cache."""

from __future__ import annotations

import streamlit as st

from core.cache import cache_usage, clear_cache
from core.paths import RULE, cache_dir, user_base
from explorer import data, recipe_state
from explorer.compute import clear_caches

CACHE_MESSAGE = "_cache_message"


def dataset_controls() -> data.Loaded:
    st.header("Dataset")
    root = st.text_input("Dataset folder", key=data.data_root_key(),
                         help="Competition train folder (images/ + train.csv), competition eval folder "
                              f"(info.csv + images/), or one folder per class. {RULE.capitalize()}: "
                              f"{user_base()}.")
    use_reported = st.toggle("Apply reported label corrections", key="use_reported",
                             help="The label errors participants reported (swapped mask photos, wrong "
                                  "genders), shipped in core/data/reported_corrections.csv.")
    custom = st.text_input("Or a corrections CSV (person,field,value)", key="corrections_path",
                           placeholder="optional path to a .csv", help=f"{RULE.capitalize()}: {user_base()}.")
    if st.button("Rescan folder", key="rescan", help="Read the folder again after files changed."):
        clear_caches()
    corrections, refused = data.corrections_choice(use_reported, custom)
    if refused:
        st.error(refused)
    info = data.load_dataset(root, corrections)
    st.session_state[data.LOADED] = info
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
    recipe = recipe_state.get_recipe()
    recipe_state.show_recipe_message()
    with st.expander("Current recipe (JSON)"):
        st.code(recipe_state.recipe_json(recipe), language="json", wrap_lines=True)
        st.caption("As of the page's last full run: a slider inside a preview redraws only the preview. "
                   "The download below is made on the click, so it always holds the current recipe.")
    # The data is a callable: the file is made on the click, from the recipe of that moment, so it
    # also holds what a slider inside a page's fragment changed after this sidebar was drawn.
    st.download_button("Download recipe.json", recipe_state.recipe_box().json_bytes, file_name="recipe.json",
                       mime="application/json", key="recipe_download", on_click="ignore")
    st.text_input("Recipe file path", key="recipe_path", placeholder="e.g. recipe.json",
                  help=f"A .json file. {RULE.capitalize()}: {user_base()}.")
    save, load = st.columns(2)
    save.button("Save", key="recipe_save", on_click=recipe_state.on_recipe_save_path, width="stretch")
    load.button("Load", key="recipe_load", on_click=recipe_state.on_recipe_load_path, width="stretch")
    st.file_uploader("Or upload a recipe", type=["json"], key="recipe_upload",
                     on_change=recipe_state.on_recipe_upload)
    st.button("Reset to the starting recipe", key="recipe_reset", on_click=recipe_state.on_recipe_reset,
              help="Competition layouts start from the tuned recipe (see the README's Default training); "
                   "other datasets from the whole frame with no enhancement.")


def on_cache_clear() -> None:
    freed = clear_cache()
    clear_caches()  # the in-memory tables and images derived from the files just removed
    st.session_state[CACHE_MESSAGE] = f"Cleared the cache: {freed / 1e6:,.1f} MB freed."


def cache_controls() -> None:
    """The on-disk cache's size (preprocessed images, face boxes) and a button to clear it."""
    st.header("Cache")
    n, size = cache_usage()
    message = st.session_state.pop(CACHE_MESSAGE, None)
    if message:
        st.success(message)
    st.caption(f"{n:,} cached image set(s) and face table(s), {size / 1e6:,.1f} MB in `{cache_dir()}`. "
               "Rebuilt when needed; caches in use by a running training or page are kept.")
    st.button("Clear the cache", key="cache_clear", on_click=on_cache_clear, disabled=size == 0,
              icon=":material/delete_sweep:")
