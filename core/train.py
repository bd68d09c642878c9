"""Training: person-level splits or folds, cached uint8 batches, batched augmentation.

One call, :func:`train`, turns a :class:`TrainConfig` into a run directory (see core.runs).
The data path decodes every image once per recipe (core.cache); an epoch then only gathers
uint8 rows from that array, interpolates SMOTE rows, augments the float batch in torch
(core.augment) and feeds the model; on a GPU a background thread prepares the next batch.

Progress goes to :class:`Callbacks` objects (minGPT-style); this module never prints.
Everything random is seeded: the epoch order and each batch's augmentation derive from
(seed, fold, epoch, batch), and checkpoints carry the model, optimiser, scheduler and the
global RNG states, so on a CPU a stopped and resumed run ends with the same metrics as an
uninterrupted one.
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import math
import os
import queue
import random
import shlex
import signal
import sys
import threading
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Iterator

import numpy as np
import pandas as pd
import torch
import torch.nn as nn

from core import __version__
from core.augment import augment_batch, normalize, to_float
from core.cache import build_cache
from core.dataset import REPORTED_CORRECTIONS, scan
from core.errors import UserError
from core.labels import CLASS_NAMES
from core.losses import LOSSES, build_loss
from core.metrics import classification_metrics, confusion_table, per_class_report
from core.models import HEADS, build_model, check_model_name
from core.predict import predict_logits
from core.recipe import Augment, Recipe, starter_recipe
from core.runs import (RunWriter, fold_dirs, load_checkpoint, new_run_dir, read_json, run_path,
                       stop_requested)
from core.sampling import oversample, smote_features
from core.splits import person_folds, person_split

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


class Callbacks:
    """Progress hooks; override the ones you need. Train never prints."""

    def on_message(self, text: str) -> None: ...
    def on_cache_progress(self, done: int, total: int) -> None: ...
    def on_train_start(self, info: dict) -> None: ...
    def on_epoch_start(self, fold: int, epoch: int, n_batches: int) -> None: ...
    def on_batch_end(self, epoch: int, batch: int, n_batches: int, loss: float) -> None: ...
    def on_epoch_end(self, metrics: dict) -> None: ...
    def on_train_end(self, summary: dict) -> None: ...


class _Stopped(Exception):
    """Raised inside the loop after last.pt is written for a STOP file or SIGTERM."""


def emit(callbacks: list, event: str, *args) -> None:
    """Call ``event`` on every callback object that has it."""
    for cb in callbacks:
        hook = getattr(cb, event, None)
        if hook is not None:
            hook(*args)


# ----------------------------------------------------------------------------- config

def _choice(option: str, value, allowed: Iterable) -> None:
    allowed = tuple(allowed)
    if value not in allowed:
        raise UserError(f"--{option} {value!r} is not allowed; choose one of: {', '.join(map(str, allowed))}")


def _at_least(option: str, value, low) -> None:
    if value < low:
        raise UserError(f"--{option} must be >= {low}, got {value}")


def validate_config(cfg: TrainConfig) -> None:
    """Raise UserError naming the option, the value and what is allowed."""
    check_model_name(cfg.model)
    _choice("optimizer", cfg.optimizer, OPTIMIZERS)
    _choice("scheduler", cfg.scheduler, SCHEDULERS)
    _choice("loss", cfg.loss, LOSSES)
    _choice("device", cfg.device, DEVICES)
    _choice("head", cfg.head, ("auto", *HEADS))
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


# ----------------------------------------------------------------------------- data

@dataclass
class TrainData:
    df: pd.DataFrame  # labelled rows of the dataset index
    images: np.ndarray  # (N, H, W, 3) uint8, row i is df row i (memory-mapped cache)
    labels: np.ndarray  # int64 class of each row
    class_names: list[str]


def scan_labelled(data: str, corrections: str | None):
    """The dataset index, keeping rows with a label; UserError when none has one."""
    corrections = str(REPORTED_CORRECTIONS) if corrections == "reported" else corrections
    ds = scan(data, corrections=corrections)
    df = ds.df[ds.df["label"] >= 0].reset_index(drop=True)
    if df.empty:
        raise UserError(f"{data}: no labelled images to train on (a {ds.layout!r} dataset without answers)")
    if df["label"].nunique() < 2:
        raise UserError(f"{data}: training needs at least 2 classes, found only {df['label_name'].iloc[0]!r}")
    return ds, df


def load_images(df: pd.DataFrame, recipe: Recipe, workers: int, log: Callable[[str], None],
                progress: Callable[[int, int], None]) -> np.ndarray:
    if recipe.crop.mode == "face":
        log("finding faces (cached after the first run)")  # build_cache looks them up
    return build_cache(df, recipe, progress=progress, log=log, workers=workers or None)


def make_splits(df: pd.DataFrame, folds: int, val_ratio: float, seed: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """(train_rows, val_rows) per model; no person is ever on both sides."""
    if folds >= 2:
        return person_folds(df, folds, seed)
    return [person_split(df, val_ratio, seed)]


# ----------------------------------------------------------------------------- batches

def _batch_seed(*parts: int) -> int:
    return int(np.random.SeedSequence([int(p) for p in parts]).generate_state(1, np.uint64)[0] >> 1)


def epoch_batches(n: int, batch_size: int, seed: int, fold: int, epoch: int) -> list[np.ndarray]:
    """Shuffled positions 0..n-1 cut into ceil(n / batch_size) near-equal batches.

    Near-equal sizes use every sample each epoch without a 1-image batch (which batch norm
    cannot train on); no batch is larger than ``batch_size``.
    """
    order = np.random.default_rng(_batch_seed(seed, fold, epoch)).permutation(n)
    return np.array_split(order, max(1, math.ceil(n / batch_size)))


def gather(images: np.ndarray, a: np.ndarray, b: np.ndarray, gap: np.ndarray) -> torch.Tensor:
    """Float (N, 3, H, W) in [0, 1] of rows a, moved ``gap`` of the way towards rows b (SMOTE)."""
    x = to_float(torch.from_numpy(np.ascontiguousarray(images[a])))
    mix = np.flatnonzero(gap > 0)
    if len(mix):
        xb = to_float(torch.from_numpy(np.ascontiguousarray(images[b[mix]])))
        g = torch.from_numpy(gap[mix]).float().view(-1, 1, 1, 1)
        x[mix] = x[mix] + g * (xb - x[mix])
    return x


@dataclass
class BatchSource:
    """Training batches from the uint8 cache: gather (and SMOTE-mix), augment, normalise, move.

    Sample i is ``images[a[i]] + gap[i] * (images[b[i]] - images[a[i]])`` (core.sampling).
    Each batch's augmentation draws from its own generator seeded by (seed, fold, epoch,
    batch), so a batch is the same whether it is made in order, ahead of time or after a resume.
    """

    images: np.ndarray  # (N, H, W, 3) uint8 cache
    a: np.ndarray  # cache row of each sample's first parent
    b: np.ndarray  # cache row of its second parent (== a unless SMOTE)
    gap: np.ndarray  # interpolation weight towards b
    labels: np.ndarray  # int64 class of each sample
    augment: Augment
    seed: int = 0
    device: torch.device = torch.device("cpu")
    channels_last: bool = True

    def __len__(self) -> int:
        return len(self.a)

    def batches(self, order: list[np.ndarray], fold: int, epoch: int, start: int = 0) -> Iterator:
        """(x, y) for batches ``start``.. of ``order`` (positions into the samples)."""
        for i in range(start, len(order)):
            idx = order[i]
            gen = torch.Generator().manual_seed(_batch_seed(self.seed, fold, epoch, i, 1))
            x = augment_batch(gather(self.images, self.a[idx], self.b[idx], self.gap[idx]), self.augment, gen)
            x, y = normalize(x), torch.from_numpy(self.labels[idx])
            if self.device.type == "cuda":  # page-locked, so the copy overlaps the previous step
                x, y = x.pin_memory(), y.pin_memory()
            x, y = x.to(self.device, non_blocking=True), y.to(self.device, non_blocking=True)
            if self.channels_last:
                x = x.contiguous(memory_format=torch.channels_last)
            yield x, y

    def stream(self, order: list[np.ndarray], fold: int, epoch: int, start: int = 0) -> Iterator:
        """:meth:`batches` as the training loop consumes them: made one ahead on a background
        thread when the model runs on a GPU, in line on the CPU.

        On the CPU torch's own threads already occupy every core during the forward and
        backward passes, so a batch made alongside only competes with them: on the 2-core
        demo machine, prefetching made each smallcnn step ~20 % slower (median 126 vs 102 ms
        over 8 interleaved rounds of 60 batches).
        """
        batches = self.batches(order, fold, epoch, start)
        return prefetch(batches) if self.device.type == "cuda" else batches


def prefetch(items: Iterator, depth: int = 1) -> Iterator:
    """Yield ``items`` while a background thread computes up to ``depth`` ahead.

    Batch preparation (numpy gathers, torch augmentation) releases the GIL, so it overlaps
    the model's forward and backward passes when those run on a GPU (BatchSource.stream).
    """
    q: queue.Queue = queue.Queue(maxsize=depth)
    done = object()
    stop = threading.Event()

    def put(item) -> bool:
        while not stop.is_set():
            try:
                q.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def work():
        try:
            for item in items:
                if not put(item):
                    return
            put(done)
        except BaseException as exc:  # noqa: BLE001 - re-raised in the consumer
            put(exc)

    thread = threading.Thread(target=work, daemon=True)
    thread.start()
    try:
        while True:
            item = q.get()
            if item is done:
                return
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()
        thread.join()


# ----------------------------------------------------------------------------- optimisation

def make_optimizer(name: str, params, lr: float, weight_decay: float) -> torch.optim.Optimizer:
    _choice("optimizer", name, OPTIMIZERS)
    if name == "sgd":
        return torch.optim.SGD(params, lr=lr, momentum=0.9, weight_decay=weight_decay)
    if name == "adam":
        return torch.optim.Adam(params, lr=lr, weight_decay=weight_decay)
    return torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay)


def make_scheduler(name: str, optimizer, epochs: int, steps_per_epoch: int, warmup_epochs: float):
    """(scheduler, per_step). per_step schedulers advance after each optimiser step, the
    others after each epoch (plateau with the validation macro F1)."""
    _choice("scheduler", name, SCHEDULERS)
    if name == "none":
        return None, False
    if name == "step":
        return torch.optim.lr_scheduler.StepLR(optimizer, step_size=max(1, epochs // 3), gamma=0.1), False
    if name == "plateau":
        return torch.optim.lr_scheduler.ReduceLROnPlateau(optimizer, mode="max", factor=0.3, patience=2), False
    total = max(1, epochs * steps_per_epoch)
    warmup = min(int(warmup_epochs * steps_per_epoch), total // 10)

    def factor(step: int) -> float:
        # 1) linear warm-up from ~0 to the peak rate over `warmup` steps
        if step < warmup:
            return (step + 1) / (warmup + 1)
        # 2) then half a cosine from the peak down to 0 at the last step
        progress = (step - warmup) / max(1, total - warmup)
        return 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor), True


def train_steps(model: nn.Module, batches: Iterable[tuple[torch.Tensor, torch.Tensor]], criterion: nn.Module,
                optimizer: torch.optim.Optimizer, accum_steps: int, n_batches: int, start: int = 0, *,
                autocast=contextlib.nullcontext, scaler=None,
                after_step: Callable[[], None] | None = None,
                after_batch: Callable[[int, float, int], None] | None = None,
                should_stop: Callable[[], bool] | None = None) -> int:
    """Train on ``batches`` (batch ``start`` .. ``n_batches - 1`` of an epoch); return the next index.

    Gradients accumulate over groups of ``accum_steps`` batches: each loss is divided by its
    group's size and the optimiser steps once per group, the last (remainder) group included,
    so a group's step equals one step on the concatenated batch (for equal batch sizes).
    ``should_stop`` is asked after each optimiser step; when it says yes, training stops there.
    """
    model.train()
    optimizer.zero_grad(set_to_none=True)
    next_batch = start
    for b, (x, y) in enumerate(batches, start):
        next_batch = b + 1
        group_start = (b // accum_steps) * accum_steps
        group_size = min(accum_steps, n_batches - group_start)
        with autocast():
            loss = criterion(model(x), y)
        scaled = loss / group_size
        (scaler.scale(scaled) if scaler else scaled).backward()
        end_of_group = b + 1 == group_start + group_size
        if end_of_group:
            if scaler:
                scaler.step(optimizer)
                scaler.update()
            else:
                optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            if after_step:
                after_step()
        if after_batch:
            after_batch(b, float(loss.detach()), len(y))
        if end_of_group and should_stop and next_batch < n_batches and should_stop():
            break
    return next_batch


# ----------------------------------------------------------------------------- RNG state

def rng_state() -> dict:
    np_state = np.random.get_state()
    state = {"torch": torch.get_rng_state(), "python": random.getstate(),
             "numpy": [np_state[0], np_state[1].tolist(), *np_state[2:]]}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict) -> None:
    torch.set_rng_state(state["torch"])
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    kind, keys, *rest = state["numpy"]
    np.random.set_state((kind, np.array(keys, dtype=np.uint32), *rest))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


# ----------------------------------------------------------------------------- the trainer

@dataclass
class FoldState:
    """Where a fold's training stands; stored in last.pt."""

    fold: int = 0
    epoch: int = 0  # completed epochs
    next_batch: int = 0  # first batch still to run in epoch `epoch` (mid-epoch stop)
    loss_sum: float = 0.0  # training loss sum over the current epoch's samples so far
    seen: int = 0  # samples of the current epoch so far
    best_f1: float = -1.0
    best_epoch: int = 0
    history: list = field(default_factory=list)  # metrics records of finished epochs


def ema_decay(horizon_epochs: float, steps_per_epoch: int) -> float:
    """Per-step EMA decay whose averaging horizon is ``horizon_epochs`` epochs."""
    return 1.0 - 1.0 / max(1.0, horizon_epochs * steps_per_epoch)


class WeightEMA:
    """Exponential moving average of a model's weights and batch-norm statistics.

    The average is what gets validated and saved as best.pt: it is smoother than the raw
    weights late in a short, high-learning-rate run. Early updates use a smaller decay,
    (1 + n) / (10 + n), so the first epochs' random weights fade quickly.
    """

    def __init__(self, model: nn.Module, decay: float):
        self.decay = decay
        self.updates = 0
        self.model = copy.deepcopy(model).eval()
        for p in self.model.parameters():
            p.requires_grad_(False)
        self._pairs: list[tuple[torch.Tensor, torch.Tensor]] = []
        self._source: nn.Module | None = None

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        self.updates += 1
        d = min(self.decay, (1 + self.updates) / (10 + self.updates))
        if model is not self._source:  # state_dict() walks every module: once per model, not per step
            # (its tensors share storage with the weights, which training updates in place)
            self._pairs = list(zip(self.model.state_dict().values(), model.state_dict().values()))
            self._source = model
        for avg, new in self._pairs:
            if avg.is_floating_point():
                avg.lerp_(new, 1 - d)
            else:
                avg.copy_(new)

    def state_dict(self) -> dict:
        return {"model": self.model.state_dict(), "updates": self.updates}

    def load_state_dict(self, state: dict) -> None:
        self.model.load_state_dict(state["model"])
        self.updates = int(state["updates"])


@dataclass
class FoldRun:
    """Everything that trains one fold's model."""

    fold: int
    sub: str  # its folder in the run directory ("" for a single split)
    model: nn.Module
    ema: WeightEMA | None
    optimizer: torch.optim.Optimizer
    scheduler: object | None
    per_step: bool  # the scheduler steps after each optimiser step (else after each epoch)
    scaler: object | None  # GradScaler for float16 autocast on cuda
    criterion: nn.Module
    source: BatchSource
    n_batches: int
    state: FoldState

    @property
    def evaluated(self) -> nn.Module:
        """The weights that are validated and saved as best.pt."""
        return self.ema.model if self.ema else self.model

    def after_step(self) -> None:
        if self.per_step and self.scheduler is not None:
            self.scheduler.step()
        if self.ema:
            self.ema.update(self.model)

    def resume_state(self) -> dict:
        """What last.pt needs to continue exactly where training is now."""
        return {"model": self.model.state_dict(), "optimizer": self.optimizer.state_dict(),
                "scheduler": self.scheduler.state_dict() if self.scheduler is not None else None,
                "scaler": self.scaler.state_dict() if self.scaler is not None else None,
                "ema": self.ema.state_dict() if self.ema else None,
                "state": dataclasses.asdict(self.state), "rng": rng_state()}

    def restore(self, last: dict) -> None:
        self.model.load_state_dict(last["model"])
        self.optimizer.load_state_dict(last["optimizer"])
        if self.scheduler is not None and last.get("scheduler"):
            self.scheduler.load_state_dict(last["scheduler"])
        if self.scaler is not None and last.get("scaler"):
            self.scaler.load_state_dict(last["scaler"])
        if self.ema and last.get("ema"):
            self.ema.load_state_dict(last["ema"])
        self.state = FoldState(**last["state"])
        set_rng_state(last["rng"])


class Trainer:
    """Runs the folds of one config into one run directory."""

    def __init__(self, cfg: TrainConfig, recipe: Recipe, data: TrainData, writer: RunWriter,
                 callbacks: list[Callbacks], device: torch.device):
        self.cfg, self.recipe, self.data, self.writer = cfg, recipe, data, writer
        self.callbacks, self.device = callbacks, device
        self.stop_flag = False
        self.num_classes = len(data.class_names)
        self.head = resolve_head(cfg.head, data.class_names)
        self._t0 = time.monotonic()
        self._done_batches = 0  # batches run by this process (for the ETA)
        self._total_batches = 1  # batches this process will run, estimated
        self.n_models = 1

    # --- reporting ---------------------------------------------------------------------
    def emit(self, event: str, *args) -> None:
        emit(self.callbacks, event, *args)

    def message(self, text: str) -> None:
        self.writer.log(text)
        self.emit("on_message", text)

    def _eta(self) -> float:
        if not self._done_batches:
            return 0.0
        per = (time.monotonic() - self._t0) / self._done_batches
        return per * max(0, self._total_batches - self._done_batches)

    def _expect(self, fold: int, state: FoldState, n_batches: int) -> None:
        """Batches left for this process, assuming later folds are as long as this one."""
        later = (self.n_models - fold - 1) * self.cfg.epochs * n_batches
        left = (self.cfg.epochs - state.epoch) * n_batches - state.next_batch
        self._total_batches = self._done_batches + left + later

    def should_stop(self) -> bool:
        return self.stop_flag or stop_requested(self.writer.dir)

    # --- pieces ------------------------------------------------------------------------
    def _autocast(self):
        if self.device.type == "cuda" and self.cfg.amp:
            dtype = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
            return lambda: torch.autocast("cuda", dtype=dtype)
        return contextlib.nullcontext

    def _batch_source(self, train_rows: np.ndarray) -> BatchSource:
        """The training samples of one split: the rows, plus oversampled ones per the recipe."""
        s = self.recipe.sampling
        labels = self.data.labels[train_rows]
        features = None
        if s.method == "smote":
            features = smote_features(self.data.images[train_rows], s.smote_size)
        plan = oversample(labels, s.method, s.target, s.k_neighbors, features, seed=self.cfg.seed)
        for note in plan.notes:
            self.message(f"oversampling: {note}")
        if s.method != "none":
            self.message(f"oversampling ({s.method}): {len(labels)} -> {len(plan)} training samples")
        return BatchSource(self.data.images, train_rows[plan.a], train_rows[plan.b], plan.gap,
                           plan.labels.astype(np.int64), self.recipe.augment, self.cfg.seed, self.device,
                           self.cfg.channels_last)

    def evaluate(self, model: nn.Module, rows: np.ndarray, criterion: nn.Module,
                 tta: bool = False) -> tuple[dict, np.ndarray]:
        """Validation metrics and logits, under eval() + inference_mode (no augmentation).

        ``tta`` averages in the mirrored images as predict does; the final report uses it, the
        per-epoch validation skips it (half the cost).
        """
        logits = predict_logits(model, self.data.images, rows, max(64, self.cfg.batch_size * 2), self.device,
                                self.cfg.channels_last, self._autocast(), tta=tta)
        y = self.data.labels[rows]
        with torch.inference_mode():
            val_loss = float(criterion(torch.from_numpy(logits), torch.from_numpy(y)))
        metrics = classification_metrics(y, logits.argmax(1), self.data.class_names)
        return {"val_loss": val_loss, **metrics}, logits

    # --- one fold ----------------------------------------------------------------------
    def _new_fold(self, fold: int, train_rows: np.ndarray, last: dict | None) -> FoldRun:
        """Model, optimiser, schedule and sampler of one fold; restored from ``last`` when given."""
        cfg = self.cfg
        torch.manual_seed(cfg.seed + fold)
        model, note = build_model(cfg.model, self.num_classes, "none" if last else cfg.weights, self.head)
        sub = fold_dirs(cfg.folds)[fold]
        self.message(note if not last else f"{cfg.model}: resuming from {sub or '.'}/last.pt")
        model = model.to(self.device, memory_format=torch.channels_last if cfg.channels_last else torch.contiguous_format)
        source = self._batch_source(train_rows)
        n_batches = len(epoch_batches(len(source), cfg.batch_size, cfg.seed, fold, 0))
        steps_per_epoch = math.ceil(n_batches / cfg.accum_steps)
        optimizer = make_optimizer(cfg.optimizer, model.parameters(), cfg.lr, cfg.weight_decay)
        scheduler, per_step = make_scheduler(cfg.scheduler, optimizer, cfg.epochs, steps_per_epoch, cfg.warmup_epochs)
        scaler = torch.amp.GradScaler("cuda") if (self.device.type == "cuda" and cfg.amp
                                                  and not torch.cuda.is_bf16_supported()) else None
        ema = WeightEMA(model, ema_decay(cfg.ema_epochs, steps_per_epoch)) if cfg.ema_epochs > 0 else None
        run = FoldRun(fold, sub, model, ema, optimizer, scheduler, per_step, scaler,
                      build_loss(cfg.loss, self.num_classes, cfg.focal_gamma, cfg.smoothing), source, n_batches,
                      FoldState(fold=fold))
        if last:
            run.restore(last)
        else:
            seed_everything(cfg.seed + fold)
        return run

    def fit_fold(self, fold: int, train_rows: np.ndarray, val_rows: np.ndarray, last: dict | None) -> None:
        run = self._new_fold(fold, train_rows, last)
        self._expect(fold, run.state, run.n_batches)
        for epoch in range(run.state.epoch, self.cfg.epochs):
            self._run_epoch(run, epoch)
            self._end_epoch(run, epoch, val_rows)
            if epoch + 1 < self.cfg.epochs and self.should_stop():
                raise _Stopped()

    def _end_epoch(self, run: FoldRun, epoch: int, val_rows: np.ndarray) -> None:
        """Validate, record, keep the best checkpoint, step epoch-level schedules, save last.pt."""
        cfg, state = self.cfg, run.state
        metrics, _ = self.evaluate(run.evaluated, val_rows, run.criterion)
        record = {"fold": run.fold, "epoch": epoch + 1, "train_loss": state.loss_sum / max(1, state.seen),
                  **metrics, "lr": run.optimizer.param_groups[0]["lr"], "best": metrics["macro_f1"] > state.best_f1}
        state.history.append(record)
        self.writer.append_metrics(record)
        if record["best"]:
            state.best_f1, state.best_epoch = metrics["macro_f1"], epoch + 1
            self.writer.save_checkpoint(f"{run.sub}/best.pt".lstrip("/"), {
                **self._meta(), "kind": "best", "model": run.evaluated.state_dict(), "epoch": epoch + 1,
                "fold": run.fold, "metrics": metrics})
        if run.scheduler is not None and not run.per_step:
            run.scheduler.step(metrics["macro_f1"]) if cfg.scheduler == "plateau" else run.scheduler.step()
        state.epoch, state.next_batch, state.loss_sum, state.seen = epoch + 1, 0, 0.0, 0
        self._save_last(run)
        self.emit("on_epoch_end", record)
        self.message(f"fold {run.fold} epoch {epoch + 1}/{cfg.epochs}: train loss {record['train_loss']:.4f}, "
                     f"val loss {metrics['val_loss']:.4f}, accuracy {metrics['accuracy']:.4f}, "
                     f"macro F1 {metrics['macro_f1']:.4f}")

    def _save_last(self, run: FoldRun) -> None:
        self.writer.save_checkpoint(f"{run.sub}/last.pt".lstrip("/"),
                                    {**self._meta(), "kind": "last", **run.resume_state()})

    def _run_epoch(self, run: FoldRun, epoch: int) -> None:
        cfg, state, n_batches = self.cfg, run.state, run.n_batches
        order = epoch_batches(len(run.source), cfg.batch_size, cfg.seed, run.fold, epoch)
        self.emit("on_epoch_start", run.fold, epoch, n_batches)
        self.writer.status(state="running", fold=run.fold, epoch=epoch + 1, epochs=cfg.epochs, batch=state.next_batch,
                           n_batches=n_batches, message=f"training epoch {epoch + 1}", force=True)

        def after_batch(b: int, loss: float, n: int) -> None:
            state.loss_sum += loss * n
            state.seen += n
            self._done_batches += 1
            self.emit("on_batch_end", epoch, b, n_batches, loss)
            self.writer.status(batch=b + 1, eta_s=round(self._eta(), 1), loss=loss)

        batches = run.source.stream(order, run.fold, epoch, state.next_batch)
        try:
            state.next_batch = train_steps(
                run.model, batches, run.criterion, run.optimizer, cfg.accum_steps, n_batches, state.next_batch,
                autocast=self._autocast(), scaler=run.scaler, after_step=run.after_step, after_batch=after_batch,
                should_stop=self.should_stop)
        finally:
            batches.close()
        if state.next_batch < n_batches:
            self._save_last(run)
            raise _Stopped()

    def _meta(self) -> dict:
        return {"model_name": self.cfg.model, "num_classes": self.num_classes, "head": self.head,
                "class_names": list(self.data.class_names), "recipe": self.recipe.to_dict(),
                "config": config_dict(self.cfg), "version": __version__}

    # --- all folds ---------------------------------------------------------------------
    def run(self, splits: list[tuple[np.ndarray, np.ndarray]], lasts: dict[int, dict]) -> dict:
        self.n_models = len(splits)
        for fold, (tr, va) in enumerate(splits):
            last = lasts.get(fold)
            if last and last["state"]["epoch"] >= self.cfg.epochs:
                continue  # this fold finished before the interruption
            self.fit_fold(fold, tr, va, last)
        return self.finish(splits)

    def finish(self, splits) -> dict:
        """Out-of-fold (or validation) predictions of the best checkpoints and their reports."""
        criterion = build_loss(self.cfg.loss, self.num_classes, self.cfg.focal_gamma, self.cfg.smoothing)
        frames, best_epochs = [], []
        for fold, (_, va) in enumerate(splits):
            sub = fold_dirs(self.cfg.folds)[fold]
            best = load_checkpoint(self.writer.dir / sub / "best.pt")
            model = build_model(self.cfg.model, self.num_classes, "none", self.head)[0].to(self.device)
            model.load_state_dict(best["model"])
            if self.cfg.channels_last:
                model = model.to(memory_format=torch.channels_last)
            _, logits = self.evaluate(model, va, criterion, tta=self.recipe.augment.hflip)
            frames.append(prediction_table(self.data, va, logits, fold if self.cfg.folds >= 2 else None))
            best_epochs.append(best["epoch"])
        table = pd.concat(frames).sort_values("row").drop(columns="row")
        y, pred = table["true"].to_numpy(), table["pred"].to_numpy()
        metrics = classification_metrics(y, pred, self.data.class_names)
        names = self.data.class_names
        conf = pd.DataFrame(confusion_table(y, pred, len(names)), index=names, columns=names)
        self.writer.write_csv("val_predictions.csv", table)
        self.writer.write_csv("confusion_matrix.csv", conf.rename_axis("true \\ pred"), index=True)
        self.writer.write_csv("per_class_report.csv", per_class_report(y, pred, names))
        summary = {"macro_f1": metrics["macro_f1"], "accuracy": metrics["accuracy"],
                   "scope": "out-of-fold" if self.cfg.folds >= 2 else "validation",
                   "images": int(len(table)), "best_epochs": best_epochs,
                   "train_seconds": round(time.monotonic() - self._t0, 1)}
        self.writer.write_json("summary.json", summary)
        return summary


def prediction_table(data: TrainData, rows: np.ndarray, logits: np.ndarray, fold: int | None) -> pd.DataFrame:
    """path, true, pred, prob_true, loss (cross-entropy of the true class) for ``rows``."""
    y = data.labels[rows]
    logp = torch.log_softmax(torch.from_numpy(logits).float(), dim=1).numpy()
    table = pd.DataFrame({"row": rows, "path": data.df["path"].to_numpy()[rows], "true": y,
                          "pred": logits.argmax(1), "prob_true": np.exp(logp[np.arange(len(y)), y]),
                          "loss": -logp[np.arange(len(y)), y]})
    if fold is not None:
        table["fold"] = fold
    return table


# ----------------------------------------------------------------------------- entry point

class _StopSwitch:
    """Where a stop request (STOP file or SIGTERM) goes: before the trainer exists it aborts
    image preparation at once; afterwards the trainer stops after its current batch."""

    def __init__(self, run_dir: Path):
        self.run_dir = run_dir
        self.trainer: Trainer | None = None

    def request(self, *_signal) -> None:
        if self.trainer is None:
            raise _Stopped()
        self.trainer.stop_flag = True

    def check(self) -> None:
        """Called while preparing images: honour the app's STOP file there too."""
        if self.trainer is None and stop_requested(self.run_dir):
            raise _Stopped()


@contextlib.contextmanager
def _sigterm_to(switch: _StopSwitch):
    """Route SIGTERM to ``switch`` for the whole run (main thread only)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    old = signal.signal(signal.SIGTERM, switch.request)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, old)


def _set_threads(device: torch.device, cfg: TrainConfig) -> None:
    if device.type == "cpu":
        torch.set_num_threads(max(1, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity")
                                  else os.cpu_count() or 1))
        torch.use_deterministic_algorithms(True, warn_only=True)
    else:
        torch.backends.cudnn.benchmark = True


def _resume_points(run: Path, folds: int) -> dict[int, dict]:
    """last.pt of every fold that has one (a finished fold is skipped, the others continue)."""
    lasts = {}
    for fold, sub in enumerate(fold_dirs(folds)):
        path = run / sub / "last.pt"
        if path.is_file():
            lasts[fold] = load_checkpoint(path)
    if not lasts:
        raise UserError(f"{run}: nothing to resume: no last.pt (the run ended before its first epoch); "
                        "start a new run instead")
    return lasts


def train(config: TrainConfig, callbacks: Iterable[Callbacks] = ()) -> Path:
    """Train as ``config`` says; return the run directory (see core.runs for its files)."""
    callbacks = list(callbacks)
    if config.resume:
        cfg = resume_config(config.resume, config.device, config.workers)
    else:
        cfg = dataclasses.replace(config, data=str(Path(config.data).expanduser().resolve()) if config.data else "")
    validate_config(cfg)
    device = resolve_device(cfg.device)
    ds, df = scan_labelled(cfg.data, cfg.corrections)
    recipe = resolve_recipe(cfg.recipe, ds.layout)
    splits = make_splits(df, cfg.folds, cfg.val_ratio, cfg.seed)
    lasts = _resume_points(Path(cfg.resume), cfg.folds) if cfg.resume else {}
    run_dir = Path(cfg.resume) if cfg.resume else new_run_dir(cfg.out, cfg.model)
    writer = RunWriter(run_dir)
    switch = _StopSwitch(run_dir)
    try:
        with _sigterm_to(switch):
            writer.status(state="running", message="preparing images", force=True, fold=0, epoch=0, epochs=cfg.epochs,
                          batch=0, n_batches=0, eta_s=None, started=time.time())
            if not cfg.resume:
                _write_config(writer, cfg, recipe, ds, df, splits)
            else:
                writer.rewrite_metrics([r for fold in sorted(lasts) for r in lasts[fold]["state"]["history"]])
                (run_dir / "STOP").unlink(missing_ok=True)
            _set_threads(device, cfg)
            log = lambda text: (writer.log(text), emit(callbacks, "on_message", text))  # noqa: E731
            log(f"resuming {run_dir}" if cfg.resume else f"run {run_dir}: {len(df)} images, device {device}")
            images = load_images(df, recipe, cfg.workers, log,
                                 lambda d, t: (switch.check(), emit(callbacks, "on_cache_progress", d, t),
                                               writer.status(message=f"preparing images {d}/{t}")))
            switch.check()
            data = TrainData(df, images, df["label"].to_numpy(np.int64), list(ds.class_names))
            trainer = Trainer(cfg, recipe, data, writer, callbacks, device)
            emit(callbacks, "on_train_start", {"run_dir": str(run_dir), "folds": len(splits), "epochs": cfg.epochs,
                                    "train_images": [len(t) for t, _ in splits], "val_images": [len(v) for _, v in splits]})
            switch.trainer = trainer
            summary = trainer.run(splits, lasts)
    except _Stopped:
        if any(run_dir.glob("**/last.pt")):
            message = "stopped; continue with: python -m core train --resume " + shlex.quote(str(run_dir))
        else:
            message = "stopped before the first epoch ended; nothing to resume, start a new run"
        writer.status(state="stopped", message=message, force=True)
        writer.log("stopped on request")
        emit(callbacks, "on_train_end", {"state": "stopped", "run_dir": str(run_dir)})
        return run_dir
    except KeyboardInterrupt:
        writer.status(state="stopped", message="interrupted", force=True)
        raise
    except BaseException as exc:
        writer.status(state="failed", message=f"{exc.__class__.__name__}: {exc}", force=True)
        writer.log("failed:\n" + "".join(traceback.format_exception(exc)))
        raise
    writer.status(state="done", message=f"done: {summary['scope']} macro F1 {summary['macro_f1']:.4f}",
                  eta_s=0, result=summary, force=True)
    emit(callbacks, "on_train_end", {"state": "done", "run_dir": str(run_dir), **summary})
    return run_dir


def _write_config(writer: RunWriter, cfg: TrainConfig, recipe: Recipe, ds, df: pd.DataFrame, splits) -> None:
    writer.write_json("recipe.json", recipe.to_dict())
    counts = df.groupby("label").size()
    dataset = {**ds.summary(), "labelled_images": int(len(df)),
               "class_counts": {ds.class_names[int(k)]: int(v) for k, v in counts.items()},
               "split": [{"train": int(len(t)), "val": int(len(v))} for t, v in splits]}
    writer.write_json("config.json", {
        "config": config_dict(cfg), "recipe": recipe.to_dict(), "dataset": dataset,
        "class_names": list(ds.class_names), "num_classes": len(ds.class_names),
        "command": cli_command(cfg, writer.dir / "recipe.json"), "created": time.strftime("%Y-%m-%d %H:%M:%S"),
        "version": __version__, "torch": torch.__version__, "python": sys.version.split()[0]})
