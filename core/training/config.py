"""TrainConfig: every training setting with its default, its rule and why; and the command that
repeats a config.

Each field declares itself once, as a :class:`core.rules.Param` in its metadata: the rule
(bounds or choices), the help text and the app's label. The ``train`` flags (core.cli), their
validation, the app's Train page widgets, the sweep's search space and the command recorded
in a run's config.json are all generated from them.

This module imports no torch: the app, ``--help`` and the sweep read it without loading torch.
How a config is resolved for a run (device, defaults, recipe, head) is core.training.resolve.
"""

from __future__ import annotations

import dataclasses
import shlex
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from core import rulebook as rb
from core.errors import UserError
from core.rules import Boolean, Interval, Param, PathRule, flag_name, param, params_of
from core.runs import read_json, run_path

# Settings that follow the device when left as None. On the CPU the small CNN is the one that
# trains the demo set to its target within minutes on 2 cores (README "Default training").
# On a GPU an ImageNet-pretrained torchvision backbone at a larger input and batch is the
# usual competition choice; compute is cheap there, and pretrained features need fewer epochs.
DEVICE_DEFAULTS = {
    "cpu": {"model": "smallcnn", "epochs": 20, "batch_size": 16, "lr": 5.4e-3, "input_size": None,
            "why": "no GPU: the small CNN trains from scratch to macro F1 0.97 on the demo (3 seeds) in about 2 minutes "
                   "on 2 cores"},
    "cuda": {"model": "resnet18", "epochs": 12, "batch_size": 64, "lr": 1e-3, "input_size": (128, 128),
             "why": "GPU: an ImageNet-pretrained resnet18 at 128x128, batch 64 (weights from the torch hub cache "
                    "or a download; from scratch if neither works)"},
}
DEVICE_FILLED = ("model", "epochs", "batch_size", "lr")  # the fields DEVICE_DEFAULTS fills when None
MODEL_HELP = (f"{', '.join(rb.MODEL.values)} (smallcnn trains from scratch on a CPU in minutes), or "
              f"{rb.TIMM_PREFIX}NAME for any timm model, e.g. {rb.TIMM_PREFIX}convnext_tiny")
WEIGHTS_HELP = ("auto (ImageNet weights from the local cache or a download, else from scratch), imagenet (the "
                "same, but an error when they cannot be had), none (from scratch), or a weights file")


@dataclass
class TrainConfig:
    data: str = param("", rb.DATA_DIR, "dataset folder (competition train layout or one folder per class)",
                      "Dataset folder")
    # None: the starter recipe for the dataset's layout (core.recipe.starter_recipe)
    recipe: Any = param(None, PathRule(kind="file", suffixes=(".json",), what="recipe"),
                        "recipe JSON file (default: the starter recipe for the dataset's layout)", "Recipe",
                        optional=True)
    # None: the device's default (DEVICE_DEFAULTS); smallcnn on a CPU, a pretrained resnet18 on a GPU
    model: str | None = param(None, rb.MODEL, f"{MODEL_HELP}; default: smallcnn on a CPU, resnet18 on a GPU",
                              "Model", optional=True)
    # auto: factorized (mask + gender + age logits, core.models.FactorizedHead) for the 18
    # competition classes, flat for other datasets
    head: str = param("auto", rb.HEAD, "the classifier head", "Head")
    # None: the device's default; the demo set converges from scratch in ~20 epochs on a CPU
    epochs: int | None = param(None, rb.EPOCHS.rule, "epochs (default: 20 on a CPU, 12 on a GPU)", "Epochs",
                               optional=True)
    # None: the device's default; small batches give more optimiser steps on a small dataset
    batch_size: int | None = param(None, rb.BATCH_SIZE.rule, "images per batch and per process (default: 16 on "
                                   "a CPU, 64 on a GPU)", "Batch size", optional=True)
    # None: the device's default; the peak learning rate (after warm-up with the cosine schedule)
    lr: float | None = param(None, Interval(float, 0.0, 10.0, closed="right", log=True),
                             "peak learning rate (default: 5.4e-3 on a CPU, 1e-3 on a GPU)", "Learning rate",
                             optional=True, step=1e-5, search=True)
    # adamw converges fastest from scratch; sgd uses momentum 0.9
    optimizer: str = param("adamw", rb.OPTIMIZER, "the optimiser", "Optimizer")
    # decoupled (adamw) or L2 (sgd, adam) weight decay; curbs overfitting
    # 0.09, label smoothing 0.04 and the CPU's lr 5.4e-3: the sweep's choice (README "Training")
    weight_decay: float = param(0.09, Interval(float, 0.0, 1.0), "weight decay", "Weight decay", step=0.01,
                                search=True)
    # cosine steps per optimiser step with warm-up; plateau follows the validation macro F1
    scheduler: str = param("cosine", rb.SCHEDULER, "the learning-rate schedule", "Scheduler")
    loss: str = param("label_smoothing", rb.LOSS, "the training loss", "Loss")
    focal_gamma: float = param(2.0, Interval(float, 0.0, 10.0), "focal loss focusing strength", "Focal gamma",
                               step=0.5)
    smoothing: float = param(0.04, Interval(float, 0.0, 1.0, closed="left"), "label-smoothing epsilon (loss "
                             "label_smoothing)", "Label smoothing", step=0.01, search=True)
    # gradient accumulation: one optimiser step per this many batches
    accum_steps: int = param(1, Interval(int, 1, 1024), "batches per optimiser step (gradient accumulation: a "
                             "larger effective batch without more memory)", "Accumulation steps")
    # 0 or 1: one person-level split; K >= 2: K models on person-level folds
    folds: int = param(0, rb.FOLDS.rule, rb.FOLDS.help, "Folds")
    val_ratio: float = param(0.2, Interval(float, 0.0, 1.0, closed="neither"), "share of persons held out for "
                             "validation when folds < 2", "Validation share", step=0.05)
    seed: int = param(0, rb.SEED.rule, rb.SEED.help, "Seed")
    device: str = param("auto", rb.DEVICE, "auto (cuda when available), cpu or cuda", "Device")
    out: str = param("runs", rb.OUT_DIR, "folder for run directories", "Runs folder")
    resume: str | None = param(None, rb.RUN_DIR, "run directory to continue from its last.pt", "Resume",
                               optional=True, flag=False)
    weights: str = param("auto", rb.WEIGHTS, WEIGHTS_HELP, "Pretrained weights")
    # 0: every core this process may use (core.cores.usable_cores)
    workers: int = param(0, rb.WORKERS.rule, rb.WORKERS.help, "Workers")
    corrections: str | None = param(None, rb.CORRECTIONS, rb.CORRECTIONS_HELP, "Label corrections", optional=True)
    # python -m core health: persons whose photos are copies of each other share a fold; photos left out
    health: str | None = param(None, rb.HEALTH_FILE, rb.HEALTH_HELP, "Health check (duplicate persons in one fold)",
                               optional=True)
    leave_out: str | None = param(None, rb.LEAVE_OUT_FILE, rb.LEAVE_OUT_HELP, "Photos left out", optional=True)
    amp: bool = param(True, Boolean(), "mixed precision (bf16/fp16 autocast) on cuda; ignored on cpu",
                      "Mixed precision")
    # NHWC memory format: faster convolutions on CPU (oneDNN) and GPU (tensor cores)
    channels_last: bool = param(True, Boolean(), "channels-last (NHWC) memory format", "Channels last")
    warmup_epochs: float = param(1.0, Interval(float, 0.0, 100.0), "linear warm-up of the cosine schedule, in "
                                 "epochs (capped at 10% of the steps)", "Warm-up epochs", step=0.5)
    ema_epochs: float = param(0.5, Interval(float, 0.0, 100.0), "validate and save an average of the weights "
                              "over this many epochs (0: off)", "Weight average (epochs)", step=0.5)
    # torch.compile the model: off by default until a benchmark shows it faster (bench/bench_train.py --compile)
    compile: bool = param(False, Boolean(), "torch.compile the model (slow first epoch)", "torch.compile")
    # On cuda the uint8 image cache is copied to the GPU once when it takes at most this share
    # of the free GPU memory; otherwise it stays in pinned host memory and each batch is copied.
    device_cache: float = param(0.5, Interval(float, 0.0, 1.0, closed="left"), "on cuda, keep the image cache on "
                                "the GPU when it fits in this share of free GPU memory (0: never)",
                                "GPU cache share")
    # Competition classes only: train with persons aged N or older labelled as the 60+ group. The
    # real data's oldest age is 60, so 60+ is rare and its boundary hard; a lower N (e.g. 58) gives
    # the rare group more examples. Validation and every score keep the true labels.
    old_age: int = param(60, Interval(int, 1, 120), "train with persons aged N or older labelled as the 60+ "
                         "group (competition classes only; validation and every score keep the true labels; the "
                         "top teams used 58)", "Train 60+ from age")
    # also write TensorBoard event files (loss, macro F1, lr, confusion matrix per epoch) to <run>/tb
    tensorboard: bool = param(False, Boolean(), "also log loss, macro F1, learning rate and the confusion matrix "
                              "per epoch to RUN/tb for TensorBoard (tensorboard --logdir runs)", "TensorBoard log")
    # >1: python -m core train starts torchrun with this many processes on this machine (DDP, one
    # per GPU; gloo on the CPU). The batch size is per process: a step sees nproc x batch x accum.
    nproc: int = param(1, Interval(int, 1, 1024), "processes on this machine: N > 1 starts torchrun "
                       "(DistributedDataParallel, one per GPU); the batch size is per process",
                       "Processes (GPUs)")
    # batch mixing (core.mixing), off unless a measurement shows it wins on this data
    mix: str = param("none", rb.MIX, "mix images within a batch; the loss takes the mixed targets",
                     "Batch mixing")
    mix_prob: float = param(0.5, Interval(float, 0.0, 1.0), "share of batches mixed", "Share of batches mixed",
                            step=0.05)
    mix_alpha: float = param(1.0, Interval(float, 0.0, 100.0, closed="right"), "Beta(alpha, alpha) of the mixing "
                             "share (mixup, cutmix)", "Mixing alpha", step=0.1)
    # --folds K under torchrun: fold k trains on process k mod N, whole, instead of every fold
    # being shared by all processes (the usual competition workflow: one fold per GPU)
    parallel_folds: bool = param(False, Boolean(), "with --folds K and --nproc N: train the folds side by side, "
                                 "fold k on process k mod N, into one run", "Folds side by side")
    # how long a process waits for the others at a collective before the run fails (a lost peer)
    dist_timeout: float = param(1800.0, Interval(float, 0.0, 7 * 86400.0, closed="right"), "under torchrun: "
                                "seconds a process waits for the others before the run fails", "Timeout (s)")


PARAMS: dict[str, Param] = params_of(TrainConfig)
FLAG_FIELDS = tuple(name for name, p in PARAMS.items() if p.flag)
RESUME_FLAGS = ("device", "workers", "nproc")  # what a resume may give (nproc only as it was)


def train_flags() -> list[tuple[str, Param]]:
    """(field name, Param) of every TrainConfig field that is a command-line flag."""
    return [(name, p) for name, p in PARAMS.items() if p.flag]


def validate_config(cfg: TrainConfig) -> None:
    """Raise UserError naming the option, the value and what is allowed (the fields' rules).

    A recipe given as a dict or Recipe object (the API, the app) is checked when it is loaded.
    """
    if not cfg.data and not cfg.resume:
        raise UserError("--data is required: the dataset folder to train on")
    # Values first, then the files and folders they name (a typo in a number is named even
    # when the data path is wrong too).
    order = sorted(PARAMS.items(), key=lambda item: _names_a_path(item[1]))
    for name, p in order:
        value = getattr(cfg, name)
        if name == "recipe" and value is not None and not isinstance(value, (str, Path)):
            continue
        if name == "data" and not value:
            continue
        p.check(str(value) if isinstance(value, Path) else value, flag_name(name))


def _names_a_path(p: Param) -> bool:
    return isinstance(p.rule, PathRule) or isinstance(getattr(p.rule, "also", None), PathRule)


def parallel_folds(cfg: TrainConfig, world: int) -> bool:
    """Whether this run's folds train side by side, one process each (--parallel-folds)."""
    return bool(cfg.parallel_folds and cfg.folds >= 2 and world > 1)


def device_defaults(kind: str) -> dict:
    """The model, epochs, batch size, learning rate and starter input size a device kind
    ("cpu" or "cuda") gets by default, and ``why`` (for the app and the run's log)."""
    return dict(DEVICE_DEFAULTS["cuda" if kind == "cuda" else "cpu"])


def with_device_defaults(cfg: TrainConfig, kind: str) -> TrainConfig:
    """``cfg`` with every field of DEVICE_FILLED left as None filled from :func:`device_defaults`."""
    defaults = device_defaults(kind)
    return dataclasses.replace(cfg, **{k: defaults[k] for k in DEVICE_FILLED if getattr(cfg, k) is None})


def config_dict(cfg: TrainConfig) -> dict:
    """The settings as plain JSON values (paths as text): what config.json and checkpoints hold."""
    d = {k: str(v) if isinstance(v, Path) else v for k, v in dataclasses.asdict(cfg).items()}
    if hasattr(cfg.recipe, "to_dict"):
        d["recipe"] = cfg.recipe.to_dict()
    return d


# ----------------------------------------------------------------------------- the command

# The settings a short command always spells out, so that it reads as a full description of the
# run; any other flag appears only when it differs from its default.
ALWAYS = ("model", "epochs", "batch_size", "lr", "optimizer", "scheduler", "loss", "accum_steps", "folds", "out")


def train_argv(cfg: TrainConfig, *, python: str = "python", recipe_file: str | Path | None = None,
               short: bool = False, command: str = "train") -> list[str]:
    """``python -m core train ...`` for ``cfg``: the one argv builder (the run's recorded command,
    the app's launch and shown command, torchrun's copies, the sweep's best trial).

    Every flag field, or with ``short`` only those that differ from TrainConfig's defaults plus
    ALWAYS. None values are left out (they mean "the default"). ``recipe_file`` stands in for a
    recipe that is not a path (a dict or Recipe object)."""
    default = TrainConfig()
    recipe = cfg.recipe if isinstance(cfg.recipe, (str, Path)) else recipe_file
    argv = [python, "-m", "core", command, "--data", str(cfg.data)]
    if recipe is not None:
        argv += ["--recipe", str(recipe)]
    for name, p in train_flags():
        value = getattr(cfg, name)
        if name in ("data", "recipe") or value is None:
            continue
        if short and name not in ALWAYS and value == getattr(default, name):
            continue
        if isinstance(p.rule, Boolean):
            argv.append(flag_name(name) if value else "--no-" + name.replace("_", "-"))
        else:
            argv += [flag_name(name), _word(value)]
    return argv


def _word(value: Any) -> str:
    """A flag value as the parser reads it back (floats in full precision)."""
    return repr(value) if isinstance(value, float) else str(value)


def cli_command(cfg: TrainConfig, recipe_file: Path) -> str:
    """The ``python -m core train`` command that repeats this run: every setting spelled out,
    so it still repeats the run if a default changes."""
    return shlex.join(train_argv(cfg, recipe_file=recipe_file))


def resume_config(run: str | Path, device: str = "auto", workers: int = 0) -> TrainConfig:
    """The stored config of ``run``, set to resume it (only device and workers may change)."""
    from core.runs import read_config

    run = run_path(run)
    stored = read_config(run)["config"]
    known = set(PARAMS)
    cfg = TrainConfig(**{k: v for k, v in stored.items() if k in known})
    recipe = read_json(run / "recipe.json")
    return dataclasses.replace(cfg, recipe=recipe, resume=str(run), device=device, workers=workers)
