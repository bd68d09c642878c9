"""Optimisers, learning-rate schedules, the accumulating train step and the weight EMA."""

from __future__ import annotations

import contextlib
import copy
import math
from typing import Callable, Iterable

import torch
import torch.nn as nn

from core.rulebook import OPTIMIZER, SCHEDULER

# ----------------------------------------------------------------------------- optimisation

def make_optimizer(name: str, params, lr: float, weight_decay: float) -> torch.optim.Optimizer:
    OPTIMIZER.check(name, "--optimizer")
    if name == "sgd":
        return torch.optim.SGD(params, lr=lr, momentum=0.9, weight_decay=weight_decay)
    if name == "adam":
        return torch.optim.Adam(params, lr=lr, weight_decay=weight_decay)
    return torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay)


def make_scheduler(name: str, optimizer, epochs: int, steps_per_epoch: int, warmup_epochs: float):
    """(scheduler, per_step). per_step schedulers advance after each optimiser step, the
    others after each epoch (plateau with the validation macro F1)."""
    SCHEDULER.check(name, "--scheduler")
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


def _sync_unless(model: nn.Module, skip: bool):
    """``model.no_sync()`` when ``skip`` and the model is DDP-wrapped (also under torch.compile)."""
    ddp = getattr(model, "_orig_mod", model)
    return ddp.no_sync() if skip and hasattr(ddp, "no_sync") else contextlib.nullcontext()


def train_steps(model: nn.Module, batches: Iterable[tuple[torch.Tensor, torch.Tensor]], criterion: nn.Module,
                optimizer: torch.optim.Optimizer, accum_steps: int, n_batches: int, start: int = 0, *,
                autocast=contextlib.nullcontext, scaler=None,
                after_step: Callable[[], None] | None = None,
                after_batch: Callable[[int, torch.Tensor, int], None] | None = None,
                should_stop: Callable[[], bool] | None = None) -> int:
    """Train on ``batches`` (batch ``start`` .. ``n_batches - 1`` of an epoch); return the next index.

    Gradients accumulate over groups of ``accum_steps`` batches: each loss is divided by its
    group's size and the optimiser steps once per group, the last (remainder) group included,
    so a group's step equals one step on the concatenated batch (for equal batch sizes).
    ``should_stop`` is asked after each optimiser step; when it says yes, training stops there.
    Under DistributedDataParallel the batches that do not end a group skip the gradient
    all-reduce (``no_sync``): the gradients accumulate locally and are averaged once, at the
    group's last backward.
    """
    model.train()
    optimizer.zero_grad(set_to_none=True)
    next_batch = start
    for b, (x, y) in enumerate(batches, start):
        next_batch = b + 1
        group_start = (b // accum_steps) * accum_steps
        group_size = min(accum_steps, n_batches - group_start)
        end_of_group = b + 1 == group_start + group_size
        with _sync_unless(model, not end_of_group):
            with autocast():
                loss = criterion(model(x), y)
            scaled = loss / group_size
            (scaler.scale(scaled) if scaler else scaled).backward()
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
            after_batch(b, loss.detach(), len(y))  # a tensor: reading it would wait for the device
        if end_of_group and should_stop and next_batch < n_batches and should_stop():
            break
    return next_batch


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
        self._floats: tuple[list, list] = ([], [])  # (averaged, live) floating-point tensors
        self._others: tuple[list, list] = ([], [])  # integer buffers (num_batches_tracked): copied
        self._source: nn.Module | None = None

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        self.updates += 1
        d = min(self.decay, (1 + self.updates) / (10 + self.updates))
        if model is not self._source:  # state_dict() walks every module: once per model, not per step
            # (its tensors share storage with the weights, which training updates in place)
            pairs = list(zip(self.model.state_dict().values(), model.state_dict().values()))
            self._floats = ([a for a, _ in pairs if a.is_floating_point()], [n for a, n in pairs if a.is_floating_point()])
            self._others = ([a for a, _ in pairs if not a.is_floating_point()],
                            [n for a, n in pairs if not a.is_floating_point()])
            self._source = model
        # One fused kernel per list on a GPU (torch._foreach_*), not one launch per tensor.
        if self._floats[0]:
            torch._foreach_lerp_(self._floats[0], self._floats[1], 1 - d)
        if self._others[0]:
            torch._foreach_copy_(self._others[0], self._others[1])

    def state_dict(self) -> dict:
        return {"model": self.model.state_dict(), "updates": self.updates}

    def load_state_dict(self, state: dict) -> None:
        self.model.load_state_dict(state["model"])
        self.updates = int(state["updates"])
