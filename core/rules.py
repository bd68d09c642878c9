"""The rule book's vocabulary: one declarative way to say what a value may be.

In the spirit of scikit-learn's ``Interval`` / ``StrOptions`` / ``validate_params``, a value's
rule is data, declared once where the value is defined, and read by everything that takes
the value:

* dataclass fields (the recipe, TrainConfig) carry a :class:`Param` in their metadata
  (:func:`param`): the rule, the help text, the widget label and the default;
* the command line builds each flag from a Param (:func:`add_flag`), so its help, its type
  and its error message are the rule's own;
* CSV readers check every cell against a :class:`CsvSchema`;
* the app draws sliders, number inputs and choice lists from the same rules
  (``explorer/widgets.py``), and the sweep draws its search space from them.

Every refusal is a :class:`~core.errors.UserError` (or the subclass the caller asks for)
whose message names the value, the rule and what is allowed.
"""

from __future__ import annotations

import dataclasses
import io
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping

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
class PathRule(Rule):
    """A path a user typed: ``kind`` "file", "dir" or "any"; ``exists`` whether it must exist
    (else its folder must, or ``create`` says it may be made); ``suffixes`` the allowed endings.

    Relative paths start at :func:`core.paths.user_base`; ``~`` is the home folder. Odd paths
    (a ``~user`` that does not exist, a name longer than the filesystem allows, a NUL byte)
    are refused with the rule, never with a traceback.
    """

    kind: str = "any"
    exists: bool = True
    suffixes: tuple = ()
    create: bool = False
    what: str = "path"
    hint: str = ""  # added where the path does not exist: "try python -m core demo --out demo_data"

    def describe(self) -> str:
        thing = {"file": "file", "dir": "folder"}.get(self.kind, "file or folder")
        ends = f" ending in {' or '.join(self.suffixes)}" if self.suffixes else ""
        state = "an existing" if self.exists else "a new or existing"
        return f"the path of {state} {thing}{ends}"

    def check(self, value, name, error=UserError) -> Path:
        if isinstance(value, Path):
            value = str(value)
        if not isinstance(value, str) or not value.strip():
            self.fail(name, value, error, f"must be {self.describe()}")
        path = resolve_user_path(value, name, error)
        try:
            present, is_dir, parent_ok = path.exists(), path.is_dir(), path.parent.is_dir()
        except OSError as exc:
            self.fail(name, str(path), error, f"cannot be used ({exc.strerror}); give a shorter or plainer path")
        if present and self.kind == "file" and is_dir:
            self.fail(name, str(path), error, f"is a folder; give the path of a {self.what} file")
        if present and self.kind == "dir" and not is_dir:
            self.fail(name, str(path), error, f"is a file; give the path of a {self.what} folder")
        if self.suffixes and path.suffix.lower() not in self.suffixes:
            self.fail(name, str(path), error, f"must end in {' or '.join(self.suffixes)}; give the path of such a "
                                              f"{self.what}")
        if self.exists and not present:
            where = "" if Path(value.strip()).expanduser().is_absolute() else f"; {_relative_rule()}"
            self.fail(name, str(path), error, f"does not exist; give {self.describe()}"
                      + (f" ({self.hint})" if self.hint else "") + where)
        if not present and not self.create and not parent_ok:
            self.fail(name, str(path), error, f"its folder {path.parent} does not exist; create it first")
        if not present and self.create:
            blocker = next((p for p in path.parents if p.exists()), None)
            if blocker is not None and not blocker.is_dir():
                self.fail(name, str(path), error, f"{blocker} is a file, so no folder can be made under it; choose "
                                                  "another path")
        return path


def _relative_rule() -> str:
    from core.paths import RULE, user_base

    return f"{RULE}: {user_base()}"


def resolve_user_path(text: str, name: str = "path", error: type[UserError] = UserError) -> Path:
    """``text`` as an absolute path (core.paths' rule), or ``error`` naming ``name`` and why not."""
    from core.paths import user_path

    try:
        return user_path(text)
    except UserError as exc:
        raise error(f"{name} {shown(text)}: {exc}") from None


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


# ----------------------------------------------------------------------------- params

@dataclass
class Param:
    """One value's whole declaration: its rule, help text, widget label and default.

    ``optional``: None is allowed and means "the default decided elsewhere" (the device's).
    ``flag``: whether the command line offers it. ``step``: the widget's step, where a
    slider or number input draws it. ``search``: whether the sweep's default space has it.
    """

    rule: Rule
    help: str
    label: str = ""
    default: Any = None
    optional: bool = False
    flag: bool = True
    step: float | None = None
    search: bool = False
    parts: tuple = ()  # widget labels of a list's elements: ("Input width", "Input height")

    def check(self, value, name: str, error: type[UserError] = UserError):
        if value is None and self.optional:
            return None
        return self.rule.check(value, name, error)


def param(default: Any, rule: Rule, help: str, label: str = "", **kwargs) -> Any:
    """A dataclass field whose metadata is a :class:`Param` (``default`` may be a factory via
    ``factory=``)."""
    factory = kwargs.pop("factory", None)
    p = Param(rule, help, label, default if factory is None else None, **kwargs)
    if factory is not None:
        return field(default_factory=factory, metadata={"param": p})
    return field(default=default, metadata={"param": p})


def params_of(cls) -> dict[str, Param]:
    """name -> Param of every field of dataclass ``cls`` that declares one, in field order."""
    return {f.name: f.metadata["param"] for f in dataclasses.fields(cls) if "param" in f.metadata}


def check_fields(obj, error: type[UserError] = UserError, name_of: Callable[[str], str] = str) -> None:
    """Check every declared field of dataclass instance ``obj`` against its Param."""
    for name, p in params_of(type(obj)).items():
        p.check(getattr(obj, name), name_of(name), error)


# ----------------------------------------------------------------------------- the command line

def flag_name(name: str) -> str:
    """--batch-size for batch_size."""
    return "--" + name.replace("_", "-")


def flag_type(p: Param, flag: str) -> Callable[[str], Any]:
    """argparse ``type=``: parse with the rule; argparse turns the error into its usage line."""
    import argparse

    def parse(text: str):
        try:
            value = p.rule.parse(text, flag)
        except UserError as exc:
            raise argparse.ArgumentTypeError(str(exc).removeprefix(f"{flag} ")) from None
        return str(value) if isinstance(value, Path) else value  # paths travel as absolute text

    parse.__name__ = type(p.rule).__name__.lower()  # argparse names the type in some messages
    parse.rule = p.rule  # what the flag takes, for anyone reading the parser (the edge tests do)
    return parse


def help_text(p: Param, default: Any = MISSING) -> str:
    """The flag's help: what it is, the rule, and the default. '%' escaped for argparse."""
    text = p.help
    rule = p.rule.describe()
    if not isinstance(p.rule, (Boolean, PathRule, Text)):
        text += f" ({rule})"
    default = p.default if default is MISSING else default
    if isinstance(p.rule, Boolean):
        text += f" (default: {'on' if default else 'off'})"
    elif default not in (None, "", MISSING):
        text += f" (default: {default})"
    return text.replace("%", "%%")


def add_flag(parser, name: str, p: Param, *, required: bool = False, default: Any = None,
             shown_default: Any = MISSING, **kwargs) -> None:
    """One argparse option for ``p``: type, help and errors from its rule. The parsed default
    is ``default`` (None: "not given"), so callers can tell a given flag from an omitted one."""
    import argparse

    flag = flag_name(name)
    if isinstance(p.rule, Boolean):
        parser.add_argument(flag, action=argparse.BooleanOptionalAction, default=default,
                            help=help_text(p, shown_default), **kwargs)
        return
    parser.add_argument(flag, type=flag_type(p, flag), default=default, required=required,
                        metavar=kwargs.pop("metavar", name.upper()), help=help_text(p, shown_default), **kwargs)


# ----------------------------------------------------------------------------- CSV files

MAX_CSV_BYTES = 200_000_000  # far beyond any CSV of this project; beyond it, something else was given


@dataclass(frozen=True)
class CsvSchema:
    """The columns a CSV must have and each column's rule.

    :meth:`read` refuses, naming the file and the way out: a file that is not text (binary,
    not UTF-8), an empty file, a header without rows (unless ``rows_required`` is False), a
    missing column, and, with ``on_bad="raise"``, the first cell that breaks its rule (row and
    column named). With ``on_bad="collect"`` bad rows are left out and returned as messages.
    """

    what: str
    columns: Mapping[str, Rule]
    rows_required: bool = True
    fix: str = ""  # the way out, added to every refusal: "see the README's Datasets section"

    def header(self) -> str:
        return ",".join(self.columns)

    def _error(self, path: Path, text: str, error) -> UserError:
        return error(f"{path}: {text}" + (f"; {self.fix}" if self.fix else ""))

    def read_text(self, path: Path, error=UserError) -> str:
        try:
            size = path.stat().st_size
            if not path.is_file():
                raise self._error(path, f"is not a file; give the path of a {self.what} CSV", error)
            if size > MAX_CSV_BYTES:
                raise self._error(path, f"is {size / 1e6:.0f} MB, not a {self.what} CSV", error)
            raw = path.read_bytes()
        except FileNotFoundError:
            raise self._error(path, f"{self.what} file does not exist", error) from None
        except OSError as exc:
            raise self._error(path, f"cannot be read ({exc.strerror})", error) from None
        if b"\x00" in raw:
            raise self._error(path, f"holds binary data, not a {self.what} CSV (columns {self.header()})", error)
        try:
            return raw.decode("utf-8-sig")
        except UnicodeDecodeError as exc:
            raise self._error(path, f"is not UTF-8 text (byte {exc.start}); save it as UTF-8 CSV with "
                                    f"columns {self.header()}", error) from None

    def read(self, path: str | Path, error: type[UserError] = UserError, on_bad: str = "raise"):
        """The table (all cells as stripped strings), and the bad rows' messages with ``on_bad="collect"``."""
        import pandas as pd

        path = Path(path)
        text = self.read_text(path, error)
        if not text.strip():
            raise self._error(path, f"is empty; a {self.what} CSV starts with the header {self.header()}", error)
        try:
            table = pd.read_csv(io.StringIO(text), dtype=str, keep_default_na=False, skipinitialspace=True)
        except Exception as exc:  # noqa: BLE001 - pandas raises several parser errors
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else exc.__class__.__name__
            raise self._error(path, f"cannot be read as CSV ({shown(first, 80)})", error) from None
        table.columns = [str(c).strip() for c in table.columns]
        table = table.fillna("")  # a short row's missing cells
        missing = [c for c in self.columns if c not in table.columns]
        if missing:
            raise self._error(path, f"missing column(s) {', '.join(missing)}; a {self.what} CSV has the columns "
                                    f"{self.header()}", error)
        if table.empty and self.rows_required:
            raise self._error(path, f"has a header but no rows; add one row per entry under {self.header()}", error)
        for c in self.columns:
            table[c] = table[c].astype(str).str.strip()
        bad = self._bad_rows(path, table, error, on_bad)
        if on_bad == "collect":
            return table.drop(index=[i for i, _ in bad]), [m for _, m in bad]
        return table

    def _bad_rows(self, path, table, error, on_bad) -> list[tuple[int, str]]:
        bad = []
        for i, row in enumerate(table[list(self.columns)].to_dict("records")):
            for column, rule in self.columns.items():
                name = column
                if isinstance(rule, Depends):
                    name = f"{row[rule.on]} {column}"  # "gender value"
                    rule = rule.for_row(row)
                if rule is None:
                    continue
                try:
                    rule.parse(row[column], name, error)
                except UserError as exc:
                    message = f"{path} row {i + 2}: {exc}"
                    if on_bad == "raise":
                        raise error(message + (f"; {self.fix}" if self.fix else "")) from None
                    bad.append((table.index[i], message))
                    break
        return bad


def parse_cell(rule: Rule, text: str, name: str) -> Any:
    """A CSV cell's value under its rule (the table :meth:`CsvSchema.read` returns keeps strings)."""
    return rule.parse(text, name)


def one_of(values: Iterable, **kwargs) -> Options:
    return Options(tuple(values), **kwargs)
