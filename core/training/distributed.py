"""Several processes, one model: PyTorch's own torchrun + DistributedDataParallel.

``torchrun --nproc_per_node N -m core train ...`` (or ``python -m core train --nproc N``,
which starts torchrun) runs N copies of the trainer. torchrun sets RANK, WORLD_SIZE and
LOCAL_RANK; :func:`setup` joins the process group (NCCL on GPUs, gloo on the CPU) with a
timeout, so a lost peer ends the run instead of hanging it.

The rules the trainer follows (see core.training.trainer and .run):

- rank 0 builds the image cache while the others wait at a barrier, then all map it;
- every epoch's seeded order is padded to a multiple of the world size and dealt out, so
  each rank gets an equal shard, reshuffled each epoch (the ``set_epoch`` rule);
- the batch size is per rank: one optimiser step sees ranks x batch x accumulation images;
- validation rows are dealt out the same way, and the logits of every rank are gathered with
  their row positions, so metrics are computed once over all rows, none counted twice;
- only rank 0 writes the run directory.
"""

from __future__ import annotations

import datetime
import os
from dataclasses import dataclass

import numpy as np
import torch
import torch.distributed as td

DEFAULT_TIMEOUT_S = 1800  # a collective that waits longer than this means a peer is gone


@dataclass(frozen=True)
class Dist:
    """This process's place in the run; a single process is rank 0 of 1, not active."""

    rank: int = 0
    world: int = 1
    local_rank: int = 0
    local_world: int = 1
    active: bool = False  # a process group is initialised (started by torchrun, even with 1 process)

    @property
    def main(self) -> bool:
        return self.rank == 0


SINGLE = Dist()


def from_env() -> Dist:
    """The torchrun variables of this process, or :data:`SINGLE` when it was not started by torchrun."""
    if "RANK" not in os.environ or "WORLD_SIZE" not in os.environ:
        return SINGLE
    world = int(os.environ["WORLD_SIZE"])
    return Dist(int(os.environ["RANK"]), world, int(os.environ.get("LOCAL_RANK", 0)),
                int(os.environ.get("LOCAL_WORLD_SIZE", world)), True)


def setup(dist: Dist, device: torch.device, timeout_s: float) -> torch.device:
    """Join the process group; the device this rank trains on (cuda:LOCAL_RANK on GPUs)."""
    if not dist.active:
        return device
    if device.type == "cuda":
        device = torch.device("cuda", dist.local_rank)
        torch.cuda.set_device(device)
    if not td.is_initialized():
        td.init_process_group("nccl" if device.type == "cuda" else "gloo",
                              timeout=datetime.timedelta(seconds=timeout_s),
                              device_id=device if device.type == "cuda" else None)
    return device


def teardown(dist: Dist) -> None:
    if dist.active and td.is_initialized():
        td.destroy_process_group()


def barrier(dist: Dist) -> None:
    if dist.active:
        td.barrier()


def broadcast(dist: Dist, value):
    """Rank 0's ``value`` on every rank (any picklable object)."""
    if not dist.active:
        return value
    box = [value]
    td.broadcast_object_list(box, src=0)
    return box[0]


def any_rank(dist: Dist, flag: bool, device: torch.device) -> bool:
    """True on every rank when ``flag`` is true on any (a stop asked of one rank stops all)."""
    if not dist.active:
        return flag
    t = torch.tensor([1 if flag else 0], device=device)
    td.all_reduce(t, op=td.ReduceOp.MAX)
    return bool(t.item())


def deal(n: int, dist: Dist, order: np.ndarray | None = None) -> np.ndarray:
    """This rank's positions of ``order`` (default 0..n-1), padded by repeating its start to a
    multiple of the world size so every rank gets the same count (DistributedSampler's rule)."""
    order = np.arange(n) if order is None else np.asarray(order)
    if dist.world == 1:
        return order
    total = -(-n // dist.world) * dist.world
    padded = np.concatenate([order, order[:total - n]]) if total > n else order
    return padded[dist.rank::dist.world]


def gather_rows(dist: Dist, n: int, positions: np.ndarray, values: torch.Tensor) -> torch.Tensor:
    """All ranks' ``values`` (one row per entry of its ``positions`` into 0..n-1), put back in
    position order: (n, ...) on every rank. Padding rows land on a position already filled by
    the same row, so no row is counted twice."""
    if not dist.active or dist.world == 1:
        out = torch.empty((n, *values.shape[1:]), dtype=values.dtype, device=values.device)
        out[torch.as_tensor(positions, device=values.device)] = values
        return out
    pos = torch.as_tensor(np.asarray(positions, np.int64), device=values.device)
    all_pos = [torch.empty_like(pos) for _ in range(dist.world)]
    all_val = [torch.empty_like(values) for _ in range(dist.world)]
    td.all_gather(all_pos, pos)
    td.all_gather(all_val, values.contiguous())
    out = torch.empty((n, *values.shape[1:]), dtype=values.dtype, device=values.device)
    for p, v in zip(all_pos, all_val):
        out[p] = v
    return out
