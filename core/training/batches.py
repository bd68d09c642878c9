"""The data path: seeded epoch orders and training batches gathered from the uint8 cache."""

from __future__ import annotations

import math
import queue
import threading
import warnings
from dataclasses import dataclass
from typing import Iterator

import numpy as np
import torch

from core.augment import augment_batch, normalize, to_float
from core.mixing import mix_batch
from core.recipe import Augment
from core.training.distributed import SINGLE, Dist, deal

# ----------------------------------------------------------------------------- batches

def _batch_seed(*parts: int) -> int:
    return int(np.random.SeedSequence([int(p) for p in parts]).generate_state(1, np.uint64)[0] >> 1)


def epoch_batches(n: int, batch_size: int, seed: int, fold: int, epoch: int, dist: Dist = SINGLE,
                  weights: np.ndarray | None = None) -> list[np.ndarray]:
    """Shuffled positions 0..n-1 cut into ceil(n / batch_size) near-equal batches (this rank's share).

    Near-equal sizes use every sample each epoch without a 1-image batch (which batch norm
    cannot train on); no batch is larger than ``batch_size``. Under torchrun the epoch's order
    is dealt out to the ranks first (core.training.distributed.deal): equal shards, new each epoch.
    """
    rng = np.random.default_rng(_batch_seed(seed, fold, epoch))
    # weighted sampling (core.sampling.weighted_plan): n draws with replacement, by weight
    order = rng.permutation(n) if weights is None else rng.choice(n, size=n, replace=True, p=weights)
    order = deal(n, dist, order)
    return np.array_split(order, max(1, math.ceil(len(order) / batch_size)))


PLACES = ("host", "pinned", "device")


class ImageStore:
    """The uint8 image cache, where the batches are gathered from.

    - ``host``: the memory-mapped numpy array; rows are copied out per batch (the CPU path).
    - ``device``: one copy on the accelerator, made once; a batch is an ``index_select``
      there, so no pixel crosses the bus during training.
    - ``pinned``: one page-locked copy in host memory, for a cache too large for the device;
      each batch crosses the bus as uint8 (4x fewer bytes than float) without blocking.

    :meth:`place` picks one for a device. ``rows`` returns uint8 (n, H, W, 3) on the device.
    """

    def __init__(self, images: np.ndarray, device: torch.device, where: str = "host"):
        if where not in PLACES:
            raise ValueError(f"where={where!r}; choose one of {PLACES}")
        self.images, self.device, self.where = images, torch.device(device), where
        self.tensor: torch.Tensor | None = None
        if where != "host":
            with warnings.catch_warnings():  # a read-only memory map: copied below, or only ever read
                warnings.simplefilter("ignore", UserWarning)
                tensor = torch.from_numpy(np.ascontiguousarray(images))
            self.tensor = tensor.pin_memory() if where == "pinned" else tensor.to(self.device)

    @classmethod
    def place(cls, images: np.ndarray, device: torch.device, share: float) -> ImageStore:
        """On CUDA: on the device when the cache takes at most ``share`` of its free memory,
        else pinned host memory (host if pinning fails); elsewhere the host array as it is."""
        if device.type != "cuda":
            return cls(images, device)
        free, _total = torch.cuda.mem_get_info(device)
        if share > 0 and images.nbytes <= share * free:
            return cls(images, device, "device")
        try:
            return cls(images, device, "pinned")
        except RuntimeError:  # page-locked memory refused (limits): copy per batch instead
            return cls(images, device)

    def __len__(self) -> int:
        return len(self.images)

    @property
    def nbytes(self) -> int:
        return int(self.images.nbytes)

    def rows(self, idx: np.ndarray) -> torch.Tensor:
        """uint8 (len(idx), H, W, 3) of those cache rows, on :attr:`device`."""
        if self.where == "device":
            return self.tensor.index_select(0, torch.from_numpy(np.asarray(idx, np.int64)).to(self.device))
        if self.where == "pinned":
            out = torch.empty((len(idx), *self.tensor.shape[1:]), dtype=torch.uint8, pin_memory=True)
            torch.index_select(self.tensor, 0, torch.from_numpy(np.asarray(idx, np.int64)), out=out)
            return out.to(self.device, non_blocking=True)
        x = torch.from_numpy(np.ascontiguousarray(self.images[idx]))
        if self.device.type == "cuda":  # page-locked, so the copy overlaps the previous step
            x = x.pin_memory()
        return x.to(self.device, non_blocking=True)


def as_store(images: np.ndarray | ImageStore, device: torch.device = torch.device("cpu")) -> ImageStore:
    return images if isinstance(images, ImageStore) else ImageStore(images, device)


def gather(images: np.ndarray | ImageStore, a: np.ndarray, b: np.ndarray, gap: np.ndarray) -> torch.Tensor:
    """Float (N, 3, H, W) in [0, 1] of rows a, moved ``gap`` of the way towards rows b (SMOTE),
    on the store's device."""
    store = as_store(images)
    x = to_float(store.rows(a))
    mix = np.flatnonzero(gap > 0)
    if len(mix):
        xb = to_float(store.rows(b[mix]))
        g = torch.from_numpy(gap[mix]).float().view(-1, 1, 1, 1).to(x.device)
        at = torch.from_numpy(mix).to(x.device)
        x[at] = x[at] + g * (xb - x[at])
    return x


@dataclass
class BatchSource:
    """Training batches from the uint8 cache: gather (and SMOTE-mix), augment, normalise.

    Sample i is ``images[a[i]] + gap[i] * (images[b[i]] - images[a[i]])`` (core.sampling).
    All of it runs where the store's rows land: on the GPU when the cache lives there.
    Each batch's random parameters come from its own CPU generator seeded by (seed, fold,
    epoch, batch), so a batch is the same whether it is made in order, ahead of time or after
    a resume, on any device. Per-pixel noise (erasing fill, Gaussian noise) is drawn on the
    device itself on CUDA (from a generator seeded the same way), so those pixels are not
    made on the CPU and copied; on the CPU the one generator draws everything.
    """

    images: np.ndarray | ImageStore  # (N, H, W, 3) uint8 cache, or a store of it
    a: np.ndarray  # cache row of each sample's first parent
    b: np.ndarray  # cache row of its second parent (== a unless SMOTE)
    gap: np.ndarray  # interpolation weight towards b
    labels: np.ndarray  # int64 class of each sample
    augment: Augment
    seed: int = 0
    device: torch.device = torch.device("cpu")
    channels_last: bool = True
    rank: int | None = None  # under torchrun with several ranks: each rank's batches draw their own numbers
    weights: np.ndarray | None = None  # per-sample draw weights of a weighted plan (epoch_batches uses them)
    mix: str = "none"  # batch mixing (core.mixing): none | mixup | cutmix | cutmix-vertical
    mix_prob: float = 0.5  # share of batches mixed
    mix_alpha: float = 1.0  # Beta(alpha, alpha) of mixup's and cutmix's lam

    def __post_init__(self):
        self.store = as_store(self.images, self.device)
        self.device = self.store.device
        self._labels = torch.from_numpy(np.array(self.labels, np.int64)).to(self.device)  # a copy: writable

    def __len__(self) -> int:
        return len(self.a)

    def _pixel_generator(self, *parts: int) -> torch.Generator | None:
        if self.device.type != "cuda":
            return None  # the batch's CPU generator draws the pixels too (unchanged CPU results)
        return torch.Generator(device=self.device).manual_seed(_batch_seed(*parts))

    def batches(self, order: list[np.ndarray], fold: int, epoch: int, start: int = 0) -> Iterator:
        """(x, y) for batches ``start``.. of ``order`` (positions into the samples)."""
        for i in range(start, len(order)):
            idx = order[i]
            key = (self.seed, fold, epoch, i) if self.rank is None else (self.seed, fold, epoch, i, self.rank)
            gen = torch.Generator().manual_seed(_batch_seed(*key, 1))
            x = gather(self.store, self.a[idx], self.b[idx], self.gap[idx])
            x = normalize(augment_batch(x, self.augment, gen, self._pixel_generator(*key, 2)))
            y = self._labels[torch.from_numpy(np.asarray(idx, np.int64)).to(self.device)]
            x, y = mix_batch(x, y, self.mix, self.mix_prob, self.mix_alpha, gen)  # after the augmentation draws
            if self.channels_last:
                x = x.contiguous(memory_format=torch.channels_last)
            yield x, y

    def stream(self, order: list[np.ndarray], fold: int, epoch: int, start: int = 0) -> Iterator:
        """:meth:`batches` as the training loop consumes them: made one ahead on a background
        thread when a GPU trains on a cache that stays on the host, in line otherwise.

        On the CPU torch's own threads already occupy every core during the forward and
        backward passes, so a batch made alongside only competes with them: on the 2-core
        demo machine, prefetching made each smallcnn step ~20 % slower (median 126 vs 102 ms
        over 8 interleaved rounds of 60 batches). With the cache on the GPU, making a batch
        only queues kernels behind the previous step, which never blocks.
        """
        batches = self.batches(order, fold, epoch, start)
        return prefetch(batches) if self.device.type == "cuda" and self.store.where != "device" else batches


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
