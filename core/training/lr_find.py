"""The learning-rate finder (Leslie Smith's LR range test, as fastai's ``lr_find``).

Training starts from the run's fresh model and raises the learning rate exponentially, one
optimiser step at a time, from ``lr_start`` to ``lr_end``, recording the training loss. The
loss first barely moves (too small a rate), then falls, then blows up (too large). The sweep
stops early once the smoothed loss exceeds 4x its lowest value.

It trains exactly as ``train`` would: the same data path (the preprocessed cache, the
recipe's oversampling and augmentation through :class:`BatchSource`), the same model, loss,
optimiser (:func:`make_optimizer`) and step (:func:`train_steps`), on the training persons
of the run's first split. Only the learning rate differs, and nothing is saved but the curve.

The suggestion follows the **valley** rule (fastai's ``valley``): in the smoothed loss, take
the longest stretch where the loss keeps falling (the longest decreasing subsequence), and
suggest the rate at 1/3 + 1/6 = half of the way into it: well inside the fall, before the
bottom where the loss is about to turn up.
"""

from __future__ import annotations

import contextlib
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator

import numpy as np
import pandas as pd
import torch

from core.errors import UserError
from core.fileio import atomic_path, atomic_write
from core.losses import build_loss
from core.models import build_model
from core.sampling import oversample, smote_features
from core.training.batches import BatchSource, epoch_batches
from core.training.config import TrainConfig
from core.training.data import load_images, make_splits, old_age_labels, scan_labelled
from core.training.optim import make_optimizer, train_steps
from core.training.resolve import RunSettings, resolve_config, resolve_run

Log = Callable[[str], None]
RULE = ("valley: the longest stretch where the smoothed loss keeps falling; the suggestion is the rate "
        "half way into it (fastai's 'valley')")
DIVERGED = 4.0  # stop once the smoothed loss is this many times its lowest value


@dataclass
class Sweep:
    """One LR range test: the rate and loss of each optimiser step, and the suggestion."""

    lrs: np.ndarray
    losses: np.ndarray
    smoothed: np.ndarray
    suggestion: float
    index: int  # the step the suggestion comes from
    planned: int  # steps asked for (more than len(lrs) when the loss diverged first)

    def table(self) -> pd.DataFrame:
        return pd.DataFrame({"step": np.arange(len(self.lrs)), "lr": self.lrs, "loss": self.losses,
                             "smoothed": self.smoothed})


# ----------------------------------------------------------------------------- the curve

def lr_schedule(lr_start: float, lr_end: float, steps: int) -> np.ndarray:
    """``steps`` rates from ``lr_start`` to ``lr_end``, evenly spaced on a log scale."""
    if not 0 < lr_start < lr_end:
        raise UserError(f"--lr-start {lr_start:g} and --lr-end {lr_end:g}: need 0 < start < end")
    if steps < 5:
        raise UserError(f"--steps must be >= 5 (a curve needs a few points), got {steps}")
    return np.geomspace(lr_start, lr_end, steps)


def default_steps(batches_per_epoch: int) -> int:
    """A few hundred steps on a real dataset, fewer on a tiny one: 5 epochs, 20..300."""
    return int(min(300, max(20, 5 * batches_per_epoch)))


def smooth(losses: np.ndarray, steps: int) -> np.ndarray:
    """Debiased exponential moving average (as fastai's recorder); its horizon scales with
    the sweep: beta = 1 - 5/steps, within [0.6, 0.98]."""
    beta = min(0.98, max(0.6, 1 - 5 / max(steps, 1)))
    out, avg = np.empty(len(losses)), 0.0
    for i, loss in enumerate(losses):
        avg = beta * avg + (1 - beta) * float(loss)
        out[i] = avg / (1 - beta ** (i + 1))
    return out


def valley_index(losses: np.ndarray) -> int:
    """The valley rule (see the module doc) on ``losses``: an index into them."""
    n = len(losses)
    if n == 0:
        raise ValueError("no losses")
    longest = [1] * n  # longest decreasing subsequence ending at i
    end = 0
    for i in range(1, n):
        for j in range(i):
            if losses[i] < losses[j] and longest[i] < longest[j] + 1:
                longest[i] = longest[j] + 1
        if longest[i] > longest[end]:
            end = i
    start = end - longest[end] + 1
    third = (end - start) / 3
    return min(n - 1, start + int(third) + int(third / 2))


def suggest(lrs: np.ndarray, smoothed: np.ndarray) -> int:
    """The valley index over the curve without its noisy start (first tenth) and its last few
    steps (the blow-up), as fastai trims it."""
    n = len(smoothed)
    lo, hi = n // 10, n - min(5, n // 10)
    if hi - lo < 3:
        lo, hi = 0, n
    return lo + valley_index(smoothed[lo:hi])


# ----------------------------------------------------------------------------- the sweep

def _resolved(config: TrainConfig) -> tuple[RunSettings, object, pd.DataFrame]:
    """The settings as train resolves them (core.training.resolve), and the labelled dataset."""
    if config.resume:
        raise UserError("lr-find starts from a fresh model; --resume does not apply")
    cfg, device, why = resolve_config(config)
    ds, df = scan_labelled(cfg.data, cfg.corrections)
    return resolve_run(cfg, device, why, ds.layout, list(ds.class_names)), ds, df


def _autocast(cfg: TrainConfig, device: torch.device):
    if device.type == "cuda" and cfg.amp and torch.cuda.is_bf16_supported():
        return lambda: torch.autocast("cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext


def training_source(settings: RunSettings, df: pd.DataFrame, class_names: list[str], log: Log,
                    cache_progress=None) -> BatchSource:
    """The BatchSource of the first split's training samples, as the trainer makes it."""
    cfg, recipe = settings.config, settings.recipe
    images = load_images(df, recipe, cfg.workers, log, cache_progress or (lambda d, t: None))
    rows = make_splits(df, cfg.folds, cfg.val_ratio, cfg.seed)[0][0]
    labels = old_age_labels(df, class_names, cfg.old_age, log)[rows]
    s = recipe.sampling
    features = smote_features(images[rows], s.smote_size) if s.method == "smote" else None
    plan = oversample(labels, s.method, s.target, s.k_neighbors, features, seed=cfg.seed)
    return BatchSource(images, rows[plan.a], rows[plan.b], plan.gap, plan.labels.astype(np.int64), recipe.augment,
                       cfg.seed, settings.device, cfg.channels_last)


def _endless(source: BatchSource, batch_size: int, seed: int) -> Iterator:
    """Training batches epoch after epoch, in the trainer's seeded order."""
    for epoch in range(10**9):
        yield from source.batches(epoch_batches(len(source), batch_size, seed, 0, epoch), 0, epoch)


class _Recorder:
    """Sets each step's rate, records each step's mean loss, and says when the loss diverged."""

    def __init__(self, optimizer, lrs: np.ndarray, accum: int, progress):
        self.optimizer, self.lrs, self.accum, self.progress = optimizer, lrs, accum, progress
        self.losses: list[float] = []
        self.group: list[float] = []
        self._set(0)

    def _set(self, step: int) -> None:
        for group in self.optimizer.param_groups:
            group["lr"] = float(self.lrs[min(step, len(self.lrs) - 1)])

    def after_step(self) -> None:
        self._set(len(self.losses) + 1)  # the next step's rate (its loss arrives in after_batch)

    def after_batch(self, b: int, loss: torch.Tensor, n: int) -> None:
        self.group.append(float(loss))
        if (b + 1) % self.accum:
            return
        self.losses.append(float(np.mean(self.group)))
        self.group = []
        if self.progress:
            self.progress(len(self.losses), len(self.lrs))

    def diverged(self) -> bool:
        if len(self.losses) <= 3:
            return False
        smoothed = smooth(np.asarray(self.losses), len(self.lrs))
        return not math.isfinite(smoothed[-1]) or smoothed[-1] > DIVERGED * smoothed.min()


def lr_find(config: TrainConfig, steps: int | None = None, lr_start: float = 1e-7, lr_end: float = 10.0,
            log: Log | None = None, progress: Callable[[int, int], None] | None = None,
            cache_progress: Callable[[int, int], None] | None = None) -> Sweep:
    """Run the LR range test for ``config`` (a TrainConfig as ``train`` takes it)."""
    log = log or (lambda text: None)
    lr_schedule(lr_start, lr_end, 5 if steps is None else steps)  # bad bounds or steps: named before any work
    settings, ds, df = _resolved(config)
    if left_out := ds.problems_note():
        log(left_out)
    cfg, device, class_names = settings.config, settings.device, list(ds.class_names)
    source = training_source(settings, df, class_names, log, cache_progress)
    per_epoch = len(epoch_batches(len(source), cfg.batch_size, cfg.seed, 0, 0))
    lrs = lr_schedule(lr_start, lr_end, steps or default_steps(math.ceil(per_epoch / cfg.accum_steps)))
    torch.manual_seed(cfg.seed)
    model, note = build_model(cfg.model, len(class_names), settings.weights, settings.head)
    log(f"{note}; sweeping the learning rate {lr_start:g} -> {lr_end:g} over {len(lrs)} steps "
        f"(batch {cfg.batch_size} x {cfg.accum_steps}, {cfg.optimizer}, {cfg.loss}, {len(source)} training samples)")
    model = model.to(device, memory_format=torch.channels_last if cfg.channels_last else torch.contiguous_format)
    optimizer = make_optimizer(cfg.optimizer, model.parameters(), float(lrs[0]), cfg.weight_decay)
    rec = _Recorder(optimizer, lrs, cfg.accum_steps, progress)
    n_batches = len(lrs) * cfg.accum_steps
    batches = _endless(source, cfg.batch_size, cfg.seed)
    try:
        train_steps(model, (b for _, b in zip(range(n_batches), batches)), build_loss(
            cfg.loss, len(class_names), cfg.focal_gamma, cfg.smoothing), optimizer, cfg.accum_steps, n_batches,
            autocast=_autocast(cfg, device), after_step=rec.after_step, after_batch=rec.after_batch,
            should_stop=rec.diverged)
    finally:
        batches.close()
    losses = np.asarray(rec.losses)
    done = int(np.argmin(np.isfinite(losses))) if not np.isfinite(losses).all() else len(losses)
    if done < 3:
        raise UserError(f"the sweep has {done} finite loss(es) before it diverged; raise --steps or lower --lr-start")
    losses = losses[:done]  # a NaN or infinite loss ends the curve
    smoothed = smooth(losses, len(lrs))
    index = suggest(lrs[:done], smoothed)
    return Sweep(lrs[:done], losses, smoothed, float(lrs[index]), index, len(lrs))


# ----------------------------------------------------------------------------- output

def describe(sweep: Sweep) -> str:
    """The result in words: what was swept and the suggestion, with its rule."""
    ended = "" if len(sweep.lrs) == sweep.planned else f" (stopped at step {len(sweep.lrs)} of {sweep.planned}: " \
                                                       f"the loss diverged)"
    return (f"swept {sweep.lrs[0]:.3g} -> {sweep.lrs[-1]:.3g} over {len(sweep.lrs)} steps{ended}; lowest smoothed "
            f"loss {sweep.smoothed.min():.4f} at lr {sweep.lrs[int(np.argmin(sweep.smoothed))]:.3g}\n"
            f"suggested learning rate: {sweep.suggestion:.3g} (step {sweep.index})\n"
            f"rule: {RULE}")


def write_sweep(sweep: Sweep, folder: str | Path) -> dict[str, Path | None]:
    """lr_find.csv (step, lr, loss, smoothed), lr_find.json (the suggestion and its rule) and,
    when matplotlib is installed, lr_find.png; the paths (png None without matplotlib)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    with atomic_path(folder / "lr_find.csv") as tmp:
        sweep.table().to_csv(tmp, index=False)
    import json

    atomic_write(folder / "lr_find.json", json.dumps({"suggestion": sweep.suggestion, "step": sweep.index,
                                                      "steps": len(sweep.lrs), "planned": sweep.planned,
                                                      "rule": RULE}, indent=2) + "\n")
    return {"csv": folder / "lr_find.csv", "json": folder / "lr_find.json", "png": plot_sweep(sweep, folder)}


def plot_sweep(sweep: Sweep, folder: Path) -> Path | None:
    """lr_find.png: loss against learning rate (log scale), the suggestion marked; None when
    matplotlib is not installed (the CSV holds the same curve)."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    fig, ax = plt.subplots(figsize=(6, 4), dpi=100)
    ax.plot(sweep.lrs, sweep.losses, color="0.75", lw=1, label="loss")
    ax.plot(sweep.lrs, sweep.smoothed, color="C0", lw=2, label="smoothed")
    ax.axvline(sweep.suggestion, color="C3", ls="--", label=f"suggestion {sweep.suggestion:.2g} (valley)")
    ax.set_xscale("log")
    ax.set_xlabel("learning rate")
    ax.set_ylabel("training loss")
    top = np.nanpercentile(sweep.smoothed, 95) * 1.3
    ax.set_ylim(max(0.0, float(np.nanmin(sweep.losses)) * 0.9), float(top))
    ax.legend()
    fig.tight_layout()
    path = folder / "lr_find.png"
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png")
    plt.close(fig)
    return path
