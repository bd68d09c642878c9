"""The sidebar's dataset: which folder, which label corrections, and the scanned index.

The sidebar scans the folder once (``st.cache_data``, keyed by a cheap fingerprint of the
folder) and leaves a :class:`Loaded` in ``st.session_state``; pages take it through
:func:`explorer.guard.require_dataset`. Typed paths follow :func:`core.paths.user_path`'s rule
and are absolute from here on, so a training started from the app reads the same files.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import streamlit as st

from core import rulebook as rb
from core.dataset import REPORTED_CORRECTIONS, Dataset, Problem, detect_layout, scan
from core.errors import DatasetError, UserError
from core.paths import user_path

REPO = Path(__file__).resolve().parents[1]
LOADED = "_loaded"
DATA_ROOT = "data_root"  # the sidebar's folder input
PENDING_ROOT = "_pending_data_root"  # a folder to switch to on the next run (before the input is drawn)


@dataclass
class Loaded:
    """The sidebar's dataset, or why there is none."""

    root: str  # as typed
    path: Path | None = None  # resolved, absolute
    dataset: Dataset | None = None
    error: str | None = None
    missing: bool = False  # the folder does not exist (the page offers to create the demo there)
    problems: list[Problem] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # warnings about the corrections choice
    files_key: str = ""  # changes when the folder's files change: keys face boxes
    key: str = ""  # files_key plus the corrections: keys anything that depends on labels
    corrections: str | None = None  # the corrections CSV actually applied, absolute (training uses the same)


def runs_dir() -> Path:
    """Where trainings write their run directories: ``$MASKLAB_RUNS``, else ``<repo>/runs``."""
    return user_path(os.environ.get("MASKLAB_RUNS") or REPO / "runs")


def default_data_root() -> str:
    """``$MASKLAB_DATA``, else the demo dataset in the repository (``demo_data/train``)."""
    return os.environ.get("MASKLAB_DATA") or str(REPO / "demo_data" / "train")


def switch_root_on_next_run(root: str | Path) -> None:
    """Make the sidebar's folder ``root`` from the next run on (a drawn input cannot change now)."""
    st.session_state[PENDING_ROOT] = str(root)


def data_root_key() -> str:
    """The sidebar input's key, holding a pending switch or the default on first use."""
    pending = st.session_state.pop(PENDING_ROOT, None)
    if pending is not None:
        st.session_state[DATA_ROOT] = pending
    elif DATA_ROOT not in st.session_state:
        st.session_state[DATA_ROOT] = default_data_root()
    return DATA_ROOT


def _signature(root: Path) -> str:
    """Cheap fingerprint of a dataset folder: modification times of its top-level entries."""
    parts = []
    for p in (root, root / "images", root / "train.csv", root / "info.csv", root / "gt.csv"):
        try:
            s = p.stat()
            parts.append(f"{s.st_mtime_ns}:{s.st_size}")
        except OSError:
            parts.append("-")
    return "|".join(parts)


@st.cache_data(show_spinner="Scanning the dataset…", max_entries=8)
def scan_cached(root: str, corrections: str | None, signature: str) -> Dataset:
    return scan(root, corrections=corrections)


def load_dataset(root: str, corrections: str | None = None) -> Loaded:
    """Scan ``root`` (cached). Never raises for bad input: the reason lands in ``Loaded.error``."""
    root = (root or "").strip()
    if not root:
        return Loaded(root, error="Type a dataset folder in the sidebar.")
    try:
        path = user_path(root)
    except UserError as exc:
        return Loaded(root, error=f"Dataset folder {root!r}: {exc}")
    if not path.exists():
        return Loaded(root, path, missing=True, error=f"Dataset folder `{path}` does not exist.")
    notes = []
    try:
        if corrections and detect_layout(path)[0] != "train":
            notes.append("Label corrections apply to the competition train layout only; they are ignored here.")
            corrections = None
        try:
            ds = scan_cached(str(path), corrections, _signature(path))
        except DatasetError as exc:
            if not corrections:
                raise
            notes.append(f"Label corrections not applied: {exc}")
            corrections = None
            ds = scan_cached(str(path), None, _signature(path))
    except DatasetError as exc:
        return Loaded(root, path, error=str(exc), problems=list(exc.problems), notes=notes)
    except UserError as exc:
        return Loaded(root, path, error=str(exc), notes=notes)
    files_key = f"{path}|{_signature(path)}"
    return Loaded(root, path, ds, problems=list(ds.problems), notes=notes, files_key=files_key,
                  key=f"{files_key}|{corrections or ''}", corrections=corrections)


def corrections_choice(use_reported: bool, custom_path: str) -> tuple[str | None, str | None]:
    """(the corrections CSV to apply, as an absolute path, or None; why a typed path was refused).

    A typed path wins over the shipped reported list; a refused one applies no corrections.
    """
    if (custom_path or "").strip():
        try:
            return str(rb.CORRECTIONS_FILE.check(custom_path, "Corrections CSV")), None
        except UserError as exc:
            return None, f"Label corrections not applied: {exc}"
    return (str(REPORTED_CORRECTIONS) if use_reported else None), None


def loaded() -> Loaded:
    return st.session_state.get(LOADED) or Loaded("", error="No dataset loaded yet.")
