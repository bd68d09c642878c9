"""TrainConfig: every training setting with its default and why, its validation, and how
a config resolves (device defaults, recipe, head, device) and is written back as a command.

Each field says its facts once, in its metadata (see :func:`opt`): the help text, the
allowed choices or bounds, and whether it is a command-line flag. The ``train`` parser
(core.cli), the app's launch command (core.launch) and the command recorded in a run's
config.json are all generated from them by :func:`train_flags` and :func:`train_argv`.
"""

from __future__ import annotations

import dataclasses
import math
import shlex
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

import torch

from core.devices import DEVICES, resolve_device
from core.errors import UserError
from core.labels import CLASS_NAMES
from core.losses import LOSSES
from core.mixing import MIXES
from core.models import HEADS, MODEL_HELP, WEIGHTS_HELP, check_model_name
from core.recipe import Recipe, starter_recipe
from core.runs import read_json, run_path

OPTIMIZERS = ("sgd", "adam", "adamw")
SCHEDULERS = ("none", "step", "cosine", "plateau")


def opt(help: str, *, type: type = str, choices: Iterable | None = None, low: float | None = None,
        high: float | None = None, above: float | None = None, below: float | None = None,
        flag: bool = True) -> dict:
    """Field metadata: the flag's help, its type, the allowed choices or bounds.

    ``low``/``high`` are inclusive bounds, ``above``/``below`` exclusive ones. ``flag=False``
    keeps a field off the command line (``resume`` has its own rules).
    """
    return {"help": help, "type": type, "choices": tuple(choices) if choices is not None else None,
            "low": low, "high": high, "above": above, "below": below, "flag": flag}


# Settings that follow the device when left as None. On the CPU the small CNN is the one that
# trains the demo set to its target within minutes on 2 cores (README "Default training").
# On a GPU an ImageNet-pretrained torchvision backbone at a larger input and batch is the
# usual competition choice; compute is cheap there, and pretrained features need fewer epochs.
DEVICE_DEFAULTS = {
    "cpu": {"model": "smallcnn", "epochs": 20, "batch_size": 16, "lr": 2e-3, "input_size": None,
            "why": "no GPU: the small CNN trains from scratch to macro F1 >= 0.95 on the demo within minutes on 2 cores"},
    "cuda": {"model": "resnet18", "epochs": 12, "batch_size": 64, "lr": 1e-3, "input_size": (128, 128),
             "why": "GPU: an ImageNet-pretrained resnet18 at 128x128, batch 64 (weights from the torch hub cache "
                    "or a download; from scratch if neither works)"},
}


@dataclass
class TrainConfig:
    data: str = field(default="", metadata=opt("dataset folder (competition train layout or one folder per class)"))
    recipe: str | dict | None = field(default=None, metadata=opt(
        "recipe JSON file (default: the starter recipe for the dataset's layout, core.recipe.starter_recipe)"))
    # None: the device's default (DEVICE_DEFAULTS); smallcnn on a CPU, a pretrained resnet18 on a GPU
    model: str | None = field(default=None, metadata=opt(
        f"{MODEL_HELP}; default: smallcnn on a CPU, resnet18 on a GPU"))
    # auto: factorized (mask + gender + age logits, see core.models.FactorizedHead) for the
    # competition's 18 classes, flat for other datasets
    head: str = field(default="auto", metadata=opt(
        "auto | flat | factorized (mask + gender + age logits; competition classes only)",
        choices=("auto", *HEADS)))
    # None: the device's default; the demo set converges from scratch in ~20 epochs on a CPU
    epochs: int | None = field(default=None, metadata=opt("epochs (default: 20 on a CPU, 12 on a GPU)",
                                                          type=int, low=1))
    # None: the device's default; small batches give more optimiser steps on a small dataset
    batch_size: int | None = field(default=None, metadata=opt(
        "images per batch and per process (default: 16 on a CPU, 64 on a GPU)", type=int, low=1))
    # None: the device's default; the peak learning rate (after warm-up with the cosine schedule)
    lr: float | None = field(default=None, metadata=opt(
        "peak learning rate (default: 2e-3 on a CPU, 1e-3 on a GPU)", type=float, above=0.0))
    # adamw converges fastest from scratch; sgd uses momentum 0.9
    optimizer: str = field(default="adamw", metadata=opt("sgd | adam | adamw", choices=OPTIMIZERS))
    # decoupled (adamw) or L2 (sgd, adam) weight decay; curbs overfitting
    weight_decay: float = field(default=0.05, metadata=opt("weight decay", type=float, low=0.0))
    # cosine steps per optimiser step with warm-up; plateau follows the validation macro F1
    scheduler: str = field(default="cosine", metadata=opt("none | step | cosine | plateau", choices=SCHEDULERS))
    loss: str = field(default="ce", metadata=opt("ce | focal | label_smoothing | f1", choices=LOSSES))
    focal_gamma: float = field(default=2.0, metadata=opt("focal loss focusing strength", type=float, low=0.0))
    smoothing: float = field(default=0.1, metadata=opt("label-smoothing epsilon, in [0, 1)", type=float, low=0.0,
                                                       below=1.0))
    # gradient accumulation: one optimiser step per this many batches
    accum_steps: int = field(default=1, metadata=opt("batches per optimiser step (gradient accumulation)",
                                                     type=int, low=1))
    # 0 or 1: one person-level split; K >= 2: K models on person-level folds
    folds: int = field(default=0, metadata=opt("K >= 2: train K models on person-level folds", type=int, low=0))
    val_ratio: float = field(default=0.2, metadata=opt(
        "share of persons held out for validation when folds < 2", type=float, above=0.0, below=1.0))
    seed: int = field(default=0, metadata=opt("seeds splits, initialisation, epoch order and augmentation", type=int))
    device: str = field(default="auto", metadata=opt("auto (cuda when available) | cpu | cuda", choices=DEVICES))
    out: str = field(default="runs", metadata=opt("folder for run directories"))
    resume: str | None = field(default=None, metadata=opt("run directory to continue from its last.pt", flag=False))
    weights: str = field(default="auto", metadata=opt(WEIGHTS_HELP))
    # 0: every core this process may use (os.sched_getaffinity)
    workers: int = field(default=0, metadata=opt("processes for preparing images (0: every usable core)",
                                                 type=int, low=0))
    corrections: str | None = field(default=None, metadata=opt(
        "label-corrections CSV (person,field,value), or 'reported' for the shipped list"))
    amp: bool = field(default=True, metadata=opt("mixed precision (bf16/fp16 autocast) on cuda; ignored on cpu",
                                                 type=bool))
    # NHWC memory format: faster convolutions on CPU (oneDNN) and GPU (tensor cores)
    channels_last: bool = field(default=True, metadata=opt("channels-last (NHWC) memory format", type=bool))
    warmup_epochs: float = field(default=1.0, metadata=opt(
        "linear warm-up of the cosine schedule, in epochs (capped at 10%% of the steps)", type=float, low=0.0))
    ema_epochs: float = field(default=0.5, metadata=opt(
        "validate and save an average of the weights over this many epochs (0: off)", type=float, low=0.0))
    # torch.compile the model: off by default until a benchmark shows it faster (bench/bench_train.py --compile)
    compile: bool = field(default=False, metadata=opt("torch.compile the model (slow first epoch)", type=bool))
    # On cuda the uint8 image cache is copied to the GPU once when it takes at most this share
    # of the free GPU memory; otherwise it stays in pinned host memory and each batch is copied.
    device_cache: float = field(default=0.5, metadata=opt(
        "on cuda, keep the image cache on the GPU when it fits in this share of free GPU memory (0: never)",
        type=float, low=0.0, below=1.0))
    # Competition classes only: train with persons aged N or older labelled as the 60+ group. The
    # real data's oldest age is 60, so 60+ is rare and its boundary hard; a lower N (e.g. 58) gives
    # the rare group more examples. Validation and every score keep the true labels.
    old_age: int = field(default=60, metadata=opt(
        "train with persons aged N or older labelled as the 60+ group (competition classes only; validation "
        "keeps the true labels)", type=int, low=1))
    # also write TensorBoard event files (loss, macro F1, lr, confusion matrix per epoch) to <run>/tb
    tensorboard: bool = field(default=False, metadata=opt(
        "also log loss, macro F1, learning rate and the confusion matrix per epoch to RUN/tb for TensorBoard",
        type=bool))
    # >1: python -m core train starts torchrun with this many processes on this machine (DDP, one
    # per GPU; gloo on the CPU). The batch size is per process: a step sees nproc x batch x accum.
    nproc: int = field(default=1, metadata=opt(
        "processes on this machine: N > 1 starts torchrun (DistributedDataParallel, one per GPU); the batch "
        "size is per process", type=int, low=1))
    # batch mixing (core.mixing), off unless a measurement shows it wins on this data
    mix: str = field(default="none", metadata=opt(
        "none | mixup | cutmix | cutmix-vertical (left or right half from another image): mix batches, with "
        "mixed targets", choices=MIXES))
    mix_prob: float = field(default=0.5, metadata=opt("share of batches mixed", type=float, low=0.0, high=1.0))
    mix_alpha: float = field(default=1.0, metadata=opt("Beta(alpha, alpha) of the mixing share (mixup, cutmix)",
                                                       type=float, above=0.0))
    # --folds K under torchrun: fold k trains on process k mod N, whole, instead of every fold
    # being shared by all processes (the usual competition workflow: one fold per GPU)
    parallel_folds: bool = field(default=False, metadata=opt(
        "with --folds K and --nproc N: train the folds side by side, fold k on process k mod N, into one run",
        type=bool))
    # how long a process waits for the others at a collective before the run fails (a lost peer)
    dist_timeout: float = field(default=1800.0, metadata=opt(
        "under torchrun: seconds a process waits for the others before the run fails", type=float, above=0.0))


FLAG_FIELDS = tuple(f.name for f in dataclasses.fields(TrainConfig) if f.metadata.get("flag", True))
RESUME_FLAGS = ("device", "workers", "nproc")  # what a resume may give (nproc only as it was)


def flag_name(name: str) -> str:
    """--batch-size for batch_size."""
    return "--" + name.replace("_", "-")


def train_flags() -> list[tuple[str, dict]]:
    """(field name, metadata) of every TrainConfig field that is a command-line flag."""
    return [(f.name, dict(f.metadata)) for f in dataclasses.fields(TrainConfig) if f.metadata.get("flag", True)]


# ----------------------------------------------------------------------------- validation

def check_choice(option: str, value, allowed: Iterable) -> None:
    allowed = tuple(allowed)
    if value not in allowed:
        raise UserError(f"--{option} {value!r} is not allowed; choose one of: {', '.join(map(str, allowed))}")


def _check_field(name: str, value: Any, meta: dict) -> None:
    """The field's own rule from its metadata; None (a device default) is always allowed."""
    if value is None:
        return
    option = name.replace("_", "-")
    if meta.get("choices"):
        check_choice(option, value, meta["choices"])
    if meta["type"] in (int, float):
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise UserError(f"--{option} must be a number, got {value!r}")
        if meta["low"] is not None and value < meta["low"]:
            raise UserError(f"--{option} must be >= {meta['low']}, got {value}")
        if meta["high"] is not None and value > meta["high"]:
            raise UserError(f"--{option} must be <= {meta['high']}, got {value}")
        if meta["above"] is not None and not value > meta["above"]:
            raise UserError(f"--{option} must be > {meta['above']}, got {value}")
        if meta["below"] is not None and not value < meta["below"]:
            raise UserError(f"--{option} must be < {meta['below']}, got {value}")


def validate_config(cfg: TrainConfig) -> None:
    """Raise UserError naming the option, the value and what is allowed."""
    for f in dataclasses.fields(cfg):
        _check_field(f.name, getattr(cfg, f.name), dict(f.metadata))
    if cfg.model is not None:
        check_model_name(cfg.model)
    resolve_device(cfg.device)  # a missing GPU is named here, before any work
    if not cfg.data:
        raise UserError("--data is required: the dataset folder to train on")


def parallel_folds(cfg: TrainConfig, dist) -> bool:
    """Whether this run's folds train side by side, one process each (--parallel-folds)."""
    return bool(cfg.parallel_folds and cfg.folds >= 2 and dist.active and dist.world > 1)


# ----------------------------------------------------------------------------- resolving

def device_defaults(device: str | torch.device = "auto") -> dict:
    """The model, epochs, batch size, learning rate and starter input size a device gets by
    default, and ``why`` (for the app and the run's log)."""
    kind = resolve_device(device).type if isinstance(device, str) else device.type
    return dict(DEVICE_DEFAULTS["cuda" if kind == "cuda" else "cpu"])


def with_device_defaults(cfg: TrainConfig, device: torch.device) -> TrainConfig:
    """``cfg`` with every field left as None filled from :func:`device_defaults`."""
    defaults = device_defaults(device)
    return dataclasses.replace(cfg, **{k: defaults[k] for k in ("model", "epochs", "batch_size", "lr")
                                       if getattr(cfg, k) is None})


def resolve_recipe(recipe: str | dict | Recipe | None, layout: str | None = None,
                   input_size: tuple[int, int] | None = None) -> Recipe:
    """The run's recipe; with none given, the starting recipe for the dataset's layout
    (at ``input_size`` when given: the device's default input)."""
    if recipe is None:
        start = starter_recipe(layout)
        return start.replace(input_size=tuple(input_size)) if input_size else start
    if isinstance(recipe, Recipe):
        return recipe
    if isinstance(recipe, dict):
        return Recipe.from_dict(recipe)
    return Recipe.load(recipe)


def resolve_head(head: str, class_names: list[str]) -> str:
    if head != "auto":
        return head
    return "factorized" if list(class_names) == list(CLASS_NAMES) else "flat"


def config_dict(cfg: TrainConfig) -> dict:
    d = dataclasses.asdict(cfg)
    if isinstance(cfg.recipe, Recipe):
        d["recipe"] = cfg.recipe.to_dict()
    return d


# ----------------------------------------------------------------------------- the command

def train_argv(cfg: TrainConfig, recipe_file: str | Path | None = None, python: str = "python",
               changed_only: bool = False, always: Iterable[str] = ()) -> list[str]:
    """``python -m core train ...`` for ``cfg``: every flag field, or with ``changed_only``
    those that differ from TrainConfig's defaults plus ``always``. None values are left out
    (they mean "the default"). ``recipe_file`` stands in for a recipe that is not a path."""
    default = TrainConfig()
    recipe = cfg.recipe if isinstance(cfg.recipe, (str, Path)) else recipe_file
    argv = [python, "-m", "core", "train", "--data", str(cfg.data)]
    if recipe is not None:
        argv += ["--recipe", str(recipe)]
    for name, meta in train_flags():
        value = getattr(cfg, name)
        if name in ("data", "recipe") or value is None:
            continue
        if changed_only and name not in always and value == getattr(default, name):
            continue
        if meta["type"] is bool:
            argv.append(flag_name(name) if value else "--no-" + name.replace("_", "-"))
        else:
            argv += [flag_name(name), str(value)]
    return argv


def cli_command(cfg: TrainConfig, recipe_file: Path) -> str:
    """The ``python -m core train`` command that repeats this run: every setting spelled out,
    so it still repeats the run if a default changes."""
    return shlex.join(train_argv(cfg, recipe_file))


def resume_config(run: str | Path, device: str = "auto", workers: int = 0) -> TrainConfig:
    """The stored config of ``run``, set to resume it (only device and workers may change)."""
    run = run_path(run)
    stored = read_json(run / "config.json")["config"]
    known = {f.name for f in dataclasses.fields(TrainConfig)}
    cfg = TrainConfig(**{k: v for k, v in stored.items() if k in known})
    cfg.recipe = read_json(run / "recipe.json")
    cfg.resume, cfg.device, cfg.workers = str(run), device, workers
    return cfg
