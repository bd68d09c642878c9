"""A value's whole declaration (Param), as dataclass field metadata, and the command-line flag
made from it."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from core.errors import UserError
from core.rules.paths import PathRule
from core.rules.values import MISSING, Boolean, Rule, Text


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
