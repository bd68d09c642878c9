"""Prediction with a finished run, and scoring a submission against the true answers.

``predict`` preprocesses the images with the run's own recipe (never its augmentation), runs
the best checkpoint (the mean softmax of the fold models with ``--folds``) and writes:

* for a competition eval folder: ``ImageID,ans`` with exactly info.csv's rows in its order
  (an image that cannot be read still gets a row: the most frequent training class);
* for any other folder of images: ``path,pred,pred_name``.

Test-time augmentation is a choice (``tta``, see TTA_HELP): by default a run whose recipe flips
in training averages each image with its mirror. Several runs make an ensemble: the mean of
their probabilities, each run preprocessing the images with its own recipe.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd
import torch
import torch.nn as nn

from core import rulebook as rb
from core.cache import build_cache
from core.dataset import EVAL_CSV_COLUMNS, Problem, detect_layout, scan
from core.devices import resolve_device
from core.errors import DatasetError, UserError
from core.fileio import atomic_path
from core.images import check_image
from core.inference import predict_logits
from core.labels import CLASS_NAMES, IMAGE_EXTENSIONS
from core.metrics import accuracy, macro_f1, per_class_report, task_f1
from core.models import new_model
from core.recipe import Recipe
from core.runs import checkpoint_paths, load_checkpoint, read_config

Log = Callable[[str], None]


# ----------------------------------------------------------------------------- the run

def load_models(run: str | Path, device: torch.device) -> tuple[list[nn.Module], dict]:
    """The best model of each fold of ``run``, and the first checkpoint's metadata."""
    paths = checkpoint_paths(run)
    missing = [p for p in paths if not p.is_file()]
    if missing:
        raise UserError(f"{missing[0]}: missing; the run has no best checkpoint yet (it must finish an epoch)")
    models, meta = [], None
    for path in paths:
        ckpt = load_checkpoint(path)
        model = new_model(ckpt["model_name"], int(ckpt["num_classes"]), ckpt.get("head", "flat"))
        try:
            model.load_state_dict(ckpt["model"])
        except RuntimeError:
            raise UserError(f"{path}: its weights do not fit model {ckpt['model_name']!r}; the file is damaged") from None
        models.append(model.to(device).eval())
        meta = meta or {k: v for k, v in ckpt.items() if k != "model"}
    return models, meta


def mean_probabilities(models: list[nn.Module], images: np.ndarray, device: torch.device,
                       batch_size: int = 128, tta: bool = False) -> np.ndarray:
    """(N, C) softmax probabilities averaged over the models (and mirrors with ``tta``)."""
    total = None
    for model in models:
        logits = predict_logits(model, images, None, batch_size, device, tta=tta)
        probs = torch.softmax(torch.from_numpy(logits), dim=1).numpy()
        total = probs if total is None else total + probs
    return total / len(models)


def _fallback_class(run: Path, class_names: list[str]) -> int:
    """The most frequent class in the run's training data (for rows that cannot be predicted)."""
    counts = read_config(run).get("dataset", {}).get("class_counts", {})
    if not counts:
        return 0
    name = max(counts, key=counts.get)
    return class_names.index(name) if name in class_names else 0


# ----------------------------------------------------------------------------- images

def _image_rows(folder: Path) -> tuple[pd.DataFrame, list[Problem]]:
    """A flat folder of images (no layout): one row per readable image, sorted by name, and a
    Problem for each image file that cannot be read."""
    rows, problems = [], []
    for p in sorted(folder.iterdir()):
        if p.name.startswith(".") or p.suffix.lower() not in IMAGE_EXTENSIONS + (".bmp", ".webp"):
            continue
        why, _ = check_image(p)
        if why is None:
            rows.append({"path": str(p)})
        else:
            problems.append(Problem(str(p), why))
    if not rows:
        raise UserError(f"{folder}: no readable images to predict")
    return pd.DataFrame(rows), problems


def _index_for(data: Path) -> tuple[str, pd.DataFrame, list]:
    """(layout, index, problems) for a folder to predict."""
    if not data.is_dir():
        raise UserError(f"{data}: folder to predict does not exist")
    try:
        layout, _ = detect_layout(data)
    except DatasetError:
        return ("flat", *_image_rows(data))
    ds = scan(data)
    return layout, ds.df, ds.problems


# ----------------------------------------------------------------------------- entry points

TTA_CHOICES = rb.TTA.values
TTA_HELP = rb.TTA_PARAM.help


def check_tta(tta: str) -> None:
    rb.TTA.check(tta, "--tta")


def resolve_tta(tta: str, recipe: Recipe) -> bool:
    """Whether to average in the mirrored images: ``tta`` is one of TTA_CHOICES."""
    check_tta(tta)
    return recipe.augment.hflip if tta == "auto" else tta == "flip"


def _run_list(runs: str | Path | list) -> list[Path]:
    runs = [Path(r) for r in runs] if isinstance(runs, (list, tuple)) else [Path(runs)]
    if not runs:
        raise UserError("predict needs at least one --run")
    return runs


def run_probabilities(run: Path, models: list[nn.Module], meta: dict, df: pd.DataFrame, dev: torch.device,
                      tta: str = "auto", batch_size: int = 128, progress=None, log: Log | None = None,
                      workers: int | None = None) -> np.ndarray:
    """(N, C) probabilities of ``df``'s images by one run's ``models`` (see :func:`load_models`),
    preprocessed with that run's own recipe, so from its own image cache."""
    recipe = Recipe.from_dict(meta["recipe"])
    flip = resolve_tta(tta, recipe)
    if log and tta == "auto":
        log(f"{run.name}: --tta auto = {'flip' if flip else 'none'} (its recipe "
            f"{'flips' if recipe.augment.hflip else 'does not flip'} in training)")
    images = build_cache(df, recipe, progress=progress, log=log, workers=workers)
    return mean_probabilities(models, images, dev, batch_size, tta=flip)


def _class_names(meta: dict) -> list[str]:
    return list(meta.get("class_names") or [str(i) for i in range(int(meta["num_classes"]))])


def load_runs(runs: str | Path | list, dev: torch.device) -> list[tuple[Path, list[nn.Module], dict]]:
    """(run, models, metadata) of each run, checked before any image is prepared: every best
    checkpoint loads, and all runs share one set of classes (what averaging needs)."""
    loaded = [(run, *load_models(run, dev)) for run in _run_list(runs)]
    first, _, meta = loaded[0]
    for run, _, other in loaded[1:]:
        if _class_names(other) != _class_names(meta):
            raise UserError(f"{run}: its classes differ from {first}'s; an ensemble needs runs trained on the "
                            "same classes")
    return loaded


def ensemble_probabilities(loaded: list[tuple[Path, list[nn.Module], dict]], df: pd.DataFrame, dev: torch.device,
                           tta: str = "auto", batch_size: int = 128, progress=None, log: Log | None = None,
                           workers: int | None = None) -> np.ndarray:
    """The mean of the probabilities of the runs :func:`load_runs` loaded (each run counts once,
    whatever its folds)."""
    total = sum(run_probabilities(run, models, meta, df, dev, tta, batch_size, progress, log, workers)
                for run, models, meta in loaded)
    return total / len(loaded)


def predict_probabilities(runs: str | Path | list, data_dir: str | Path, device: str = "auto", tta: str = "auto",
                          batch_size: int = 128, progress=None, log: Log | None = None,
                          workers: int | None = None) -> tuple[str, pd.DataFrame, list, np.ndarray, list[str]]:
    """(layout, index, problems, (N, C) probabilities, class names) of ``data_dir``'s images
    by one run or the mean of several (an ensemble)."""
    check_tta(tta)
    dev = resolve_device(device)
    loaded = load_runs(runs, dev)  # a bad run or checkpoint is named before the images are read
    layout, df, problems = _index_for(Path(data_dir).expanduser())
    probs = ensemble_probabilities(loaded, df, dev, tta, batch_size, progress, log, workers)
    return layout, df, problems, probs, _class_names(loaded[0][2])


def predict(run_dir: str | Path | list, data_dir: str | Path, out_csv: str | Path, device: str = "auto",
            batch_size: int = 128, progress: Callable[[int, int], None] | None = None,
            log: Log | None = None, workers: int | None = None, tta: str = "auto") -> Path:
    """Predict ``data_dir`` with the run's best model(s); write ``out_csv`` (see module doc).

    ``run_dir``: one run, or a list of runs whose probabilities are averaged (an ensemble;
    each run preprocesses with its own recipe). ``tta``: one of TTA_CHOICES (see TTA_HELP).
    ``workers``: processes preparing the images (None: every usable core)."""
    runs, data, out = _run_list(run_dir), Path(data_dir).expanduser(), Path(out_csv)
    layout, df, problems, probs, class_names = predict_probabilities(runs, data, device, tta, batch_size, progress,
                                                                     log, workers)
    pred = probs.argmax(1)
    out.parent.mkdir(parents=True, exist_ok=True)
    if layout == "eval":
        table = _submission(data, df, pred, _fallback_class(runs[0], class_names), problems, log)
    else:
        if problems and log:  # (an eval folder's unreadable images get the fallback class instead: see _submission)
            listed = "" if layout == "flat" else f"; `python -m core info --data {data}` lists them all"
            log(f"{len(problems)} file(s) of {data} could not be read and have no row (first: {problems[0]}){listed}")
        table = pd.DataFrame({"path": df["path"], "pred": pred, "pred_name": [class_names[p] for p in pred]})
    with atomic_path(out) as tmp:  # a stopped or failed run never leaves half a submission
        table.to_csv(tmp, index=False)
    return out


def _submission(data: Path, df: pd.DataFrame, pred: np.ndarray, fallback: int, problems: list,
                log: Log | None) -> pd.DataFrame:
    """info.csv's rows in its order with ``ans`` filled in."""
    info = pd.read_csv(data / "info.csv", dtype=str, keep_default_na=False)
    answers = dict(zip(df["image_id"], pred))
    missing = [i for i in info["ImageID"] if i not in answers]
    if missing and log:
        first = next((str(p) for p in problems if missing[0] in p.path), missing[0])
        log(f"{len(missing)} of {len(info)} image(s) in info.csv could not be read (first: {first}); "
            f"they were given the most frequent training class {fallback}")
    info["ans"] = [int(answers.get(i, fallback)) for i in info["ImageID"]]
    return info[list(EVAL_CSV_COLUMNS)]


def _read_answers(path: Path) -> pd.DataFrame:
    """A submission or gt.csv: ImageID,ans with every ans a class 0-17 (rulebook.ANSWERS_CSV)."""
    return rb.ANSWERS_CSV.read(path)


def evaluate(pred_csv: str | Path, gt_csv: str | Path) -> dict:
    """accuracy, macro F1, each task's macro F1 (task_f1: mask, gender, age; core.metrics.task_f1)
    and a per-class table of a submission against the true answers."""
    pred_path, gt_path = Path(pred_csv), Path(gt_csv)
    pred, gt = _read_answers(pred_path), _read_answers(gt_path)
    if len(pred) != len(gt):
        raise UserError(f"{pred_path}: has {len(pred)} rows but {gt_path} has {len(gt)}; "
                        "a submission keeps every row of info.csv")
    differ = np.flatnonzero(pred["ImageID"].to_numpy() != gt["ImageID"].to_numpy())
    if len(differ):
        i = differ[0]
        raise UserError(f"{pred_path}: row {i + 2} has ImageID {pred['ImageID'][i]!r} where {gt_path} has "
                        f"{gt['ImageID'][i]!r}; keep info.csv's rows in their order")
    y_true, y_pred = gt["ans"].astype(int).to_numpy(), pred["ans"].astype(int).to_numpy()
    report = per_class_report(y_true, y_pred, list(CLASS_NAMES))
    return {"images": int(len(gt)), "accuracy": accuracy(y_true, y_pred), "macro_f1": macro_f1(y_true, y_pred),
            "task_f1": task_f1(y_true, y_pred), "per_class": report}
