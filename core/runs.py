"""Run directories: every file a training writes, and the readers the app and predict use.

All writing of a run goes through :class:`RunWriter`, so that under ``torchrun`` "only rank 0
writes" is one flag (``RunWriter(..., enabled=rank == 0)``). Files of a run::

    config.json            resolved settings, recipe, dataset summary and the CLI command
    recipe.json            the resolved recipe (what --recipe gets to repeat the run)
    metrics.jsonl          one JSON line per epoch (and fold)
    status.json            state running/done/failed/stopped, progress and ETA (~2 updates/s)
    train.log              timestamped messages
    best.pt, last.pt       checkpoints (foldK/best.pt, foldK/last.pt with --folds K)
    val_predictions.csv    path,true,pred,prob_true,loss,[fold,]p0..p{C-1} (out-of-fold with --folds)
    confusion_matrix.csv, per_class_report.csv, summary.json
    STOP                   written by the app's Stop button; training stops after the batch

Checkpoints are loaded with ``torch.load(weights_only=True)``: no code in a file ever runs,
and a file without this project's marker keys is refused with :class:`CheckpointError`.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import secrets
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from core.errors import CheckpointError, UserError
from core.fileio import atomic_path, atomic_write

FORMAT = 1  # checkpoint format version, stored under the marker key "masklab"
MARKER = "masklab"
STATUS_INTERVAL = 0.5  # seconds between status.json rewrites (state changes always write)


def run_name_part(model: str) -> str:
    """A model name as one safe part of a folder name: ``timm/resnet18`` -> ``timm-resnet18``."""
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", model).strip("-.")[:60] or "model"


def new_run_dir(out: str | Path, model: str) -> Path:
    """A fresh, uniquely named run folder, e.g. ``runs/20261127-031500-resnet18-ab12``
    (``timm/NAME`` models: ``...-timm-NAME-ab12``)."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    while True:
        path = out / f"{time.strftime('%Y%m%d-%H%M%S')}-{run_name_part(model)}-{secrets.token_hex(2)}"
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

    def __init__(self, run_dir: str | Path, enabled: bool = True, writes_status: bool | None = None):
        self.dir = Path(run_dir)
        self.enabled = enabled  # False on every rank but 0 under torchrun (folds in parallel: each writes its own)
        self.writes_status = enabled if writes_status is None else writes_status  # status.json: one writer
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
        if self.writes_status and (force or changed_state or now - self._status_time >= STATUS_INTERVAL):
            self._status_time = now
            self.write_json("status.json", self._status)

    # --- checkpoints -----------------------------------------------------------------
    def save_checkpoint(self, relpath: str, checkpoint: dict) -> Path:
        path = self.dir / relpath
        if self.enabled:
            import torch

            path.parent.mkdir(parents=True, exist_ok=True)
            with atomic_path(path) as tmp:
                torch.save({MARKER: FORMAT, **checkpoint}, tmp)
        return path


# ----------------------------------------------------------------------------- readers

def load_checkpoint(path: str | Path) -> dict:
    """A checkpoint written by this project, loaded without running code from the file.

    Anything else (random bytes, a pickle, a bare state_dict) raises CheckpointError.
    """
    import torch

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


MAX_JSON_BYTES = 50_000_000  # far beyond any file a run writes


def read_json(path: Path, missing: dict | None = None) -> dict:
    """A JSON object of a run; ``missing`` (when given) stands in for a file not written yet.

    Every JSON file of a run is replaced atomically, so a damaged or foreign one is an error
    (UserError naming the file), never a race and never a traceback.
    """
    path = Path(path)
    if missing is not None and not path.is_file():
        return missing
    try:
        if path.stat().st_size > MAX_JSON_BYTES:
            raise UserError(f"{path}: {path.stat().st_size / 1e6:.0f} MB is not a file a run writes")
        data = json.loads(path.read_bytes().decode("utf-8"))
    except (OSError, ValueError, RecursionError) as exc:  # ValueError: bad JSON and non-UTF-8 bytes
        raise UserError(f"{path}: cannot be read as JSON ({exc.__class__.__name__}); the run folder is damaged "
                        "or not one that masklab wrote") from None
    if not isinstance(data, dict):
        raise UserError(f"{path}: holds a JSON {type(data).__name__}, not the object a run writes; the run folder "
                        "is not one that masklab wrote")
    return data


def read_config(run: str | Path) -> dict:
    """config.json of a run this project wrote; UserError for anything else (a foreign folder
    that happens to hold a config.json, a damaged one)."""
    path = run_path(run) / "config.json"
    config = read_json(path)
    settings, names = config.get("config"), config.get("class_names", [])
    if not isinstance(settings, dict) or not isinstance(names, list):
        raise UserError(f"{path}: not a masklab run's config (it has no 'config' settings); pass a run directory "
                        "that python -m core train wrote")
    folds = settings.get("folds", 0)
    if folds is not None and (isinstance(folds, bool) or not isinstance(folds, int) or not 0 <= folds <= 1000):
        raise UserError(f"{path}: folds {folds!r} is not a fold count; the run folder is damaged")
    return config


def read_status(run: str | Path) -> dict:
    path = Path(run) / "status.json"
    return read_json(path) if path.is_file() else {}


METRIC_KEYS = ("fold", "epoch", "macro_f1")  # every metrics.jsonl record has them, as numbers


def read_metrics(run: str | Path) -> list[dict]:
    """The records of metrics.jsonl. The trainer appends to it while others read: a last line
    without its newline is still being written and is left for the next read."""
    path = Path(run) / "metrics.jsonl"
    if not path.is_file():
        return []
    try:
        text = path.read_bytes().decode("utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise UserError(f"{path}: cannot be read ({exc.__class__.__name__}); the file is damaged") from None
    records = []
    for number, line in enumerate(text.split("\n")[:-1], 1):  # after the last newline: incomplete
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except (json.JSONDecodeError, RecursionError):
            raise UserError(f"{path} line {number}: not a JSON record; the file is damaged") from None
        if not isinstance(record, dict) or not all(
                isinstance(record.get(k), (int, float)) and not isinstance(record.get(k), bool) for k in METRIC_KEYS):
            raise UserError(f"{path} line {number}: not a masklab metrics record (needs numeric "
                            f"{', '.join(METRIC_KEYS)}); the file is damaged or foreign")
        records.append(record)
    return records


def fold_dirs(folds: int) -> list[str]:
    """Relative folder of each model of a run: [""] for one split, ["fold0", ...] for folds."""
    return [f"fold{k}" for k in range(folds)] if folds >= 2 else [""]


def checkpoint_paths(run: str | Path, name: str = "best.pt") -> list[Path]:
    """The ``name`` checkpoint of every model of a run, in fold order."""
    run = run_path(run)
    return [run / sub / name for sub in fold_dirs(fold_count(run))]


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


# ----------------------------------------------------------------------------- what the app shows

METRIC_COLUMNS = ["fold", "epoch", "train_loss", "val_loss", "accuracy", "macro_f1"]


def metrics_frame(run: str | Path) -> pd.DataFrame:
    """metrics.jsonl as one row per (fold, epoch); no rows (same columns) before the first epoch."""
    records = read_metrics(run)
    return pd.DataFrame([{c: r.get(c) for c in METRIC_COLUMNS} for r in records], columns=METRIC_COLUMNS)


def epoch_curves(run: str | Path) -> pd.DataFrame:
    """Per epoch, the mean over folds: what the Runs page compares across runs."""
    m = metrics_frame(run)
    if m.empty:
        return m.drop(columns="fold")
    return m.groupby("epoch", as_index=False)[METRIC_COLUMNS[2:]].mean()


def read_summary(run: str | Path) -> dict:
    """summary.json (the best checkpoint's scores), or {} while the training has not finished."""
    return read_json(Path(run) / "summary.json", missing={})


def read_table(run: str | Path, name: str, index_col: int | None = None) -> pd.DataFrame | None:
    """A CSV report of a run (confusion_matrix.csv, per_class_report.csv, val_predictions.csv), or
    None before the trainer has written it."""
    path = Path(run) / name
    if not path.is_file():
        return None
    try:
        return pd.read_csv(path, index_col=index_col)
    except (OSError, ValueError) as exc:
        raise UserError(f"{path}: cannot be read as CSV ({exc.__class__.__name__})") from None


def fold_count(run: str | Path) -> int:
    """How many models the run trains: its --folds when >= 2, else 1."""
    folds = read_config(run)["config"].get("folds") or 0
    return folds if folds >= 2 else 1


@dataclass
class Scores:
    """A run's validation macro F1, honestly labelled.

    ``best_f1`` is the score of the checkpoint(s) picked *on that same validation data*
    (the best epoch of each fold), so it is optimistic; ``last_f1`` is the last epoch's, which
    nothing was picked on. With folds, ``best_f1`` is out-of-fold over all images and
    ``last_f1`` the mean of the folds' last epochs.
    """

    scope: str  # "validation" (one split) or "out-of-fold" (--folds K)
    best_f1: float | None  # summary.json once done; while running, the mean of the folds' best epochs
    best_epochs: list[int]  # one per fold
    last_f1: float | None  # metrics.jsonl: mean over folds of each fold's last epoch
    last_epochs: list[int]
    accuracy: float | None  # of the best checkpoint(s) (summary.json), else of the last epoch
    final: bool  # True once summary.json is written (the scores with flip TTA, if the recipe flips)


def run_scores(run: str | Path) -> Scores:
    """The scores of :class:`Scores` from summary.json and metrics.jsonl."""
    summary, m = read_summary(run), metrics_frame(run)
    by_fold = [part for _, part in m.groupby("fold")] if len(m) else []
    best_rows = [part.loc[part["macro_f1"].idxmax()] for part in by_fold]
    last_rows = [part.iloc[-1] for part in by_fold]

    def mean(rows, column):
        return float(sum(r[column] for r in rows) / len(rows)) if rows else None

    return Scores(
        scope=summary.get("scope", "out-of-fold" if len(by_fold) > 1 else "validation"),
        best_f1=summary.get("macro_f1", mean(best_rows, "macro_f1")),
        best_epochs=list(summary.get("best_epochs") or [int(r["epoch"]) for r in best_rows]),
        last_f1=mean(last_rows, "macro_f1"), last_epochs=[int(r["epoch"]) for r in last_rows],
        accuracy=summary.get("accuracy", mean(last_rows, "accuracy")), final=bool(summary))


def run_overview(run: str | Path) -> dict:
    """One row of the Runs table: name, model, epochs done / planned, scores, creation time.

    Raises UserError when config.json cannot be read (the caller shows that in the row).
    """
    config = read_config(run)
    cfg = config.get("config", {})
    scores = run_scores(run)
    return {"run": Path(run).name, "model": cfg.get("model", "?"),
            "epochs": f"{min(scores.last_epochs, default=0)}/{cfg.get('epochs', '?')}",
            "best_f1": scores.best_f1, "best_epochs": ", ".join(map(str, scores.best_epochs)),
            "last_f1": scores.last_f1, "accuracy": scores.accuracy, "created": config.get("created", "")}


def submission_path(run: str | Path, eval_dir: str | Path) -> Path:
    """Where the app keeps the submission for ``eval_dir``: beside the run's other outputs, one
    file per eval folder (named after it, with a hash of its full path)."""
    eval_dir = Path(eval_dir)
    tag = hashlib.sha1(str(eval_dir).encode()).hexdigest()[:6]
    return Path(run) / f"submission-{eval_dir.name}-{tag}.csv"
