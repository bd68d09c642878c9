"""Classification metrics: accuracy, macro F1 (the competition's score), per-class tables, and
the score by task.

Macro F1 follows scikit-learn's ``f1_score(average="macro")`` as the competition scores it:
the mean over the classes that occur in the truth or the predictions.

The competition's 18 classes are three tasks at once (core.labels: class = mask*6 + gender*3 +
age_group). :func:`task_f1` scores each task on its own, from the same 18-class predictions: a
class is turned into its mask (3 values), gender (2) or age group (3) through core.labels.decode,
and the macro F1 of those values is taken the same way as above. For any other class list (a
dataset with one folder per class) there are no tasks: the scores are absent and
:data:`TASKS_ABSENT` says why.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.metrics import confusion_matrix, f1_score, precision_recall_fscore_support

from core.labels import AGE_NAMES, CLASS_NAMES, GENDER_NAMES, MASK_NAMES, NUM_CLASSES, decode

# The tasks in core.labels.decode's order, with the names of their values.
TASK_NAMES: dict[str, tuple[str, ...]] = {"mask": MASK_NAMES, "gender": GENDER_NAMES, "age": AGE_NAMES}
TASKS = tuple(TASK_NAMES)
TASKS_ABSENT = "per-task F1: not applicable: the classes are not the competition's mask x gender x age"
_TASK_OF = np.array([decode(c) for c in range(NUM_CLASSES)], dtype=np.int64)  # (18, 3): class -> task values


def macro_f1(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    if len(y_true) == 0:
        return 0.0
    return float(f1_score(y_true, y_pred, average="macro", zero_division=0))


def accuracy(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    return float(np.mean(np.asarray(y_true) == np.asarray(y_pred))) if len(y_true) else 0.0


def per_class_report(y_true: np.ndarray, y_pred: np.ndarray, class_names: list[str]) -> pd.DataFrame:
    """One row per class: class, name, precision, recall, f1, support (true count), predicted."""
    classes = np.arange(len(class_names))
    p, r, f, s = precision_recall_fscore_support(y_true, y_pred, labels=classes, zero_division=0)
    predicted = np.bincount(np.asarray(y_pred, dtype=int), minlength=len(classes))[: len(classes)]
    return pd.DataFrame({"class": classes, "name": class_names, "precision": p, "recall": r, "f1": f,
                         "support": s, "predicted": predicted})


def confusion_table(y_true: np.ndarray, y_pred: np.ndarray, num_classes: int) -> np.ndarray:
    """(C, C) counts: rows are true classes, columns predicted."""
    return confusion_matrix(y_true, y_pred, labels=np.arange(num_classes))


def has_tasks(class_names) -> bool:
    """True for the competition's 18 classes (mask x gender x age), the only classes with tasks."""
    return list(class_names) == list(CLASS_NAMES)


def task_values(labels: np.ndarray, task: str) -> np.ndarray:
    """The ``task`` value (an index into TASK_NAMES[task]) of each competition class in ``labels``."""
    return _TASK_OF[np.asarray(labels, dtype=np.int64), TASKS.index(task)]


def task_f1(y_true: np.ndarray, y_pred: np.ndarray) -> dict[str, float]:
    """{"mask", "gender", "age"}: each task's macro F1 over its own values, from 18-class labels."""
    return {task: macro_f1(task_values(y_true, task), task_values(y_pred, task)) for task in TASKS}


def task_confusion(y_true: np.ndarray, y_pred: np.ndarray, task: str) -> pd.DataFrame:
    """(k, k) counts of one task (rows true value, columns predicted), indexed by the value names."""
    names = list(TASK_NAMES[task])
    counts = confusion_matrix(task_values(y_true, task), task_values(y_pred, task), labels=np.arange(len(names)))
    return pd.DataFrame(counts, index=names, columns=names)


def task_probabilities(probs: np.ndarray, task: str) -> np.ndarray:
    """(N, k): each task value's probability, the sum of its classes' probabilities (N, 18)."""
    values = _TASK_OF[:, TASKS.index(task)]
    return np.stack([np.asarray(probs)[:, values == v].sum(1) for v in range(len(TASK_NAMES[task]))], axis=1)


def task_f1_text(scores: dict[str, float]) -> str:
    """'F1 by task: mask 0.9512  gender 0.9800  age 0.9100' (the CLI's and benchmarks' wording)."""
    return "F1 by task: " + "  ".join(f"{task} {scores[task]:.4f}" for task in TASKS)


def classification_metrics(y_true: np.ndarray, y_pred: np.ndarray, class_names: list[str]) -> dict:
    """accuracy, macro_f1, task_f1 (the competition's classes only; see :func:`task_f1`) and
    per-class precision/recall/f1 lists (JSON-ready)."""
    report = per_class_report(y_true, y_pred, class_names)
    tasks = {"task_f1": task_f1(y_true, y_pred)} if has_tasks(class_names) else {}
    return {
        "accuracy": accuracy(y_true, y_pred),
        "macro_f1": macro_f1(y_true, y_pred),
        **tasks,
        "precision": [round(float(v), 6) for v in report["precision"]],
        "recall": [round(float(v), 6) for v in report["recall"]],
        "f1": [round(float(v), 6) for v in report["f1"]],
        "support": [int(v) for v in report["support"]],
    }
