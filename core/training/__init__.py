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

- ``config``     TrainConfig, its validation, and how it resolves (recipe, head, device)
- ``data``       the labelled index, the image cache and the person splits of a run
- ``batches``    seeded epoch orders and the training batches made from the cache
- ``optim``      optimisers, schedules, the accumulating train step, the weight EMA
- ``checkpoint`` RNG states and where a fold stands (what last.pt holds besides weights)
- ``trainer``    Trainer and FoldRun: the folds of one config into one run directory
- ``run``        ``train()``: the entry point, stop handling, the files written first
"""

from core.training.batches import BatchSource, epoch_batches, gather, prefetch
from core.training.callbacks import Callbacks, Stopped, emit
from core.training.config import (DEVICES, OPTIMIZERS, SCHEDULERS, TrainConfig, cli_command, config_dict,
                                  resolve_device, resolve_head, resolve_recipe, resume_config, validate_config)
from core.training.data import TrainData, make_splits, scan_labelled
from core.training.optim import WeightEMA, ema_decay, make_optimizer, make_scheduler, train_steps
from core.training.run import train
from core.training.trainer import Trainer, prediction_table

__all__ = ["BatchSource", "Callbacks", "DEVICES", "OPTIMIZERS", "SCHEDULERS", "Stopped", "TrainConfig", "TrainData",
           "Trainer", "WeightEMA", "cli_command", "config_dict", "ema_decay", "emit", "epoch_batches", "gather",
           "make_optimizer", "make_scheduler", "make_splits", "prediction_table", "prefetch", "resolve_device",
           "resolve_head", "resolve_recipe", "resume_config", "scan_labelled", "train", "train_steps",
           "validate_config"]
