"""Classification metrics: accuracy, macro F1 (the competition's score), per-class tables.

Macro F1 follows scikit-learn's ``f1_score(average="macro")`` as the competition scores it:
the mean over the classes that occur in the truth or the predictions.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.metrics import confusion_matrix, f1_score, precision_recall_fscore_support


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


def classification_metrics(y_true: np.ndarray, y_pred: np.ndarray, class_names: list[str]) -> dict:
    """accuracy, macro_f1 and per-class precision/recall/f1 lists (JSON-ready)."""
    report = per_class_report(y_true, y_pred, class_names)
    return {
        "accuracy": accuracy(y_true, y_pred),
        "macro_f1": macro_f1(y_true, y_pred),
        "precision": [round(float(v), 6) for v in report["precision"]],
        "recall": [round(float(v), 6) for v in report["recall"]],
        "f1": [round(float(v), 6) for v in report["f1"]],
        "support": [int(v) for v in report["support"]],
    }
