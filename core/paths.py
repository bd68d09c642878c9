"""Where files go and where typed paths point: the cache folder, and the one rule for paths a
user types (in the app's sidebar, or on the command line).

The rule: ``~`` is the user's home; any other relative path is taken relative to
:func:`user_base`, which is ``$MASKLAB_HOME`` when set, else the folder the process was started
in (for ``make run`` and ``streamlit run explorer/app.py``: the repository root). The app hands
the resolved, absolute path to anything it starts (the training process runs in another folder),
so a relative path never means two different files.
"""

from __future__ import annotations

import os
from pathlib import Path

from core.errors import UserError

HOME_ENV = "MASKLAB_HOME"
_STARTED_IN = Path.cwd()  # the folder the process was started in, before anyone could chdir
RULE = f"relative paths start at ${HOME_ENV}, else the folder the app was started in"


def cache_dir(sub: str = "") -> Path:
    """The cache folder (``$MASKLAB_CACHE``, else ``~/.cache/masklab``), created on demand."""
    base = Path(os.environ.get("MASKLAB_CACHE") or Path.home() / ".cache" / "masklab")
    path = base / sub if sub else base
    path.mkdir(parents=True, exist_ok=True)
    return path


def user_base() -> Path:
    """The folder relative paths are resolved against: ``$MASKLAB_HOME``, else the start folder."""
    home = os.environ.get(HOME_ENV)
    return Path(home).expanduser().resolve() if home else _STARTED_IN


def user_path(text: str | Path) -> Path:
    """``text`` as an absolute path under the rule above (``~`` expanded, relative -> :func:`user_base`)."""
    path = Path(str(text).strip()).expanduser()
    return (path if path.is_absolute() else user_base() / path).resolve()


def user_file(text: str | Path, suffix: str, what: str, must_exist: bool = True) -> Path:
    """The absolute path of a ``suffix`` file the user typed, or UserError saying why not.

    ``must_exist`` False is for saving: the file may be new, but its folder must exist. A
    refusal names the resolved path, the rule it broke and what to do; it never reads the
    file, so nothing of its contents can end up in the message.
    """
    if not str(text).strip():
        raise UserError(f"no {what} path given: type the path of a {suffix} file ({RULE}: {user_base()})")
    path = user_path(text)
    if path.is_dir():
        raise UserError(f"{path} is a folder, not a {what} file: type the path of a {suffix} file")
    if path.suffix.lower() != suffix:
        raise UserError(f"{path}: a {what} file must end in {suffix}; type the path of a {suffix} file")
    if must_exist and not path.is_file():
        raise UserError(f"{path}: no such {what} file ({RULE}: {user_base()}); check the path or type "
                        "an absolute one")
    if not must_exist and not path.parent.is_dir():
        raise UserError(f"{path}: the folder {path.parent} does not exist ({RULE}: {user_base()}); "
                        "create it first or choose another path")
    return path


def eval_dir_beside(data: str | Path | None) -> Path | None:
    """The ``eval`` folder beside a dataset folder (demo_data/train -> demo_data/eval), if there is one."""
    if not data or not str(data).strip():
        return None
    sibling = user_path(data).parent / "eval"
    return sibling if sibling.is_dir() else None
