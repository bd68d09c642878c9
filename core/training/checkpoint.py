"""What a resume point holds besides the weights: RNG states and where a fold stands."""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from core.errors import UserError
from core.runs import fold_dirs, load_checkpoint

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


def resume_points(run: Path, folds: int) -> dict[int, dict]:
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
