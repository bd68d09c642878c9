"""Progress hooks (minGPT-style): the trainer reports through these and never prints."""

from __future__ import annotations


class Callbacks:
    """Progress hooks; override the ones you need. Train never prints."""

    def on_message(self, text: str) -> None: ...
    def on_cache_progress(self, done: int, total: int) -> None: ...
    def on_train_start(self, info: dict) -> None: ...
    def on_epoch_start(self, fold: int, epoch: int, n_batches: int) -> None: ...
    def on_batch_end(self, epoch: int, batch: int, n_batches: int, loss: float) -> None: ...
    def on_epoch_end(self, metrics: dict) -> None: ...
    # after on_epoch_end: the true and predicted class of each validation row (a confusion matrix)
    def on_val_predictions(self, metrics: dict, y_true, y_pred) -> None: ...
    def on_train_end(self, summary: dict) -> None: ...


class Stopped(Exception):
    """Raised inside the loop after last.pt is written for a STOP file or SIGTERM."""


def emit(callbacks: list, event: str, *args) -> None:
    """Call ``event`` on every callback object that has it."""
    for cb in callbacks:
        hook = getattr(cb, event, None)
        if hook is not None:
            hook(*args)
