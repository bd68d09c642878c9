"""``--tensorboard``: the epoch records also go to TensorBoard event files in ``RUN/tb``.

The run directory's metrics.jsonl stays the record the app reads; this is for people who
follow their runs in TensorBoard (``tensorboard --logdir runs``). Written through PyTorch's
own ``torch.utils.tensorboard.SummaryWriter`` (the ``tensorboard`` package).

Per epoch, with the epoch as the step (fold K of ``--folds`` under ``foldK/`` tags):
``loss/train``, ``loss/val``, ``macro_f1/val``, ``accuracy/val``, ``lr``, and the validation
confusion matrix as an image (rows: true class, columns: predicted; row-normalised).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from core.errors import UserError
from core.metrics import confusion_table
from core.training.callbacks import Callbacks

TB_DIR = "tb"  # inside the run directory


def tensorboard_callbacks(cfg, writer) -> list[Callbacks]:
    """[TensorBoardLog] for a run with ``--tensorboard`` on the process that writes (rank 0), else []."""
    if not getattr(cfg, "tensorboard", False) or not writer.enabled:
        return []
    return [TensorBoardLog(Path(writer.dir) / TB_DIR, per_fold=cfg.folds >= 2)]


def confusion_image(y_true: np.ndarray, y_pred: np.ndarray, num_classes: int, scale: int = 8) -> np.ndarray:
    """(3, C*scale, C*scale) uint8 picture of the row-normalised confusion matrix: white is 0,
    dark blue is every image of the true class (row) predicted as that column."""
    counts = confusion_table(y_true, y_pred, num_classes).astype(np.float64)
    share = counts / np.maximum(counts.sum(1, keepdims=True), 1)
    white, blue = np.array([255.0, 255.0, 255.0]), np.array([8.0, 48.0, 107.0])
    rgb = white + share[..., None] * (blue - white)  # (C, C, 3)
    big = np.kron(rgb, np.ones((scale, scale, 1)))
    return np.clip(big, 0, 255).astype(np.uint8).transpose(2, 0, 1)


class TensorBoardLog(Callbacks):
    """Writes the epoch scalars and the confusion matrix; the event file is flushed each epoch."""

    def __init__(self, log_dir: str | Path, per_fold: bool = False):
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError:
            raise UserError("--tensorboard needs the tensorboard package: pip install 'tensorboard>=2.14' "
                            "(it is in requirements.txt), or train without --tensorboard") from None
        self.log_dir, self.per_fold = Path(log_dir), per_fold
        self.writer = SummaryWriter(str(self.log_dir))

    def _prefix(self, record: dict) -> str:
        return f"fold{record['fold']}/" if self.per_fold else ""

    def on_epoch_end(self, metrics: dict) -> None:
        step, prefix = int(metrics["epoch"]), self._prefix(metrics)
        for tag, key in (("loss/train", "train_loss"), ("loss/val", "val_loss"), ("macro_f1/val", "macro_f1"),
                         ("accuracy/val", "accuracy"), ("lr", "lr")):
            if key in metrics:
                self.writer.add_scalar(prefix + tag, float(metrics[key]), step)
        self.writer.flush()

    def on_val_predictions(self, metrics: dict, y_true, y_pred) -> None:
        num_classes = len(metrics.get("support") or []) or int(max(np.max(y_true), np.max(y_pred)) + 1)
        image = confusion_image(np.asarray(y_true), np.asarray(y_pred), num_classes)
        self.writer.add_image(self._prefix(metrics) + "confusion/val", image, int(metrics["epoch"]),
                              dataformats="CHW")
        self.writer.flush()

    def on_train_end(self, summary: dict) -> None:
        self.writer.close()
