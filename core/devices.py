"""Which torch device a command runs on: one rule for train and predict."""

from __future__ import annotations

import torch

from core.errors import UserError
from core.rulebook import DEVICE

DEVICES = DEVICE.values


def resolve_device(name: str) -> torch.device:
    """auto: cuda when available, else cpu. UserError for an unknown name or a missing GPU."""
    if name not in DEVICES:
        raise UserError(f"--device {name!r} is not allowed; choose one of: {', '.join(DEVICES)}")
    if name == "cuda" and not torch.cuda.is_available():
        raise UserError("--device cuda: no CUDA device is available here; use --device cpu or auto")
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)
