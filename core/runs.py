"""Run directories: every file a training writes, and the readers the app and predict use.

All writing of a run goes through :class:`RunWriter`, so that under ``torchrun`` "only rank 0
writes" is one flag (``RunWriter(..., enabled=rank == 0)``). Files of a run::

    config.json            resolved settings, recipe, dataset summary and the CLI command
    recipe.json            the resolved recipe (what --recipe gets to repeat the run)
    metrics.jsonl          one JSON line per epoch (and fold)
    status.json            state running/done/failed/stopped, progress and ETA (~2 updates/s)
    train.log              timestamped messages
    best.pt, last.pt       checkpoints (foldK/best.pt, foldK/last.pt with --folds K)
    val_predictions.csv    path,true,pred,prob_true,loss (out-of-fold with --folds)
    confusion_matrix.csv, per_class_report.csv, summary.json
    STOP                   written by the app's Stop button; training stops after the batch

Checkpoints are loaded with ``torch.load(weights_only=True)``: no code in a file ever runs,
and a file without this project's marker keys is refused with :class:`CheckpointError`.
"""

from __future__ import annotations

import json
import os
import secrets
import time
from pathlib import Path
from typing import Any

import pandas as pd
import torch

from core.errors import CheckpointError, UserError
from core.fileio import atomic_path, atomic_write

FORMAT = 1  # checkpoint format version, stored under the marker key "masklab"
MARKER = "masklab"
STATUS_INTERVAL = 0.5  # seconds between status.json rewrites (state changes always write)


def new_run_dir(out: str | Path, model: str) -> Path:
    """A fresh, uniquely named run folder, e.g. ``runs/20261127-031500-resnet18-ab12``."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    while True:
        path = out / f"{time.strftime('%Y%m%d-%H%M%S')}-{model}-{secrets.token_hex(2)}"
        try:
            path.mkdir()
            return path
        except FileExistsError:
            continue


def _atomic_write_bytes(path: Path, data: bytes) -> None:
    atomic_write(path, data)


def _atomic_write_text(path: Path, text: str) -> None:
    atomic_write(path, text)


class RunWriter:
    """The one place that writes into a run directory."""

    def __init__(self, run_dir: str | Path, enabled: bool = True):
        self.dir = Path(run_dir)
        self.enabled = enabled  # False on every rank but 0 under torchrun
        self._status: dict[str, Any] = {}
        self._status_time = 0.0

    # --- small files -----------------------------------------------------------------
    def write_json(self, name: str, data: dict) -> None:
        if self.enabled:
            _atomic_write_text(self.dir / name, json.dumps(data, indent=2, default=str) + "\n")

    def write_csv(self, name: str, table: pd.DataFrame, index: bool = False) -> None:
        if self.enabled:
            with atomic_path(self.dir / name) as tmp:
                table.to_csv(tmp, index=index)

    def log(self, message: str) -> None:
        if self.enabled:
            with open(self.dir / "train.log", "a") as fh:
                fh.write(f"{time.strftime('%Y-%m-%d %H:%M:%S')} {message}\n")

    # --- metrics ---------------------------------------------------------------------
    def append_metrics(self, record: dict) -> None:
        if self.enabled:
            with open(self.dir / "metrics.jsonl", "a") as fh:
                fh.write(json.dumps(record) + "\n")

    def rewrite_metrics(self, records: list[dict]) -> None:
        """Replace metrics.jsonl (on resume: the history the checkpoint vouches for)."""
        if self.enabled:
            _atomic_write_text(self.dir / "metrics.jsonl", "".join(json.dumps(r) + "\n" for r in records))

    # --- status ----------------------------------------------------------------------
    def status(self, force: bool = False, **fields) -> None:
        """Merge ``fields`` into status.json; rewritten at most every STATUS_INTERVAL seconds
        unless ``force`` or the state changes."""
        changed_state = "state" in fields and fields["state"] != self._status.get("state")
        self._status.update(fields, pid=os.getpid(), updated=time.time())
        now = time.monotonic()
        if force or changed_state or now - self._status_time >= STATUS_INTERVAL:
            self._status_time = now
            self.write_json("status.json", self._status)

    # --- checkpoints -----------------------------------------------------------------
    def save_checkpoint(self, relpath: str, checkpoint: dict) -> Path:
        path = self.dir / relpath
        if self.enabled:
            path.parent.mkdir(parents=True, exist_ok=True)
            with atomic_path(path) as tmp:
                torch.save({MARKER: FORMAT, **checkpoint}, tmp)
        return path


# ----------------------------------------------------------------------------- readers

def load_checkpoint(path: str | Path) -> dict:
    """A checkpoint written by this project, loaded without running code from the file.

    Anything else (random bytes, a pickle, a bare state_dict) raises CheckpointError.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: checkpoint file does not exist")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - unpickling errors come in many types
        raise CheckpointError(f"{path}: not a masklab checkpoint; refused to load it "
                              f"({exc.__class__.__name__}, nothing in it was run)") from None
    if not isinstance(ckpt, dict) or ckpt.get(MARKER) != FORMAT:
        raise CheckpointError(f"{path}: not a masklab checkpoint (no '{MARKER}': {FORMAT} marker); "
                              "pass a best.pt or last.pt from a run directory")
    for key in ("model", "model_name", "num_classes", "recipe"):
        if key not in ckpt:
            raise CheckpointError(f"{path}: masklab checkpoint is missing {key!r}; the file is damaged")
    return ckpt


def run_path(run: str | Path) -> Path:
    """Check that ``run`` is a run directory (has config.json)."""
    path = Path(run).expanduser()
    if not path.is_dir():
        raise UserError(f"{path}: run directory does not exist")
    if not (path / "config.json").is_file():
        raise UserError(f"{path}: not a run directory (no config.json); pass a folder under runs/")
    return path


def read_json(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise UserError(f"{path}: cannot be read as JSON ({exc.__class__.__name__})") from None


def read_config(run: str | Path) -> dict:
    return read_json(run_path(run) / "config.json")


def read_status(run: str | Path) -> dict:
    path = Path(run) / "status.json"
    return read_json(path) if path.is_file() else {}


def read_metrics(run: str | Path) -> list[dict]:
    path = Path(run) / "metrics.jsonl"
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def fold_dirs(folds: int) -> list[str]:
    """Relative folder of each model of a run: [""] for one split, ["fold0", ...] for folds."""
    return [f"fold{k}" for k in range(folds)] if folds >= 2 else [""]


def checkpoint_paths(run: str | Path, name: str = "best.pt") -> list[Path]:
    """The ``name`` checkpoint of every model of a run, in fold order."""
    run = run_path(run)
    folds = int(read_config(run)["config"].get("folds", 0))
    return [run / sub / name for sub in fold_dirs(folds)]


def list_runs(out: str | Path = "runs") -> list[Path]:
    """Run directories under ``out``, newest first."""
    out = Path(out)
    if not out.is_dir():
        return []
    runs = [p for p in out.iterdir() if (p / "config.json").is_file()]
    return sorted(runs, key=lambda p: p.stat().st_mtime, reverse=True)


def request_stop(run: str | Path) -> Path:
    """What the app's Stop button does: write STOP; training stops after its current batch."""
    path = Path(run) / "STOP"
    path.write_text("stop\n")
    return path


def stop_requested(run: str | Path) -> bool:
    return (Path(run) / "STOP").exists()
