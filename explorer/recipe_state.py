"""The recipe being edited: one :class:`core.recipe.Recipe` per user, and the widgets bound to it.

* Pages change it only through :func:`update_recipe`, which validates with ``Recipe.replace``
  and shows a bad value as ``st.error``.
* Widgets bound to recipe fields use keys starting with ``r.`` and take their first value from
  the recipe (:func:`init_widget`); loading or resetting a recipe drops those keys, so every
  widget re-reads the recipe (:func:`set_recipe`).
* The sidebar saves, loads and uploads it (the ``on_recipe_*`` callbacks); paths follow
  :data:`core.rulebook.RECIPE_FILE`'s rule, and a refused file is named, never quoted.
"""

from __future__ import annotations

import json

import streamlit as st

from core import rulebook as rb
from core.errors import RecipeError, UserError
from core.recipe import MAX_RECIPE_BYTES, Recipe, starter_recipe
from explorer.data import LOADED

RECIPE = "recipe"
BOX = "_recipe_box"
WIDGET_PREFIX = "r."  # session-state keys of widgets bound to recipe fields
RECIPE_MESSAGE = "_recipe_message"


class RecipeBox:
    """The session's current recipe, readable from any thread.

    The sidebar's download button is drawn in full runs only, while a slider inside a page's
    ``st.fragment`` changes the recipe without one. The button therefore gets
    :meth:`json_bytes` as its data: Streamlit calls it when the user clicks, so the file is the
    recipe of that moment. It runs on another thread without the session's context, which is
    why it reads this plain object and not ``st.session_state``.
    """

    def __init__(self, recipe: Recipe):
        self.recipe = recipe

    def json_bytes(self) -> bytes:
        return (self.recipe.to_json() + "\n").encode()


def starting_recipe() -> Recipe:
    """The recipe a session starts from: tuned for competition layouts, neutral otherwise."""
    info = st.session_state.get(LOADED)
    layout = info.dataset.layout if info is not None and info.dataset is not None else None
    return starter_recipe(layout)


def recipe_box() -> RecipeBox:
    """This session's :class:`RecipeBox`, holding the current recipe."""
    if BOX not in st.session_state:
        st.session_state[BOX] = RecipeBox(get_recipe())
    return st.session_state[BOX]


def get_recipe() -> Recipe:
    if RECIPE not in st.session_state:
        st.session_state[RECIPE] = starting_recipe()
    recipe = st.session_state[RECIPE]
    if BOX in st.session_state:
        st.session_state[BOX].recipe = recipe  # also when a test preset session_state["recipe"]
    return recipe


def _store(recipe: Recipe) -> None:
    st.session_state[RECIPE] = recipe
    recipe_box().recipe = recipe


def update_recipe(section: str | None = None, **fields) -> bool:
    """Change fields of one recipe section (or top-level fields when ``section`` is None).

    The new recipe is validated by ``Recipe.replace``; a bad value leaves the recipe as it
    was and shows the RecipeError (key, value, allowed range) as ``st.error``.
    """
    recipe = get_recipe()
    try:
        new = recipe.replace(**({section: fields} if section else fields))
    except RecipeError as exc:
        st.error(f"Recipe not changed: {exc}")
        return False
    if new != recipe:
        _store(new)
    return True


def init_widget(key: str, value) -> str:
    """Give a widget its first value (from the recipe, or a default) the first time it is drawn."""
    if key not in st.session_state:
        st.session_state[key] = value
    return key


def reset_widgets(prefix: str = WIDGET_PREFIX) -> None:
    """Forget widget values under ``prefix`` so the widgets re-read the recipe."""
    for key in [k for k in st.session_state if str(k).startswith(prefix)]:
        del st.session_state[key]


def set_recipe(recipe: Recipe) -> None:
    _store(recipe)
    reset_widgets()


def compact_json(d: dict) -> str:
    """JSON with one line per top-level key: short enough to read, valid to paste."""
    lines = [f"  {json.dumps(k)}: {json.dumps(v)}" for k, v in d.items()]
    return "{\n" + ",\n".join(lines) + "\n}"


def recipe_json(recipe: Recipe) -> str:
    return compact_json(recipe.to_dict())


# ----------------------------------------------------------------------------- sidebar callbacks

def _message(kind: str, text: str) -> None:
    st.session_state[RECIPE_MESSAGE] = (kind, text)


def show_recipe_message() -> None:
    """The outcome of the last save/load, shown once."""
    msg = st.session_state.pop(RECIPE_MESSAGE, None)
    if msg:
        getattr(st, msg[0])(msg[1])


def on_recipe_reset() -> None:
    set_recipe(starting_recipe())
    _message("success", "Recipe reset to the starting recipe for this dataset's layout.")


def _too_big(size: int, source: str) -> bool:
    if size > MAX_RECIPE_BYTES:
        _message("error", f"Recipe not loaded from {source}: {size:,} bytes is too big for a recipe "
                          f"(at most {MAX_RECIPE_BYTES:,}); choose a recipe.json saved by this app or `train`")
    return size > MAX_RECIPE_BYTES


def _load_bytes(data: bytes, source: str) -> None:
    """Load a recipe from the bytes of ``source``; the outcome becomes the sidebar's message."""
    if _too_big(len(data), source):
        return
    try:
        recipe = Recipe.from_json(data.decode("utf-8"))
    except UnicodeDecodeError:
        _message("error", f"Recipe not loaded from {source}: not a UTF-8 text file; choose a recipe.json "
                          "saved by this app or `train`")
        return
    except RecipeError as exc:
        _message("error", f"Recipe not loaded from {source}: {exc}")
        return
    set_recipe(recipe)
    _message("success", f"Loaded the recipe from {source}.")


def on_recipe_upload() -> None:
    """Callback of the sidebar's recipe uploader: load each newly uploaded file once."""
    upload = st.session_state.get("recipe_upload")
    if upload is not None:
        _load_bytes(upload.getvalue(), upload.name)


def _refused(what: str, action) -> tuple[bool, object]:
    """(ok, result) of ``action()``; a bad path or a file error becomes one error message."""
    try:
        return True, action()
    except UserError as exc:
        _message("error", f"Recipe not {what}: {exc}")
    except OSError as exc:
        _message("error", f"Recipe not {what}: {exc.filename}: {exc.strerror}")
    return False, None


def _read_recipe_file() -> tuple[bytes, str] | None:
    path = rb.RECIPE_FILE.check(st.session_state.get("recipe_path") or "", "Recipe file")
    return None if _too_big(path.stat().st_size, str(path)) else (path.read_bytes(), str(path))


def on_recipe_load_path() -> None:
    ok, loaded = _refused("loaded", _read_recipe_file)
    if ok and loaded is not None:
        _load_bytes(*loaded)


def on_recipe_save_path() -> None:
    ok, saved = _refused("saved", lambda: get_recipe().save(
        rb.RECIPE_SAVE.check(st.session_state.get("recipe_path") or "", "Recipe file")))
    if ok:
        _message("success", f"Saved the recipe to {saved}.")
