"""TrainConfig: every training setting with its default and why, its validation, and how
a config resolves (recipe, head, device) and is written back as a command."""

from __future__ import annotations

import dataclasses
import math
import shlex
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

import torch

from core.errors import UserError
from core.labels import CLASS_NAMES
from core.losses import LOSSES
from core.models import HEADS, check_model_name
from core.recipe import Recipe, starter_recipe
from core.runs import read_json, run_path

OPTIMIZERS = ("sgd", "adam", "adamw")
SCHEDULERS = ("none", "step", "cosine", "plateau")
DEVICES = ("auto", "cpu", "cuda")


@dataclass
class TrainConfig:
    data: str = ""  # dataset folder: competition train layout or one folder per class
    recipe: str | dict | None = None  # recipe JSON file, a recipe dict (the app), or None: defaults
    # smallcnn trains the demo set to its target in minutes on a CPU; resnet18 at the same input
    # is ~6x slower per image (see core.models.SmallCNN); use a torchvision backbone on a GPU.
    model: str = "smallcnn"
    # auto: factorized (mask + gender + age logits, see core.models.FactorizedHead) for the
    # competition's 18 classes, flat for other datasets
    head: str = "auto"
    epochs: int = 20  # the demo set converges from scratch in ~20 epochs (3.5-4.5 min on 2 CPU cores)
    batch_size: int = 16  # small batches: more optimiser steps per epoch on a small dataset
    lr: float = 2e-3  # peak learning rate (after warm-up with the cosine schedule)
    optimizer: str = "adamw"  # sgd (momentum 0.9) | adam | adamw: adamw converges fastest from scratch
    weight_decay: float = 0.05  # decoupled (adamw) or L2 (sgd, adam) weight decay; curbs overfitting
    scheduler: str = "cosine"  # none | step | cosine (per step, with warm-up) | plateau (on val macro F1)
    loss: str = "ce"  # ce | focal | label_smoothing | f1
    focal_gamma: float = 2.0  # focal loss focusing strength
    smoothing: float = 0.1  # label-smoothing epsilon
    accum_steps: int = 1  # gradient accumulation: one optimiser step per this many batches
    folds: int = 0  # 0 or 1: one person-level split; K >= 2: K models on person-level folds
    val_ratio: float = 0.2  # share of persons held out when folds < 2
    seed: int = 0  # seeds splits, initialisation, epoch order and augmentation
    device: str = "auto"  # auto (cuda when available) | cpu | cuda
    out: str = "runs"  # where run directories are created
    resume: str | None = None  # a run directory to continue from its last.pt
    weights: str = "auto"  # auto: ImageNet from the local torch hub cache if present | none | a file
    workers: int = 0  # processes for building the image cache; 0: 2 for large datasets
    corrections: str | None = None  # label-corrections CSV, or "reported" for the shipped list
    amp: bool = True  # mixed precision (torch.autocast) on cuda; ignored on cpu
    channels_last: bool = True  # NHWC memory format: faster convolutions on CPU (oneDNN) and GPU
    warmup_epochs: float = 1.0  # linear warm-up length for the cosine schedule (capped at 10% of steps)
    ema_epochs: float = 0.5  # validate/save an average of the weights over this many epochs (0: off)


# ----------------------------------------------------------------------------- config

def check_choice(option: str, value, allowed: Iterable) -> None:
    allowed = tuple(allowed)
    if value not in allowed:
        raise UserError(f"--{option} {value!r} is not allowed; choose one of: {', '.join(map(str, allowed))}")


def _at_least(option: str, value, low) -> None:
    if value < low:
        raise UserError(f"--{option} must be >= {low}, got {value}")


def validate_config(cfg: TrainConfig) -> None:
    """Raise UserError naming the option, the value and what is allowed."""
    check_model_name(cfg.model)
    check_choice("optimizer", cfg.optimizer, OPTIMIZERS)
    check_choice("scheduler", cfg.scheduler, SCHEDULERS)
    check_choice("loss", cfg.loss, LOSSES)
    check_choice("device", cfg.device, DEVICES)
    check_choice("head", cfg.head, ("auto", *HEADS))
    _at_least("epochs", cfg.epochs, 1)
    _at_least("batch-size", cfg.batch_size, 1)
    _at_least("accum-steps", cfg.accum_steps, 1)
    _at_least("folds", cfg.folds, 0)
    _at_least("workers", cfg.workers, 0)
    _at_least("weight-decay", cfg.weight_decay, 0.0)
    _at_least("ema-epochs", cfg.ema_epochs, 0.0)
    _at_least("focal-gamma", cfg.focal_gamma, 0.0)
    if not (cfg.lr > 0 and math.isfinite(cfg.lr)):
        raise UserError(f"--lr must be a positive number, got {cfg.lr}")
    if not 0.0 < cfg.val_ratio < 1.0:
        raise UserError(f"--val-ratio must be between 0 and 1 (exclusive), got {cfg.val_ratio}")
    if not 0.0 <= cfg.smoothing < 1.0:
        raise UserError(f"--smoothing must be in [0, 1), got {cfg.smoothing}")
    if cfg.device == "cuda" and not torch.cuda.is_available():
        raise UserError("--device cuda: no CUDA device is available here; use --device cpu or auto")
    if not cfg.data:
        raise UserError("--data is required: the dataset folder to train on")


def resolve_recipe(recipe: str | dict | Recipe | None, layout: str | None = None) -> Recipe:
    """The run's recipe; with none given, the starting recipe for the dataset's layout."""
    if recipe is None:
        return starter_recipe(layout)
    if isinstance(recipe, Recipe):
        return recipe
    if isinstance(recipe, dict):
        return Recipe.from_dict(recipe)
    return Recipe.load(recipe)


def resolve_head(head: str, class_names: list[str]) -> str:
    if head != "auto":
        return head
    return "factorized" if list(class_names) == list(CLASS_NAMES) else "flat"


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def config_dict(cfg: TrainConfig) -> dict:
    d = dataclasses.asdict(cfg)
    if isinstance(cfg.recipe, Recipe):
        d["recipe"] = cfg.recipe.to_dict()
    return d


def cli_command(cfg: TrainConfig, recipe_file: Path) -> str:
    """The ``python -m core train`` command that repeats this run."""
    recipe = cfg.recipe if isinstance(cfg.recipe, str) else str(recipe_file)
    args = ["python", "-m", "core", "train", "--data", cfg.data, "--recipe", recipe, "--model", cfg.model,
            "--head", cfg.head, "--epochs", cfg.epochs, "--batch-size", cfg.batch_size, "--lr", cfg.lr,
            "--optimizer", cfg.optimizer, "--weight-decay", cfg.weight_decay, "--scheduler", cfg.scheduler,
            "--loss", cfg.loss, "--accum-steps", cfg.accum_steps, "--folds", cfg.folds,
            "--val-ratio", cfg.val_ratio, "--seed", cfg.seed, "--device", cfg.device, "--out", cfg.out,
            "--weights", cfg.weights]
    if cfg.loss == "focal":
        args += ["--focal-gamma", cfg.focal_gamma]
    if cfg.loss == "label_smoothing":
        args += ["--smoothing", cfg.smoothing]
    if cfg.corrections:
        args += ["--corrections", cfg.corrections]
    return shlex.join(str(a) for a in args)


def resume_config(run: str | Path, device: str = "auto", workers: int = 0) -> TrainConfig:
    """The stored config of ``run``, set to resume it (only device and workers may change)."""
    run = run_path(run)
    stored = read_json(run / "config.json")["config"]
    known = {f.name for f in dataclasses.fields(TrainConfig)}
    cfg = TrainConfig(**{k: v for k, v in stored.items() if k in known})
    cfg.recipe = read_json(run / "recipe.json")
    cfg.resume, cfg.device, cfg.workers = str(run), device, workers
    return cfg
