"""Widgets bound to recipe fields, with their ranges and choices read from the recipe itself.

A range or a list of choices lives once, in the metadata of the field in core/recipe.py
(``_rng`` / ``_choices``); these helpers build sliders, number inputs, radios and selectboxes
from it, so a page only adds a label, a step and where to draw. Each widget's key is
``r.<section>.<field>[.<part>]`` and its first value comes from the current recipe
(:func:`explorer.recipe_state.init_widget`), so loading a recipe redraws every widget.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import streamlit as st

from core.recipe import Recipe
from explorer.recipe_state import WIDGET_PREFIX, get_recipe, init_widget

SECTIONS = {f.name: f.default_factory for f in dataclasses.fields(Recipe) if f.default_factory is not dataclasses.MISSING}


def _field(section: str | None, name: str) -> dataclasses.Field:
    cls = SECTIONS[section] if section else Recipe
    return {f.name: f for f in dataclasses.fields(cls)}[name]


def field_range(section: str | None, name: str) -> tuple[Any, Any]:
    """(low, high) allowed for ``section.name`` (one element of it, for a tuple field)."""
    return _field(section, name).metadata["range"]


def field_choices(section: str | None, name: str) -> tuple[str, ...]:
    """The values allowed for ``section.name``, in the recipe's order."""
    return tuple(_field(section, name).metadata["choices"])


def current(section: str | None, name: str, part: int | None = None) -> Any:
    """The field's value in the session's recipe (one element of a tuple field with ``part``)."""
    recipe = get_recipe()
    value = getattr(getattr(recipe, section) if section else recipe, name)
    return value if part is None else value[part]


def widget_key(section: str | None, name: str, suffix: str | int | None = None) -> str:
    return WIDGET_PREFIX + ".".join(str(p) for p in (section, name, suffix) if p is not None)


def _bounded(section, name, part, suffix):
    """(key, low, high) of a numeric widget, in the field's own type (int or float)."""
    lo, hi = field_range(section, name)
    value = current(section, name, part)
    kind = int if isinstance(value, int) and not isinstance(value, bool) else float
    key = init_widget(widget_key(section, name, suffix if suffix is not None else part), kind(value))
    return key, kind(lo), kind(hi)


def recipe_slider(section: str | None, name: str, label: str, step: float, *, part: int | None = None,
                  suffix: str | None = None, where=st, **kwargs):
    """A slider over the field's allowed range; ``part`` picks one element of a tuple field."""
    key, lo, hi = _bounded(section, name, part, suffix)
    return where.slider(label, lo, hi, step=type(lo)(step), key=key, **kwargs)


def recipe_number(section: str | None, name: str, label: str, step: float, *, part: int | None = None,
                  suffix: str | None = None, where=st, **kwargs):
    """A number input over the field's allowed range (for wide ranges such as the input size)."""
    key, lo, hi = _bounded(section, name, part, suffix)
    return where.number_input(label, lo, hi, step=type(lo)(step), key=key, **kwargs)


def recipe_choice(section: str | None, name: str, label: str, names: dict[str, str] | None = None, *,
                  widget: str = "radio", where=st, **kwargs) -> str:
    """A radio (or ``widget="selectbox"``) over the field's allowed values.

    ``names`` only gives display names; the options are the recipe's, so a new choice there
    appears here by itself (shown by its own name until it gets one).
    """
    names = names or {}
    draw = where.radio if widget == "radio" else where.selectbox
    if widget == "radio":
        kwargs.setdefault("horizontal", True)
    return draw(label, list(field_choices(section, name)), format_func=lambda v: names.get(v, v),
                key=init_widget(widget_key(section, name), current(section, name)), **kwargs)


def recipe_toggle(section: str | None, name: str, label: str, *, where=st, **kwargs) -> bool:
    return where.toggle(label, key=init_widget(widget_key(section, name), bool(current(section, name))), **kwargs)
