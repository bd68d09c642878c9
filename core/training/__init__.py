"""Training: person-level splits or folds, cached uint8 batches, batched augmentation.

One call, :func:`train`, turns a :class:`TrainConfig` into a run directory (see core.runs).
The data path decodes every image once per recipe (core.cache); an epoch then only gathers
uint8 rows from that array, interpolates SMOTE rows, augments the batch in torch
(core.augment) and feeds the model.

Progress goes to :class:`Callbacks` objects (minGPT-style); this package never prints.
Everything random is seeded: the epoch order and each batch's augmentation derive from
(seed, fold, epoch, batch), and checkpoints carry the model, optimiser, scheduler and the
global RNG states, so on a CPU a stopped and resumed run ends with the same metrics as an
uninterrupted one.

Modules, one job each:

- ``config``     TrainConfig: every setting's rule, its validation and the command (no torch)
- ``resolve``    a config resolved once for a run: device, defaults, recipe, head (RunSettings)
- ``data``       the labelled index, the image cache and the person splits of a run
- ``batches``    seeded epoch orders and the training batches made from the cache
- ``optim``      optimisers, schedules, the accumulating train step, the weight EMA
- ``checkpoint`` RNG states and where a fold stands (what last.pt holds besides weights)
- ``trainer``    Trainer and FoldRun: the folds of one config into one run directory
- ``run``        ``train()``: the entry point, stop handling, the files written first
"""

from __future__ import annotations

import importlib

# Exports, loaded on first use: ``from core.training.config import TrainConfig`` must not pull
# in torch through this package's __init__ (the app and --help read the config without it).
_EXPORTS = {
    "BatchSource": "batches", "epoch_batches": "batches", "gather": "batches", "prefetch": "batches",
    "Callbacks": "callbacks", "Stopped": "callbacks", "emit": "callbacks",
    "TrainConfig": "config", "cli_command": "config", "config_dict": "config", "validate_config": "config",
    "resume_config": "config",
    "RunSettings": "resolve", "resolve_device": "resolve", "resolve_head": "resolve", "resolve_recipe": "resolve",
    "resolve_run": "resolve",
    "TrainData": "data", "make_splits": "data", "scan_labelled": "data",
    "WeightEMA": "optim", "ema_decay": "optim", "make_optimizer": "optim", "make_scheduler": "optim",
    "train_steps": "optim",
    "train": "run",
    "Trainer": "trainer", "prediction_table": "trainer",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{_EXPORTS[name]}"), name)
