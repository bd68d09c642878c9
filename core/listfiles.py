"""The lists a dataset is read with, beside its folder: label corrections (person,field,value)
and the leave-out list (the photos the Data health page flagged). Both are CSV files checked row
by row against the rule book's schemas; neither changes or deletes a file of the dataset.
:func:`write_csv` writes the lists made about a dataset (leave-out, health.csv, faces.csv)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from core import labels
from core import rulebook as rb
from core.errors import DatasetError, UserError
from core.fileio import atomic_path

if TYPE_CHECKING:
    from core.dataset import Problem

CORRECTION_COLUMNS = tuple(rb.CORRECTIONS_CSV.columns)
REPORTED_CORRECTIONS = Path(__file__).parent / "data" / "reported_corrections.csv"


# ----------------------------------------------------------------------------- corrections

def load_corrections(path: str | Path) -> pd.DataFrame:
    """Read a label-corrections CSV (person, field, value), every row checked by its rule.

    ``field`` is ``gender`` (male/female), ``age`` (whole years), ``race`` or ``swap`` with
    value ``incorrect_mask:normal`` (the two photos' labels are exchanged); see
    :data:`core.rulebook.CORRECTIONS_CSV`. A bad row raises DatasetError naming the row.
    """
    return rb.CORRECTIONS_CSV.read(Path(path), error=DatasetError)


def apply_corrections(df: pd.DataFrame, corrections: pd.DataFrame) -> pd.DataFrame:
    """Apply corrections to a train index; mark changed rows in ``corrected``/``correction``."""
    df = df.copy()
    for r in corrections.to_dict("records"):
        rows = df["person"] == r["person"]
        if not rows.any():
            continue
        field_, value = r["field"], r["value"]
        if field_ == "gender":
            df.loc[rows, "gender"] = labels.GENDER_CODES[value]
        elif field_ == "age":
            df.loc[rows, "age"] = int(value)
        elif field_ == "race":
            df.loc[rows, "race"] = value
        else:  # swap the mask labels of two stems
            a, b = value.split(":")
            ma, mb = labels.STEM_TO_MASK[a], labels.STEM_TO_MASK[b]
            df.loc[rows & (df["stem"] == a), "mask"] = mb
            df.loc[rows & (df["stem"] == b), "mask"] = ma
            rows = rows & df["stem"].isin([a, b])
        df.loc[rows, "corrected"] = True
        df.loc[rows, "correction"] = [f"{c}; {field_}={value}".lstrip("; ") for c in df.loc[rows, "correction"]]
    from core.dataset import fill_names  # the index's derived columns (core.dataset imports this module)

    return fill_names(df)


# ----------------------------------------------------------------------------- leave-out

def load_leave_out(path: str | Path) -> pd.DataFrame:
    """Read a leave-out CSV (path,issue: :data:`core.rulebook.LEAVE_OUT_CSV`), written by the Data
    health page: images, or persons' folders, to leave out of the index. A bad row raises
    DatasetError naming the row."""
    return rb.LEAVE_OUT_CSV.read(Path(path), error=DatasetError)


def _norm(path: str | Path, root: Path) -> str:
    """An absolute, normalised path: relative ones start at the dataset folder (no ``~``: the file
    is written by the app, and a ``~user`` of another machine must not fail here)."""
    path = Path(path)
    return os.path.normpath(os.path.abspath(path if path.is_absolute() else root / path))


def _folders_inside(path: str, root: str) -> list[str]:
    """The folders holding ``path``, from its own up to ``root`` included (none above it)."""
    folders = []
    folder = os.path.dirname(path)
    while folder != os.path.dirname(folder) and (folder == root or folder.startswith(root.rstrip(os.sep) + os.sep)):
        folders.append(folder)
        if folder == root:
            break
        folder = os.path.dirname(folder)
    return folders


def apply_leave_out(df: pd.DataFrame, root: Path, table: pd.DataFrame, source: str,
                    problems: list[Problem]) -> tuple[pd.DataFrame, int]:
    """``df`` without the images ``table`` lists, and how many were left out. A listed path is an
    image, or a folder inside the dataset folder ``root`` (``root`` included) for every image under
    it at any depth (a person's folder, a class folder, the competition's ``images/``); relative
    paths start at ``root``. A folder outside ``root`` (even one holding it) matches nothing; listed
    paths that match no image become problems."""
    from core.dataset import Problem  # (core.dataset imports this module)

    top = _norm(root, root)
    listed = {_norm(p, root) for p in table["path"]}
    paths = [_norm(p, root) for p in df["path"]]
    holders = [_folders_inside(p, top) for p in paths]
    out = np.array([p in listed or any(f in listed for f in folders) for p, folders in zip(paths, holders)],
                   dtype=bool)
    matched = set(paths) | {f for folders in holders for f in folders}
    for missing in sorted(listed - matched):
        problems.append(Problem(missing, f"listed in the leave-out file {source} but not in the dataset; "
                                         "remove the row or check the dataset folder"))
    return df[~out], int(out.sum())


# ----------------------------------------------------------------------------- writing

def write_csv(table: pd.DataFrame, out: str | Path, what: str) -> Path:
    """Write ``table`` to ``out`` at once (readers never see half a file), making its folder when
    missing (the out-file rule allows a new folder). A failed write (no permission, a full disk,
    a folder in the way) is one UserError naming the file, never a traceback."""
    out = Path(out)
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        with atomic_path(out) as tmp:
            table.to_csv(tmp, index=False)
    except OSError as exc:
        raise UserError(f"cannot write the {what} to {out}: {exc.strerror or exc}; choose another file in a "
                        "folder you can write to") from None
    return out
