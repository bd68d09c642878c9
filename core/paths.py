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
    """``text`` as an absolute path under the rule above (``~`` expanded, relative -> :func:`user_base`).

    Odd paths are refused with UserError saying why, never with a traceback: a NUL character,
    ``~user`` for a user that does not exist, text the filesystem cannot encode, and a name
    longer than the filesystem allows.
    """
    text = str(text).strip()
    if "\x00" in text:
        raise UserError("a path cannot hold a NUL character")
    try:
        path = Path(text).expanduser()
        os.fsencode(path)
    except RuntimeError:  # Path.expanduser: "~user" for a user that does not exist
        raise UserError(f"{text.split('/')[0]} names no user on this machine; write the folder out in full") from None
    except UnicodeError:
        raise UserError("the path is not valid text in this system's encoding") from None
    path = (path if path.is_absolute() else user_base() / path).resolve()
    limit = _name_max(path)
    long_part = next((part for part in path.parts if len(os.fsencode(part)) > limit), None)
    if long_part is not None:
        raise UserError(f"the name {long_part[:20]}... is longer than this filesystem's {limit} bytes; give a "
                        "shorter name")
    return path


def _name_max(path: Path) -> int:
    """The longest file name (bytes) the filesystem under ``path`` takes."""
    for folder in (path, *path.parents):
        try:
            return os.pathconf(folder, "PC_NAME_MAX")
        except (OSError, ValueError, AttributeError):
            continue
    return 255


def eval_dir_beside(data: str | Path | None) -> Path | None:
    """The ``eval`` folder beside a dataset folder (demo_data/train -> demo_data/eval), if there is one."""
    if not data or not str(data).strip():
        return None
    try:
        sibling = user_path(data).parent / "eval"
        return sibling if sibling.is_dir() else None
    except (UserError, OSError):
        return None
