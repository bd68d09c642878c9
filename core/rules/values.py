"""Rules for single values: whole and real numbers in bounds, choices, true/false, text, lists
of values, and a CSV cell whose rule depends on its row. See core/rules/__init__.py."""

from __future__ import annotations

import dataclasses
import math
import re
from dataclasses import dataclass, field
from typing import Any, Mapping

from core.errors import UserError

_INT = re.compile(r"[+-]?[0-9]+", re.ASCII)
_FLOAT = re.compile(r"[+-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?", re.ASCII)
MISSING = dataclasses.MISSING


def shown(value: Any, limit: int = 160) -> str:
    """A value as a message shows it: its repr, with the middle cut out beyond ``limit``
    characters (a hostile value can be huge; a path's file name is at its end, so the end stays)."""
    text = repr(value)
    if len(text) <= limit:
        return text
    half = (limit - 3) // 2
    return text[:half] + "..." + text[-half:]


def _number_text(x: float) -> str:
    return str(int(x)) if float(x).is_integer() and abs(x) < 1e15 else f"{x:g}"


class Rule:
    """What one value may be. Subclasses define :meth:`check`, :meth:`parse` and :meth:`describe`."""

    def describe(self) -> str:  # "a whole number from 1 to 1000"
        raise NotImplementedError

    def check(self, value: Any, name: str, error: type[UserError] = UserError) -> Any:
        """``value`` (from JSON or Python) normalised, or ``error`` naming ``name``, the value and the rule."""
        raise NotImplementedError

    def parse(self, text: str, name: str, error: type[UserError] = UserError) -> Any:
        """The value typed as ``text`` (a command-line word, a CSV cell), checked."""
        return self.check(text, name, error)

    def fail(self, name: str, value: Any, error: type[UserError] = UserError, why: str | None = None):
        raise error(f"{name} {shown(value)}: {why or 'must be ' + self.describe()}")


@dataclass(frozen=True)
class Interval(Rule):
    """A whole (``kind=int``) or real (``kind=float``) number between bounds.

    ``closed`` says which bounds are allowed themselves: "both", "left", "right" or "neither".
    ``log`` marks a scale spanning decades (learning rates): the sweep searches it in log space.
    """

    kind: type = float
    low: float | None = None
    high: float | None = None
    closed: str = "both"
    log: bool = False

    def _low_ok(self, v) -> bool:
        return self.low is None or (v >= self.low if self.closed in ("both", "left") else v > self.low)

    def _high_ok(self, v) -> bool:
        return self.high is None or (v <= self.high if self.closed in ("both", "right") else v < self.high)

    def describe(self) -> str:
        what = "a whole number" if self.kind is int else "a number"
        lo, hi = self.low, self.high
        left_in, right_in = self.closed in ("both", "left"), self.closed in ("both", "right")
        if lo is not None and hi is not None:
            if left_in and right_in:
                return f"{what} from {_number_text(lo)} to {_number_text(hi)}"
            return f"{what} in {'[' if left_in else '('}{_number_text(lo)}, {_number_text(hi)}{']' if right_in else ')'}"
        if lo is not None:
            return f"{what} {'>=' if left_in else '>'} {_number_text(lo)}"
        if hi is not None:
            return f"{what} {'<=' if right_in else '<'} {_number_text(hi)}"
        return what

    def check(self, value, name, error=UserError):
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            self.fail(name, value, error)
        if not math.isfinite(value):
            self.fail(name, value, error)
        if self.kind is int:
            if not float(value).is_integer():
                self.fail(name, value, error)
            value = int(value)
        else:
            value = float(value)
        if not (self._low_ok(value) and self._high_ok(value)):
            self.fail(name, value, error)
        return value

    def parse(self, text, name, error=UserError):
        text = str(text).strip()
        pattern = _INT if self.kind is int else _FLOAT
        # ASCII digits only: str.isdigit() and int() both accept other scripts' digits, and
        # isdigit() accepts superscripts ('²') that int() then rejects.
        if not pattern.fullmatch(text):
            self.fail(name, text, error)
        return self.check(int(text) if self.kind is int else float(text), name, error)

    def bounds(self, step: float | None = None) -> tuple[float, float]:
        """(low, high) a widget may offer: the rule's bounds, moved in by ``step`` where open."""
        step = step or (1 if self.kind is int else 1e-6)
        lo = self.low if self.low is not None else -1e9
        hi = self.high if self.high is not None else 1e9
        if self.closed in ("right", "neither") and self.low is not None:
            lo = lo + step
        if self.closed in ("left", "neither") and self.high is not None:
            hi = hi - step
        return (int(lo), int(hi)) if self.kind is int else (float(lo), float(hi))


@dataclass(frozen=True)
class Options(Rule):
    """One of ``values``. ``labels`` gives display names (widgets); ``also`` admits values
    another rule accepts (a weights file besides auto/imagenet/none, timm/NAME besides the
    torchvision names)."""

    values: tuple = ()
    labels: Mapping[str, str] = field(default_factory=dict)
    also: Rule | None = None

    def describe(self) -> str:
        listed = "one of: " + ", ".join(map(str, self.values))
        return listed + (f", or {self.also.describe()}" if self.also else "")

    def check(self, value, name, error=UserError):
        try:
            listed = not isinstance(value, bool) and value in self.values
        except TypeError:  # an unhashable value (a list from JSON)
            listed = False
        if listed:
            return value
        if self.also is not None and isinstance(value, str):
            try:
                return self.also.check(value, name, error)
            except UserError:
                pass
        self.fail(name, value, error)

    def label(self, value) -> str:
        return self.labels.get(value, str(value))


@dataclass(frozen=True)
class Boolean(Rule):
    """true or false (on the command line: --flag / --no-flag)."""

    def describe(self) -> str:
        return "true or false"

    def check(self, value, name, error=UserError):
        if isinstance(value, bool):
            return value
        self.fail(name, value, error)

    def parse(self, text, name, error=UserError):
        if str(text).strip().lower() in ("true", "false"):
            return str(text).strip().lower() == "true"
        self.fail(name, text, error)


@dataclass(frozen=True)
class Text(Rule):
    """A line of text: at most ``max_len`` characters, no control characters, and, with
    ``pattern``, matching it (``what`` says in words what the pattern means)."""

    max_len: int = 200
    nonempty: bool = True
    pattern: str | None = None
    what: str = "text"

    def describe(self) -> str:
        return f"{'non-empty ' if self.nonempty else ''}{self.what} of at most {self.max_len} characters"

    def check(self, value, name, error=UserError):
        if not isinstance(value, str):
            self.fail(name, value, error)
        if self.nonempty and not value.strip():
            self.fail(name, value, error)
        if len(value) > self.max_len or any(ord(c) < 32 or c == "\x7f" for c in value):
            self.fail(name, value, error)
        if self.pattern and not re.fullmatch(self.pattern, value):
            self.fail(name, value, error)
        return value


# A file or folder name inside a dataset: one path part, never absolute, never '..'.
NAME = Text(max_len=255, pattern=r"(?!\.\.?$)[^/\\\x00]+", what="a file or folder name without / or \\")


@dataclass(frozen=True)
class ListOf(Rule):
    """A list of ``length`` values, each under ``item`` (an input size, a box)."""

    item: Rule = field(default_factory=Interval)
    length: int = 2

    def describe(self) -> str:
        return f"a list of {self.length} values, each {self.item.describe()}"

    def check(self, value, name, error=UserError):
        if not isinstance(value, (list, tuple)) or len(value) != self.length:
            self.fail(name, value, error)
        return tuple(self.item.check(v, name, error) for v in value)

    def parse(self, text, name, error=UserError):
        words = [v for v in re.split(r"[,x\s]+", str(text).strip()) if v]
        if len(words) != self.length:
            self.fail(name, text, error)
        return tuple(self.item.parse(v, name, error) for v in words)


@dataclass(frozen=True)
class Depends(Rule):
    """A CSV cell whose rule depends on another cell of its row (a correction's ``value``
    depends on its ``field``)."""

    on: str = ""
    rules: Mapping[str, Rule] = field(default_factory=dict)

    def describe(self) -> str:
        return "; ".join(f"for {self.on} {k}: {r.describe()}" for k, r in self.rules.items())

    def for_row(self, row: Mapping[str, str]) -> Rule | None:
        return self.rules.get(row.get(self.on))
