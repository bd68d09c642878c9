"""The sweep's search space, read from the rule book.

Every recipe field (core/recipe.py) and every TrainConfig field that changes what a model
learns (core/training/config.py) can be searched, under the name ``recipe.<section>.<field>``
or ``train.<field>``; one element of a list field is ``recipe.crop.box.3`` (the box's h).
A space is a JSON object, field name -> spec::

    {"train.lr": {"low": 0.0003, "high": 0.01, "log": true},
     "recipe.enhance.equalize": {"choices": ["none", "clahe"]},
     "recipe.input_size": {"choices": [[64, 64], [96, 96]]},
     "train.loss": {"value": "label_smoothing"}}

``low``, ``high``, ``log``, ``step`` and ``choices`` may narrow what the field's rule allows,
never widen it: each bound and choice is checked by the field's own rule (an
:class:`~core.rules.Interval`'s bounds, an :class:`~core.rules.Options`' values). ``value`` fixes
the field for every trial; ``why`` is a note. A number field left without a ``step`` is searched
on its widget's grid (the Param's ``step``, as the app's sliders), so a best value can be set in
the app exactly and trials that share a preprocessing recipe share its image cache; a log-scale
field is searched continuously. Every refusal is one :class:`~core.errors.UserError` line.
"""

from __future__ import annotations

import difflib
import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from core.errors import UserError
from core.fileio import read_small_text
from core.recipe import Recipe, recipe_params
from core.rules import Boolean, Interval, ListOf, Options, Param, Rule, shown
from core.training.config import PARAMS, TrainConfig

# TrainConfig fields that never enter a search: where things are (paths), how fast a run goes
# (the result is the same), or what the run is validated on (another split would score other
# persons, so trials would not be comparable).
NOT_SEARCHED = ("data", "recipe", "out", "resume", "device", "workers", "nproc", "dist_timeout", "corrections",
                "amp", "channels_last", "compile", "device_cache", "tensorboard", "parallel_folds", "seed", "folds",
                "val_ratio")
SPEC_KEYS = ("low", "high", "log", "step", "choices", "value", "why")
MAX_SPACE_BYTES = 1_000_000
MAX_GRID = 1_000_000  # values a step may cut a range into (Optuna counts them; a finer grid is no grid)

# The default space: short, one reason per field. Every Param marked ``search=True`` is here,
# plus the input size and the crop height (list fields, which a Param cannot mark).
DEFAULT_SPACE: dict[str, dict] = {
    "train.lr": {"low": 3e-4, "high": 1e-2, "log": True,
                 "why": "the setting that matters most from scratch; a decade and a half around the CPU default 2e-3"},
    "train.weight_decay": {"low": 0.0, "high": 0.2, "why": "curbs overfitting on a few hundred persons"},
    "train.loss": {"value": "label_smoothing", "why": "fixed so that train.smoothing acts (0 is plain cross-entropy)"},
    "train.smoothing": {"low": 0.0, "high": 0.2, "why": "softer targets: the real labels have errors"},
    "recipe.input_size": {"choices": [[64, 64], [80, 80], [96, 96], [112, 112]],
                          "why": "detail against time: a step's cost grows with the pixel count"},
    "recipe.crop.box.3": {"low": 0.6, "high": 0.9, "why": "the crop height: how much below the face (mask, chin, "
                                                          "shoulders) the model sees; the starter takes 0.72"},
    "recipe.enhance.contrast": {"low": 0.7, "high": 1.5, "why": "masks and skin differ in contrast"},
    "recipe.enhance.sharpness": {"low": 0.5, "high": 2.0, "why": "edges of a mask and of wrinkles (age)"},
    "recipe.enhance.equalize": {"why": "CLAHE evens out the lighting; the starter uses it"},
    "recipe.sampling.target": {"low": 0.05, "high": 1.0, "why": "how far the rare classes (60+) are raised by "
                                                                "oversampling"},
    "recipe.augment.rotate": {"low": 0.0, "high": 30.0, "why": "augmentation strength: heads tilt in the photos"},
}


@dataclass(frozen=True)
class Field:
    """One searchable value: its dotted name, its Param, and the rule one value obeys."""

    name: str  # recipe.enhance.contrast, recipe.crop.box.3, train.lr
    param: Param
    rule: Rule  # the item rule for one element of a list field
    part: int | None = None  # which element of a list field

    @property
    def target(self) -> str:
        return self.name.split(".", 1)[0]  # recipe | train

    @property
    def path(self) -> list[str]:
        return self.name.split(".")[1:]

    @property
    def label(self) -> str:
        if self.part is not None and self.param.parts:
            return f"{self.param.label}: {self.param.parts[self.part]}"
        return self.param.label or self.name


def _searchable(rule: Rule) -> bool:
    return isinstance(rule, (Interval, Options, Boolean))


def searchable_fields() -> dict[str, Field]:
    """name -> Field of every value a sweep may search, from the rule book."""
    found: dict[str, Field] = {}
    for name, p in recipe_params().items():
        if isinstance(p.rule, ListOf):
            found[f"recipe.{name}"] = Field(f"recipe.{name}", p, p.rule)
            for i in range(p.rule.length):
                found[f"recipe.{name}.{i}"] = Field(f"recipe.{name}.{i}", p, p.rule.item, i)
        elif _searchable(p.rule):
            found[f"recipe.{name}"] = Field(f"recipe.{name}", p, p.rule)
    for name, p in PARAMS.items():
        if name not in NOT_SEARCHED and p.flag and _searchable(p.rule):
            found[f"train.{name}"] = Field(f"train.{name}", p, p.rule)
    return found


def field_of(name: Any, where: str) -> Field:
    fields = searchable_fields()
    if isinstance(name, str) and name in fields:
        return fields[name]
    close = difflib.get_close_matches(str(name), list(fields), n=1)
    hint = f"did you mean {close[0]}? " if close else ""
    raise UserError(f"{where}: unknown field {shown(name, 80)}; {hint}fields are recipe.<section>.<field> "
                    "(core/recipe.py; recipe.crop.box.3 is one element) or train.<field> (python -m core train "
                    "--help), except paths, speed settings and the split")


# ----------------------------------------------------------------------------- one dimension

def encode_list(value: tuple) -> str:
    """A list value as one categorical choice: "96x96" (whole numbers) or "0, 0, 1, 0.72".

    Each number is written so that it reads back exactly (the short ``:g`` form where that is
    exact, else Python's shortest round-trip repr): 0.723456789 stays 0.723456789, and two
    choices that differ in the 7th digit stay two choices."""
    if all(isinstance(v, int) for v in value):
        return "x".join(str(v) for v in value)
    return ", ".join(_exact(v) for v in value)


def _exact(v: float) -> str:
    short = f"{v:g}"
    return short if float(short) == v else repr(float(v))


@dataclass(frozen=True)
class Dim:
    """A field's searched range (or fixed value) after checking against its rule."""

    field: Field
    low: float | None = None
    high: float | None = None
    log: bool = False
    step: float | None = None
    choices: tuple | None = None
    value: Any = None
    fixed: bool = False
    why: str = ""

    @property
    def name(self) -> str:
        return self.field.name

    def suggest(self, trial) -> Any:
        """The trial's value (Optuna's suggest_* with this dimension's bounds), decoded."""
        if self.fixed:
            return self.value
        if self.choices is not None:
            return self.decode(trial.suggest_categorical(self.name, list(self.choices)))
        if self.field.rule.kind is int:
            return trial.suggest_int(self.name, int(self.low), int(self.high), step=int(self.step or 1),
                                     log=self.log)
        value = trial.suggest_float(self.name, self.low, self.high, step=self.step, log=self.log)
        return round(value, 10) if self.step else value

    def distribution(self):
        """Optuna's distribution of this dimension (None when fixed)."""
        from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

        if self.fixed:
            return None
        if self.choices is not None:
            return CategoricalDistribution(list(self.choices))
        if self.field.rule.kind is int:
            return IntDistribution(int(self.low), int(self.high), log=self.log, step=int(self.step or 1))
        return FloatDistribution(self.low, self.high, log=self.log, step=self.step)

    def decode(self, value: Any) -> Any:
        """An Optuna parameter value back to the field's own (a list field's "96x96" -> (96, 96))."""
        if isinstance(self.field.rule, ListOf) and isinstance(value, str):
            return self.field.rule.parse(value, self.name)
        return value

    def to_spec(self) -> dict:
        spec: dict[str, Any] = {"why": self.why} if self.why else {}
        if self.fixed:
            return {"value": list(self.value) if isinstance(self.value, tuple) else self.value, **spec}
        if self.choices is not None:
            return {"choices": [self.decode(c) if not isinstance(self.decode(c), tuple) else list(self.decode(c))
                                for c in self.choices], **spec}
        return {"low": self.low, "high": self.high, "log": self.log, "step": self.step, **spec}


def _flag(value: Any, name: str) -> bool:
    if not isinstance(value, bool):
        raise UserError(f"{name} {shown(value)}: must be true or false")
    return value


def dim(field: Field, spec: Any, where: str) -> Dim:
    """The Dim of ``field`` under ``spec`` (a space file's entry), checked against the rule."""
    name = f"{where}: {field.name}"
    if not isinstance(spec, dict):
        raise UserError(f"{name} {shown(spec, 80)}: must be an object with low/high/log/step, choices or value")
    unknown = sorted(str(k) for k in spec if k not in SPEC_KEYS)
    if unknown:
        raise UserError(f"{name}: unknown key {shown(unknown[0], 40)}; allowed: {', '.join(SPEC_KEYS)}")
    why = spec.get("why", "")
    if not isinstance(why, str):
        raise UserError(f"{name} why {shown(why, 40)}: must be text")
    rule = field.rule
    if "value" in spec:
        if len(spec) - ("why" in spec) > 1:
            raise UserError(f"{name}: value fixes the field; give it alone (without low/high/log/step/choices)")
        return Dim(field, value=rule.check(spec["value"], f"{name} value"), fixed=True, why=why)
    if "choices" in spec:
        if any(k in spec for k in ("low", "high", "log", "step")):
            raise UserError(f"{name}: give choices or low/high/log/step, not both")
        choices = spec["choices"]
        if not isinstance(choices, list) or not choices:
            raise UserError(f"{name} choices {shown(choices, 80)}: must be a non-empty list of values, each "
                            f"{rule.describe()}")
        checked = [rule.check(c, f"{name} choice") for c in choices]
        coded = tuple(dict.fromkeys(encode_list(c) if isinstance(c, tuple) else c for c in checked))
        return Dim(field, choices=coded, why=why)
    if isinstance(rule, Options):
        if spec.keys() - {"why"}:
            raise UserError(f"{name}: one of {', '.join(map(str, rule.values))}; narrow it with choices, not "
                            "low/high/log/step")
        return Dim(field, choices=tuple(rule.values), why=why)
    if isinstance(rule, Boolean):
        if spec.keys() - {"why"}:
            raise UserError(f"{name}: true or false; narrow it with choices, not low/high/log/step")
        return Dim(field, choices=(False, True), why=why)
    if isinstance(rule, ListOf):
        raise UserError(f"{name}: a list field is searched with choices (e.g. [[64, 64], [96, 96]]), or one "
                        f"element at a time as {field.name}.0 ... {field.name}.{rule.length - 1}")
    return _interval_dim(field, rule, spec, name, why)


def _interval_dim(field: Field, rule: Interval, spec: dict, name: str, why: str) -> Dim:
    bounds = {}
    for end in ("low", "high"):
        if end in spec:
            bounds[end] = rule.check(spec[end], f"{name} {end}")
            continue
        edge = getattr(rule, end)
        shut = rule.closed in ("both", "left" if end == "low" else "right")
        if edge is None or not shut:
            raise UserError(f"{name}: give {end}: the rule book's {end} bound "
                            f"({'none' if edge is None else edge}) is not a value ({rule.describe()})")
        bounds[end] = rule.kind(edge)
    low, high = bounds["low"], bounds["high"]
    if low > high:
        raise UserError(f"{name}: low {low:g} is above high {high:g}")
    log = _flag(spec.get("log", rule.log), f"{name} log")
    if log and low <= 0:
        raise UserError(f"{name} low {low:g}: a log scale needs low > 0")
    step = spec.get("step")
    if step is not None and log:
        raise UserError(f"{name}: step and log cannot be combined (Optuna samples a log scale continuously)")
    if step is None and not log:  # the widget's grid, where the range holds a step of it
        step = field.param.step if rule.kind is float else 1
        step = step if step is not None and step <= high - low else None
    if step is not None:
        if isinstance(step, bool) or not isinstance(step, (int, float)) or not math.isfinite(step) or step <= 0 \
                or (rule.kind is int and not float(step).is_integer()):
            raise UserError(f"{name} step {shown(step)}: must be a {'whole ' if rule.kind is int else ''}number > 0")
        if high > low and step > high - low:
            raise UserError(f"{name} step {step:g}: must not exceed high - low ({high - low:g})")
        points = (high - low) / step
        if not math.isfinite(points) or points > MAX_GRID:
            raise UserError(f"{name} step {step:g}: makes more than {MAX_GRID:,} values from {low:g} to {high:g}; "
                            "give a larger step, or leave step out (the field's widget step)")
        if high > low:  # Optuna moves high down onto the grid (with a warning); do it here, quietly
            high = round(low + math.floor((high - low) / step + 1e-9) * step, 10)
    return Dim(field, low=low, high=high, log=log, step=step, why=why)


# ----------------------------------------------------------------------------- a whole space

def parse_space(data: Any, where: str) -> list[Dim]:
    """The Dims of a space object (field name -> spec)."""
    if not isinstance(data, dict) or not data:
        raise UserError(f"{where}: a search space is a non-empty JSON object: field name -> "
                        '{"low": ..., "high": ...} or {"choices": [...]} or {"value": ...}')
    return [dim(field_of(name, where), spec, where) for name, spec in data.items()]


def default_space() -> list[Dim]:
    return parse_space(DEFAULT_SPACE, "the default space")


def load_space(path: str | Path) -> list[Dim]:
    """The space in JSON file ``path`` (it replaces the default space)."""
    path = Path(path)
    text = read_small_text(path, "search space", MAX_SPACE_BYTES)
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise UserError(f"{path}: not valid JSON: {exc.msg} at line {exc.lineno}") from None
    except RecursionError:
        raise UserError(f"{path}: JSON nested too deeply to be a search space") from None
    return parse_space(data, str(path))


def space_dict(dims: list[Dim]) -> dict:
    """The space as a space file writes it (what sweep.json records)."""
    return {d.name: d.to_spec() for d in dims}


def apply(values: dict[str, Any], cfg: TrainConfig, recipe: Recipe) -> tuple[TrainConfig, Recipe]:
    """``cfg`` and ``recipe`` with a trial's ``values`` (field name -> value) set; RecipeError
    where the values make an impossible recipe (a crop box leaving the image)."""
    import dataclasses

    fields = searchable_fields()
    data = recipe.to_dict()
    train = {}
    for name, value in values.items():
        f = fields[name]
        if f.target == "train":
            train[f.path[0]] = value
            continue
        *parents, leaf = f.path if f.part is None else f.path[:-1]
        node = data
        for key in parents:
            node = node[key]
        if f.part is None:
            node[leaf] = list(value) if isinstance(value, tuple) else value
        else:
            node[leaf][f.part] = value
    return dataclasses.replace(cfg, **train), Recipe.from_dict(data)
