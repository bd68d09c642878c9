"""Widgets drawn from the rule book: bounds, steps, choices, labels and help come from the
value's :class:`core.rules.Param`, never typed on a page.

* Recipe fields (``recipe_slider``, ``recipe_number``, ``recipe_choice``, ``recipe_toggle``)
  read the Param declared on the field in core/recipe.py; each widget's key is
  ``r.<section>.<field>[.<part>]`` and its first value comes from the current recipe
  (:func:`explorer.recipe_state.init_widget`), so loading a recipe redraws every widget.
* Any other value (a TrainConfig field, a rule-book entry such as the demo's people) goes
  through :func:`param_widget`, with the key and first value the page gives.
"""

from __future__ import annotations

from typing import Any

import streamlit as st

from core.recipe import recipe_params
from core.rules import Boolean, Interval, ListOf, Options, Param
from explorer.recipe_state import WIDGET_PREFIX, get_recipe, init_widget


def recipe_param(section: str | None, name: str) -> Param:
    return recipe_params()[f"{section}.{name}" if section else name]


def _interval(p: Param) -> Interval:
    rule = p.rule.item if isinstance(p.rule, ListOf) else p.rule
    if not isinstance(rule, Interval):
        raise TypeError(f"{p.label or p.help}: a number widget needs an Interval rule, got {type(rule).__name__}")
    return rule


def field_range(section: str | None, name: str) -> tuple[Any, Any]:
    """(low, high) a widget offers for ``section.name`` (one element of it, for a list field)."""
    p = recipe_param(section, name)
    return _interval(p).bounds(p.step)


def current(section: str | None, name: str, part: int | None = None) -> Any:
    """The field's value in the session's recipe (one element of a list field with ``part``)."""
    recipe = get_recipe()
    value = getattr(getattr(recipe, section) if section else recipe, name)
    return value if part is None else value[part]


def widget_key(section: str | None, name: str, suffix: str | int | None = None) -> str:
    return WIDGET_PREFIX + ".".join(str(p) for p in (section, name, suffix) if p is not None)


def _label(p: Param, part: int | None) -> str:
    return p.parts[part] if part is not None and p.parts else p.label


def _numeric(kind: str, section, name, part, suffix, where, kwargs):
    p = recipe_param(section, name)
    rule = _interval(p)
    lo, hi = rule.bounds(p.step)
    cast = int if rule.kind is int else float
    key = init_widget(widget_key(section, name, suffix if suffix is not None else part),
                      cast(current(section, name, part)))
    draw = where.slider if kind == "slider" else where.number_input
    kwargs.setdefault("help", p.help)
    return draw(kwargs.pop("label", None) or _label(p, part), cast(lo), cast(hi), step=cast(p.step or 1), key=key,
                **kwargs)


def recipe_slider(section: str | None, name: str, *, part: int | None = None, suffix: str | None = None,
                  where=st, **kwargs):
    """A slider over the field's allowed range; ``part`` picks one element of a list field."""
    return _numeric("slider", section, name, part, suffix, where, kwargs)


def recipe_number(section: str | None, name: str, *, part: int | None = None, suffix: str | None = None,
                  where=st, **kwargs):
    """A number input over the field's allowed range (for wide ranges such as the input size)."""
    return _numeric("number", section, name, part, suffix, where, kwargs)


def recipe_choice(section: str | None, name: str, *, widget: str = "radio", where=st, **kwargs) -> str:
    """A radio (or ``widget="selectbox"``) over the field's allowed values, shown by their labels."""
    p = recipe_param(section, name)
    draw = where.radio if widget == "radio" else where.selectbox
    if widget == "radio":
        kwargs.setdefault("horizontal", True)
    kwargs.setdefault("help", p.help)
    return draw(p.label, list(p.rule.values), format_func=p.rule.label,
                key=init_widget(widget_key(section, name), current(section, name)), **kwargs)


def recipe_toggle(section: str | None, name: str, *, where=st, **kwargs) -> bool:
    p = recipe_param(section, name)
    kwargs.setdefault("help", p.help)
    return where.toggle(p.label, key=init_widget(widget_key(section, name), bool(current(section, name))), **kwargs)


def param_widget(p: Param, key: str, value: Any, *, where=st, slider: bool = False, **kwargs) -> Any:
    """The widget a Param calls for: a selectbox for choices, a checkbox for true/false, a number
    input (or ``slider``) over the rule's bounds. ``value`` is its first value; the label, help,
    bounds, step and choice names are the Param's."""
    key = init_widget(key, value)
    kwargs.setdefault("help", p.help)
    label = kwargs.pop("label", None) or p.label
    if isinstance(p.rule, Options):
        return where.selectbox(label, list(p.rule.values), format_func=p.rule.label, key=key, **kwargs)
    if isinstance(p.rule, Boolean):
        return where.checkbox(label, key=key, **kwargs)
    rule = _interval(p)
    lo, hi = rule.bounds(p.step)
    lo, hi = kwargs.pop("min_value", lo), kwargs.pop("max_value", hi)  # a narrower range this page needs
    cast = int if rule.kind is int else float
    draw = where.slider if slider else where.number_input
    if rule.kind is float and not slider:
        kwargs.setdefault("format", "%.6g")
    return draw(label, cast(lo), cast(hi), step=cast(p.step or 1), key=key, **kwargs)
