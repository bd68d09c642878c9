"""``train()``: a TrainConfig in, a run directory out; stop handling and the files written first."""

from __future__ import annotations

import contextlib
import shlex
import signal
import sys
import threading
import time
import traceback
from pathlib import Path
from typing import Iterable

import numpy as np
import pandas as pd
import torch

from core import __version__
from core.cores import usable_cores
from core.errors import UserError
from core.runs import RunWriter, new_run_dir, read_json, stop_requested
from core.training.callbacks import Callbacks, Stopped, emit
from core.training.checkpoint import resume_points
from core.training.config import TrainConfig
from core.training.data import (
    FILES,
    TrainData,
    dataset_files,
    describe_changes,
    health_groups,
    load_images,
    make_splits,
    old_age_labels,
    scan_labelled,
)
from core.training.distributed import SINGLE, Dist, barrier, broadcast, from_env, setup, teardown
from core.training.resolve import RunSettings, resolve_config, resolve_run
from core.training.tensorboard import tensorboard_callbacks
from core.training.trainer import Trainer

# ----------------------------------------------------------------------------- entry point

class _StopSwitch:
    """Where a stop request (STOP file or SIGTERM) goes: before the trainer exists it aborts
    image preparation at once; afterwards the trainer stops after its current batch."""

    def __init__(self, run_dir: Path, dist: Dist = SINGLE):
        self.run_dir, self.dist = run_dir, dist
        self.trainer: Trainer | None = None

    def request(self, *_signal) -> None:
        if self.dist.active:  # torchrun's SIGTERM: a peer ended or the launcher was interrupted
            raise RuntimeError("stopped by torchrun (SIGTERM): another process of the run ended, or the "
                               "launcher was interrupted")
        if self.trainer is None:
            raise Stopped()
        self.trainer.stop_flag = True

    def check(self) -> None:
        """Called while preparing images: honour the app's STOP file there too."""
        if self.trainer is None and stop_requested(self.run_dir):
            raise Stopped()


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


def _set_threads(device: torch.device, dist: Dist) -> None:
    if device.type == "cpu":
        torch.set_num_threads(max(1, usable_cores() // dist.local_world))  # the processes on this machine share it
        torch.use_deterministic_algorithms(True, warn_only=True)
    else:
        torch.backends.cudnn.benchmark = True


def _failure(exc: BaseException, dist: Dist, run_dir: Path) -> str:
    """status.json's message for a failed run; under torchrun it says the whole run stopped."""
    text = f"{exc.__class__.__name__}: {exc}"
    if not dist.active:
        return text
    return (f"distributed run stopped (rank {dist.rank} of {dist.world}): {text}. When a process crashes or is "
            "killed, every other one stops too (see the console for the first error); continue with: "
            f"python -m core train --resume {shlex.quote(str(run_dir))}")


def _check_resume(run_dir: Path, files: pd.DataFrame, dist: Dist = SINGLE) -> None:
    """Refuse to resume on other data than the run started with (or another person split), or
    with another number of processes (each one's batches depend on the count)."""
    world = int(read_json(run_dir / "config.json").get("world_size", 1))
    if world != dist.world:
        raise UserError(f"{run_dir}: cannot resume: the run was trained by {world} process(es) and this is "
                        f"{dist.world}; resume with the same count: python -m core train --resume {run_dir} "
                        f"--nproc {world}")
    before = run_dir / FILES
    if not before.is_file():
        return  # a run from before this check was recorded
    change = describe_changes(pd.read_csv(before, keep_default_na=False), files)
    if change:
        raise UserError(f"{run_dir}: cannot resume: the dataset changed since the run started: {change}; "
                        "restore it, or start a new run")


def train(config: TrainConfig, callbacks: Iterable[Callbacks] = ()) -> Path:
    """Train as ``config`` says; return the run directory (see core.runs for its files).

    The config is resolved once, up front (core.training.resolve); the trainer then only
    reads the frozen settings. Started by torchrun (core.training.distributed), each process
    trains its share of every batch with DistributedDataParallel; only rank 0 writes, and
    only rank 0's callbacks hear.
    """
    dist = from_env()
    cfg, device, why = resolve_config(config)
    device = setup(dist, device, cfg.dist_timeout)
    try:
        ds, df = scan_labelled(cfg.data, cfg.corrections, cfg.leave_out)
        settings = resolve_run(cfg, device, why, ds.layout, list(ds.class_names), dist.world if dist.active else 1)
        return _train(settings, ds, df, dist, list(callbacks) if dist.main else [])
    finally:
        teardown(dist)


def _train(settings: RunSettings, ds, df: pd.DataFrame, dist: Dist, callbacks: list) -> Path:
    cfg, device = settings.config, settings.device
    together = health_groups(cfg.health, df, ds.root)  # None without --health: the split is the usual one
    splits = make_splits(df, cfg.folds, cfg.val_ratio, cfg.seed, together)
    files = dataset_files(df, splits)
    if cfg.resume:
        _check_resume(Path(cfg.resume), files, dist)
    lasts = resume_points(Path(cfg.resume), cfg.folds) if cfg.resume else {}
    run_dir = Path(cfg.resume) if cfg.resume else Path(broadcast(dist, str(new_run_dir(cfg.out, cfg.model))
                                                                 if dist.main else None))
    # Only rank 0 writes, except that with folds in parallel each process writes its own folds'
    # checkpoints and metrics lines; status.json has one writer always.
    writer = RunWriter(run_dir, enabled=dist.main or settings.parallel_folds, writes_status=dist.main)
    switch = _StopSwitch(run_dir, dist)
    callbacks = [*callbacks, *tensorboard_callbacks(cfg, writer)]  # --tensorboard: RUN/tb (rank 0 only)
    try:
        with _sigterm_to(switch):
            writer.status(state="running", message="preparing images", force=True, fold=0, epoch=0, epochs=cfg.epochs,
                          batch=0, n_batches=0, eta_s=None, started=time.time())
            if dist.main and not cfg.resume:  # (the others pass rank 0 only after the cache barrier)
                _write_config(writer, settings, ds, df, splits, together)
                writer.write_csv(FILES, files)
            elif dist.main:
                writer.rewrite_metrics([r for fold in sorted(lasts) for r in lasts[fold]["state"]["history"]])
                (run_dir / "STOP").unlink(missing_ok=True)
            _set_threads(device, dist)
            log = lambda text: (writer.log(text), emit(callbacks, "on_message", text))  # noqa: E731
            log(f"resuming {run_dir}" if cfg.resume else f"run {run_dir}: {len(df)} images, device {device}")
            if note := ds.problems_note():
                log(note)
            if settings.defaults_note:
                log(f"defaults for this device: {cfg.model}, {cfg.epochs} epochs, batch {cfg.batch_size}, "
                    f"lr {cfg.lr:g} ({settings.defaults_note})")
            log(settings.weights_note)
            summary = _fit(settings, ds, df, splits, lasts, writer, callbacks, switch, log, dist)
    except Stopped:
        return _stopped(run_dir, writer, callbacks)
    except KeyboardInterrupt:
        writer.status(state="stopped", message="interrupted", force=True)
        raise
    except BaseException as exc:
        writer.status(state="failed", message=_failure(exc, dist, run_dir), force=True)
        writer.log("failed:\n" + "".join(traceback.format_exception(exc)))
        raise
    if dist.main:
        writer.status(state="done", message=f"done: {summary['scope']} macro F1 {summary['macro_f1']:.4f}",
                      eta_s=0, result=summary, force=True)
        emit(callbacks, "on_train_end", {"state": "done", "run_dir": str(run_dir), **summary})
    return run_dir


def _fit(settings: RunSettings, ds, df, splits, lasts, writer, callbacks, switch, log, dist) -> dict:
    """Prepare the images, then train every fold; the summary of the run."""
    cfg = settings.config
    if not dist.main:
        barrier(dist)  # rank 0 builds the image cache first; the others then map the same file
    images = load_images(df, settings.recipe, cfg.workers, log,
                         lambda d, t: (switch.check(), emit(callbacks, "on_cache_progress", d, t),
                                       writer.status(message=f"preparing images {d}/{t}")))
    if dist.main:
        barrier(dist)
    switch.check()
    data = TrainData(df, images, df["label"].to_numpy(np.int64), list(ds.class_names),
                     old_age_labels(df, ds.class_names, cfg.old_age, log))
    trainer = Trainer(settings, data, writer, callbacks, dist)
    emit(callbacks, "on_train_start", {"run_dir": str(writer.dir), "folds": len(splits), "epochs": cfg.epochs,
                                       "train_images": [len(t) for t, _ in splits],
                                       "val_images": [len(v) for _, v in splits]})
    switch.trainer = trainer
    return trainer.run(splits, lasts)


def _stopped(run_dir: Path, writer: RunWriter, callbacks: list) -> Path:
    if any(run_dir.glob("**/last.pt")):
        message = "stopped; continue with: python -m core train --resume " + shlex.quote(str(run_dir))
    else:
        message = "stopped before the first epoch ended; nothing to resume, start a new run"
    writer.status(state="stopped", message=message, force=True)
    writer.log("stopped on request")
    emit(callbacks, "on_train_end", {"state": "stopped", "run_dir": str(run_dir)})
    return run_dir


def _write_config(writer: RunWriter, settings: RunSettings, ds, df: pd.DataFrame, splits,
                  together: dict[str, str] | None = None) -> None:
    recipe = settings.recipe
    writer.write_json("recipe.json", recipe.to_dict())
    counts = df.groupby("label").size()
    dataset = {**ds.summary(), "labelled_images": int(len(df)),
               "class_counts": {ds.class_names[int(k)]: int(v) for k, v in counts.items()},
               "split": [{"train": int(len(t)), "val": int(len(v))} for t, v in splits]}
    if settings.config.health:  # the persons a health check kept in one fold (core.health.fold_groups)
        dataset["health"] = {"file": settings.config.health, "groups": len(set((together or {}).values())),
                             "persons": len(together or {})}
    if settings.config.leave_out:
        dataset["left_out"] = {"file": settings.config.leave_out, "images": ds.left_out}
    writer.write_json("config.json", {
        "config": settings.config_dict(), "recipe": recipe.to_dict(), "dataset": dataset,
        "class_names": list(ds.class_names), "num_classes": len(ds.class_names), "head": settings.head,
        "command": settings.command(writer.dir / "recipe.json"), "created": time.strftime("%Y-%m-%d %H:%M:%S"),
        "version": __version__, "torch": torch.__version__, "python": sys.version.split()[0],
        "world_size": settings.config.nproc})
