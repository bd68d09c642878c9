"""The rule for paths a user types (core.paths says where relative paths start)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from core.errors import UserError, a
from core.rules.values import Rule, shown


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
            self.fail(name, str(path), error, f"is a folder; give the path of {a(self.what)} file")
        if present and self.kind == "dir" and not is_dir:
            self.fail(name, str(path), error, f"is a file; give the path of {a(self.what)} folder")
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
