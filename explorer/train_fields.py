"""The training settings the Train page draws, row by row: said once here, because the Sweep
page's "Use the best" fills exactly these fields (pages are scripts, so they cannot import each
other's constants). Every name is a TrainConfig field; its widget comes from its Param."""

from core.training.config import PARAMS

MAIN = ("model", "loss", "optimizer", "scheduler")  # one row of choices
NUMBERS = ("lr", "epochs", "batch_size", "accum_steps", "folds")  # one row of numbers
TRICKS = ("old_age", "mix", "mix_prob", "tensorboard")  # competition tricks, off by default
TRAIN_PAGE = MAIN + NUMBERS + TRICKS
# The files the Data health page writes and the Train page offers to tick: each TrainConfig field
# (--health, --leave-out) -> (the health page's path input key, the file's name beside the dataset).
HEALTH_FILES = {"health": ("health.csv", "health.csv"), "leave_out": ("health.leave_csv", "leave_out.csv")}

_unknown = sorted(set(TRAIN_PAGE + tuple(HEALTH_FILES)) - set(PARAMS))
if _unknown:  # a renamed TrainConfig field fails here, at import, not as a missing widget
    raise ImportError(f"explorer/train_fields.py names no TrainConfig field {', '.join(_unknown)}")
