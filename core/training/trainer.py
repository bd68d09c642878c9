"""The Trainer: runs the folds of one config into one run directory (one FoldRun per fold)."""

from __future__ import annotations

import contextlib
import dataclasses
import math
import time
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch
import torch.nn as nn
from torch.nn.parallel import DistributedDataParallel as DDP

from core import __version__
from core.inference import predict_logits
from core.losses import build_loss
from core.metrics import classification_metrics, confusion_table, per_class_report
from core.mixing import MixedLoss
from core.models import build_model
from core.runs import RunWriter, fold_dirs, load_checkpoint, stop_requested
from core.sampling import oversample, smote_features
from core.training.batches import BatchSource, ImageStore, epoch_batches
from core.training.callbacks import Callbacks, Stopped, emit
from core.training.checkpoint import FoldState, rng_state, seed_everything, set_rng_state
from core.training.data import TrainData
from core.training.distributed import SINGLE, Dist, any_rank, barrier, deal, gather_rows
from core.training.optim import WeightEMA, ema_decay, make_optimizer, make_scheduler, train_steps
from core.training.resolve import RunSettings

# On a GPU, at most ten progress callbacks a second: each reads the loss, which makes the host
# wait for the device. On the CPU every batch reports (reading a loss costs nothing there).
PROGRESS_EVERY_S = 0.1
STOP_EVERY = 20  # under torchrun, optimiser steps between the ranks' agreeing on a stop (one all-reduce)


class Ticker:
    """True at most once per ``every`` seconds, and always for the last call."""

    def __init__(self, every: float):
        self.every, self.last = every, -math.inf

    def __call__(self, last: bool = False) -> bool:
        now = time.monotonic()
        if last or now - self.last >= self.every:
            self.last = now
            return True
        return False


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
    step_model: nn.Module | None = None  # what the train step calls: torch.compile(model) with --compile

    def __post_init__(self):
        if self.step_model is None:
            self.step_model = self.model

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
    """Runs the folds of one run's settings into one run directory. It only reads the
    settings, which were resolved before it was made (core.training.resolve)."""

    def __init__(self, settings: RunSettings, data: TrainData, writer: RunWriter, callbacks: list[Callbacks],
                 dist: Dist = SINGLE):
        self.settings = settings
        self.cfg, self.recipe, self.device = settings.config, settings.recipe, settings.device
        self.data, self.writer, self.callbacks, self.dist = data, writer, callbacks, dist
        # --parallel-folds under torchrun: each process trains whole folds on its own (no DDP),
        # so everything inside a fold runs as in a single process.
        self.parallel = settings.parallel_folds
        self.tdist = SINGLE if self.parallel else dist
        self.stop_flag = False
        self._stop_asks = 0
        self.num_classes = len(data.class_names)
        # Where batches are gathered from: on a GPU the cache moves there once (ImageStore).
        self.store = ImageStore.place(data.images, self.device, self.cfg.device_cache)
        self.head = settings.head
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

    def should_stop(self, now: bool = False) -> bool:
        """A Stop button (STOP file) or SIGTERM. Under torchrun the ranks agree: every
        STOP_EVERY-th ask (and every ``now`` ask) is one all-reduce, so all stop at one step."""
        local = self.stop_flag or stop_requested(self.writer.dir)
        if not self.tdist.active:
            return local
        self._stop_asks += 1
        if not now and self._stop_asks % STOP_EVERY:
            return False
        return any_rank(self.tdist, local, self.device)

    # --- pieces ------------------------------------------------------------------------
    def _autocast(self):
        if self.device.type == "cuda" and self.cfg.amp:
            dtype = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
            return lambda: torch.autocast("cuda", dtype=dtype)
        return contextlib.nullcontext

    def _batch_source(self, train_rows: np.ndarray) -> BatchSource:
        """The training samples of one split: the rows, plus oversampled ones per the recipe."""
        s = self.recipe.sampling
        labels = self.data.train_labels[train_rows]  # --old-age may relabel them; validation keeps the truth
        features = None
        if s.method == "smote":
            features = smote_features(self.data.images[train_rows], s.smote_size)
        plan = oversample(labels, s.method, s.target, s.k_neighbors, features, seed=self.cfg.seed)
        for note in plan.notes:
            self.message(f"oversampling: {note}")
        if s.method != "none":
            self.message(f"oversampling ({s.method}): {len(labels)} -> {len(plan)} training samples")
        return BatchSource(self.store, train_rows[plan.a], train_rows[plan.b], plan.gap,
                           plan.labels.astype(np.int64), self.recipe.augment, self.cfg.seed, self.device,
                           self.cfg.channels_last, self.tdist.rank if self.tdist.world > 1 else None,
                           plan.weights, self.cfg.mix, self.cfg.mix_prob, self.cfg.mix_alpha)

    def evaluate(self, model: nn.Module, rows: np.ndarray, criterion: nn.Module,
                 tta: bool = False) -> tuple[dict, np.ndarray]:
        """Validation metrics and logits, under eval() + inference_mode (no augmentation).

        ``tta`` averages in the mirrored images as predict does; the final report uses it, the
        per-epoch validation skips it (half the cost).
        """
        mine = deal(len(rows), self.tdist)  # this rank's share of the rows (all of them in one process)
        logits = predict_logits(model, self.store, rows[mine], max(64, self.cfg.batch_size * 2), self.device,
                                self.cfg.channels_last, self._autocast(), tta=tta)
        if self.tdist.active:  # every rank gets every row's logits, in row order: metrics over all rows
            logits = gather_rows(self.tdist, len(rows), mine, torch.from_numpy(logits).to(self.device)).cpu().numpy()
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
        model, _ = build_model(cfg.model, self.num_classes, "none" if last else self.settings.weights, self.head)
        sub = fold_dirs(cfg.folds)[fold]
        if last:  # (where fresh weights come from is logged once, at the run's start)
            self.message(f"{cfg.model}: resuming from {sub or '.'}/last.pt")
        model = model.to(self.device, memory_format=torch.channels_last if cfg.channels_last else torch.contiguous_format)
        source = self._batch_source(train_rows)
        n_batches = len(epoch_batches(len(source), cfg.batch_size, cfg.seed, fold, 0, self.tdist, source.weights))
        steps_per_epoch = math.ceil(n_batches / cfg.accum_steps)
        optimizer = make_optimizer(cfg.optimizer, model.parameters(), cfg.lr, cfg.weight_decay)
        scheduler, per_step = make_scheduler(cfg.scheduler, optimizer, cfg.epochs, steps_per_epoch, cfg.warmup_epochs)
        scaler = torch.amp.GradScaler("cuda") if (self.device.type == "cuda" and cfg.amp
                                                  and not torch.cuda.is_bf16_supported()) else None
        ema = WeightEMA(model, ema_decay(cfg.ema_epochs, steps_per_epoch)) if cfg.ema_epochs > 0 else None
        run = FoldRun(fold, sub, model, ema, optimizer, scheduler, per_step, scaler,
                      MixedLoss(build_loss(cfg.loss, self.num_classes, cfg.focal_gamma, cfg.smoothing)), source, n_batches,
                      FoldState(fold=fold))
        if last:
            run.restore(last)
        else:
            seed_everything(cfg.seed + fold)
        run.step_model = self._step_model(model)
        return run

    def _step_model(self, model: nn.Module) -> nn.Module:
        """What the train step calls: the model, wrapped in DDP under torchrun (after any
        restore: DDP starts every rank from rank 0's weights), compiled with --compile."""
        if self.tdist.active:
            model = DDP(model, device_ids=[self.device.index] if self.device.type == "cuda" else None)
        return torch.compile(model) if self.cfg.compile else model

    def fit_fold(self, fold: int, train_rows: np.ndarray, val_rows: np.ndarray, last: dict | None) -> None:
        run = self._new_fold(fold, train_rows, last)
        self._expect(fold, run.state, run.n_batches)
        for epoch in range(run.state.epoch, self.cfg.epochs):
            self._run_epoch(run, epoch)
            self._end_epoch(run, epoch, val_rows)
            if epoch + 1 < self.cfg.epochs and self.should_stop(now=True):
                raise Stopped()

    def _end_epoch(self, run: FoldRun, epoch: int, val_rows: np.ndarray) -> None:
        """Validate, record, keep the best checkpoint, step epoch-level schedules, save last.pt."""
        cfg, state = self.cfg, run.state
        metrics, logits = self.evaluate(run.evaluated, val_rows, run.criterion)
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
        self.emit("on_val_predictions", record, self.data.labels[val_rows], logits.argmax(1))
        self.message(f"fold {run.fold} epoch {epoch + 1}/{cfg.epochs}: train loss {record['train_loss']:.4f}, "
                     f"val loss {metrics['val_loss']:.4f}, accuracy {metrics['accuracy']:.4f}, "
                     f"macro F1 {metrics['macro_f1']:.4f}")

    def _save_last(self, run: FoldRun) -> None:
        self.writer.save_checkpoint(f"{run.sub}/last.pt".lstrip("/"),
                                    {**self._meta(), "kind": "last", **run.resume_state()})

    def _run_epoch(self, run: FoldRun, epoch: int) -> None:
        cfg, state, n_batches = self.cfg, run.state, run.n_batches
        order = epoch_batches(len(run.source), cfg.batch_size, cfg.seed, run.fold, epoch, self.tdist,
                              run.source.weights)
        self.emit("on_epoch_start", run.fold, epoch, n_batches)
        self.writer.status(state="running", fold=run.fold, epoch=epoch + 1, epochs=cfg.epochs, batch=state.next_batch,
                           n_batches=n_batches, message=f"training epoch {epoch + 1}", force=True)

        # The loss sum stays on the device (float64, so it equals a Python float sum): reading a
        # loss forces the host to wait for the GPU, so it is read only at a progress tick.
        total = torch.tensor(state.loss_sum, dtype=torch.float64, device=self.device)
        tick = Ticker(PROGRESS_EVERY_S if self.device.type == "cuda" else 0.0)  # on a CPU reading is free

        def after_batch(b: int, loss: torch.Tensor, n: int) -> None:
            total.add_(loss.double() * n)
            state.seen += n
            self._done_batches += 1
            if tick(last=b + 1 == n_batches):
                value = float(loss)
                self.emit("on_batch_end", epoch, b, n_batches, value)
                self.writer.status(batch=b + 1, eta_s=round(self._eta(), 1), loss=value)

        batches = run.source.stream(order, run.fold, epoch, state.next_batch)
        try:
            state.next_batch = train_steps(
                run.step_model, batches, run.criterion, run.optimizer, cfg.accum_steps, n_batches, state.next_batch,
                autocast=self._autocast(), scaler=run.scaler, after_step=run.after_step, after_batch=after_batch,
                should_stop=self.should_stop)
        finally:
            batches.close()
            state.loss_sum = float(total)
        if state.next_batch < n_batches:
            self._save_last(run)
            raise Stopped()

    def _meta(self) -> dict:
        return {"model_name": self.cfg.model, "num_classes": self.num_classes, "head": self.head,
                "class_names": list(self.data.class_names), "recipe": self.recipe.to_dict(),
                "config": self.settings.config_dict(), "version": __version__}

    # --- all folds ---------------------------------------------------------------------
    def run(self, splits: list[tuple[np.ndarray, np.ndarray]], lasts: dict[int, dict]) -> dict:
        self.n_models = len(splits)
        for fold, (tr, va) in enumerate(splits):
            if self.parallel and fold % self.dist.world != self.dist.rank:
                continue  # another process trains this fold
            last = lasts.get(fold)
            if last and last["state"]["epoch"] >= self.cfg.epochs:
                continue  # this fold finished before the interruption
            self.fit_fold(fold, tr, va, last)
        return self.finish(splits)

    def finish(self, splits) -> dict:
        """Out-of-fold (or validation) predictions of the best checkpoints and their reports."""
        barrier(self.dist)  # rank 0 (or, with folds in parallel, each fold's process) wrote best.pt
        if self.parallel and not self.dist.main:
            return {}  # rank 0 scores every fold's best model
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
                   **({"task_f1": metrics["task_f1"]} if "task_f1" in metrics else {}),  # competition classes only
                   "scope": "out-of-fold" if self.cfg.folds >= 2 else "validation",
                   "images": int(len(table)), "best_epochs": best_epochs,
                   "train_seconds": round(time.monotonic() - self._t0, 1)}
        self.writer.write_json("summary.json", summary)
        return summary


def prediction_table(data: TrainData, rows: np.ndarray, logits: np.ndarray, fold: int | None) -> pd.DataFrame:
    """path, true, pred, prob_true, loss (cross-entropy of the true class), then p0..p{C-1}
    (every class's probability: what label-issue finders and ensembles need) for ``rows``."""
    y = data.labels[rows]
    logp = torch.log_softmax(torch.from_numpy(logits).float(), dim=1).numpy()
    table = pd.DataFrame({"row": rows, "path": data.df["path"].to_numpy()[rows], "true": y,
                          "pred": logits.argmax(1), "prob_true": np.exp(logp[np.arange(len(y)), y]),
                          "loss": -logp[np.arange(len(y)), y]})
    if fold is not None:
        table["fold"] = fold
    probs = pd.DataFrame(np.exp(logp).round(6), columns=[f"p{c}" for c in range(logp.shape[1])])
    return pd.concat([table, probs], axis=1)
