"""Images per second of three ways to feed the same model, measured in one run.

(a) ours: the trainer's own data path and step: batches gathered from the preprocessed
    uint8 cache (on the GPU when it fits, core.training.batches.ImageStore), SMOTE-mixed,
    augmented and normalised as a batch where the cache lives, then ``train_steps`` with the
    trainer's autocast and memory format;
(b) the ceiling: the same model and optimiser fed random tensors already on the device;
(c) the usual per-item pipeline: PIL open + torchvision transforms in ``__getitem__``,
    DataLoader with one worker process per core but one (2 on the CPU).

Rounds interleave a, b and c so that load from other processes hits all three alike. Each
round times ``--batches`` steps of each method as a whole (with a device synchronise at both
ends on CUDA, so queued work is counted). The script prints each method's median over rounds,
the ratios a/b (target >= 0.9) and a/c (target >= 2.5 on the CPU, >= 3 on a GPU) and, on
CUDA, the share of time the GPU was busy during (a), sampled from nvidia-smi.

    python bench/bench_train.py --data demo_data/train [--device cpu|cuda] [--model resnet18]
        [--batch-size 64] [--size 96 128] [--batches 6] [--rounds 3] [--compile]
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402
import torch  # noqa: E402
import torch.nn as nn  # noqa: E402
from PIL import Image  # noqa: E402
from torch.utils.data import DataLoader, Dataset  # noqa: E402
from torchvision import transforms as T  # noqa: E402

from core.augment import MEAN, STD  # noqa: E402
from core.cache import build_cache  # noqa: E402
from core.cores import usable_cores  # noqa: E402
from core.dataset import scan  # noqa: E402
from core.models import new_model  # noqa: E402
from core.recipe import Recipe  # noqa: E402
from core.training import BatchSource, epoch_batches, train_steps  # noqa: E402
from core.training.batches import ImageStore  # noqa: E402


class PerItem(Dataset):
    """The per-item baseline: decode and transform one image per __getitem__."""

    def __init__(self, paths: list[str], labels: np.ndarray, size: tuple[int, int], recipe: Recipe):
        w, h = size
        a = recipe.augment
        self.paths, self.labels = paths, labels
        self.tf = T.Compose([
            T.Resize((h, w)),
            T.RandomHorizontalFlip(),
            T.RandomAffine(a.rotate, translate=(a.translate, a.translate), scale=(1 - a.scale, 1 + a.scale)),
            T.ColorJitter(a.brightness, a.contrast, a.saturation),
            T.ToTensor(),
            T.Normalize(MEAN, STD),
        ])

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, i: int):
        with Image.open(self.paths[i]) as im:
            return self.tf(im.convert("RGB")), int(self.labels[i])


class Bench:
    """The model, optimiser and step settings shared by the three methods."""

    def __init__(self, model: nn.Module, device: torch.device, amp: bool):
        self.model, self.device = model, device
        self.optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
        self.criterion = nn.CrossEntropyLoss()
        dtype = torch.bfloat16 if device.type == "cuda" and torch.cuda.is_bf16_supported() else torch.float16
        self.autocast = ((lambda: torch.autocast("cuda", dtype=dtype)) if device.type == "cuda" and amp
                         else contextlib.nullcontext)

    def sync(self) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)

    def rate(self, batches, n: int) -> float:
        """Images/s over n training steps on ``batches``, as train_steps runs them."""
        it = iter(batches)
        self.sync()
        t, seen = time.perf_counter(), 0
        for _ in range(n):
            x, y = next(it)
            train_steps(self.model, [(x, y)], self.criterion, self.optimizer, 1, 1, autocast=self.autocast)
            seen += len(y)
        self.sync()
        getattr(it, "close", lambda: None)()  # stop background work before the next method runs
        return seen / (time.perf_counter() - t)


def random_batches(shape, device: torch.device):
    g = torch.Generator().manual_seed(0)
    x = torch.randn(shape, generator=g).to(device).contiguous(memory_format=torch.channels_last)
    y = torch.randint(0, 18, (shape[0],), generator=g).to(device)
    return iter(lambda: (x, y), None)


def loader_batches(loader: DataLoader, device: torch.device):
    for x, y in loader:
        yield (x.to(device, non_blocking=True).contiguous(memory_format=torch.channels_last),
               y.to(device, non_blocking=True))


class GpuBusy:
    """Share of nvidia-smi samples (every 100 ms) with the GPU busy, while inside the block."""

    def __init__(self):
        self.samples: list[float] = []
        self._on = threading.Event()
        self._proc = None
        if shutil.which("nvidia-smi"):
            self._proc = subprocess.Popen(["nvidia-smi", "--query-gpu=utilization.gpu", "--format=csv,noheader,nounits",
                                           "-lms", "100", "-i", "0"], stdout=subprocess.PIPE, text=True)
            threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        for line in self._proc.stdout:
            if self._on.is_set() and line.strip().isdigit():
                self.samples.append(float(line))

    @contextlib.contextmanager
    def measuring(self):
        self._on.set()
        try:
            yield
        finally:
            self._on.clear()

    def close(self) -> str:
        if self._proc is None:
            return "n/a (no nvidia-smi)"
        self._proc.terminate()
        return f"{statistics.mean(self.samples):.0f} %" if self.samples else "n/a (no samples)"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--data", required=True, help="demo train folder (python -m core demo --out DIR)")
    p.add_argument("--device", default="cpu", choices=("cpu", "cuda"))
    p.add_argument("--model", default="resnet18")
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--size", type=int, nargs=2, default=(96, 128), metavar=("W", "H"))
    p.add_argument("--batches", type=int, default=6, help="timed steps per method per round")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--compile", action="store_true", help="torch.compile the model (all three methods)")
    p.add_argument("--no-amp", action="store_true", help="float32 on cuda instead of the trainer's bf16 autocast")
    p.add_argument("--skip-per-item", action="store_true", help="leave out (c)")
    args = p.parse_args()

    device = torch.device(args.device)
    torch.manual_seed(0)
    torch.backends.cudnn.benchmark = True
    recipe = Recipe().replace(input_size=tuple(args.size))
    df = scan(args.data).df
    t = time.perf_counter()
    images = build_cache(df, recipe)
    print(f"cache: {len(df)} images {images.shape[1:]} ready in {time.perf_counter() - t:.1f}s (built once per recipe)")
    labels = df["label"].to_numpy(np.int64)
    rows = np.arange(len(df))
    store = ImageStore.place(images, device, share=0.5)
    source = BatchSource(store, rows, rows, np.zeros(len(df)), labels, recipe.augment, seed=0, device=device)
    workers = 2 if device.type == "cpu" else max(1, usable_cores() - 1)
    loader = None if args.skip_per_item else DataLoader(
        PerItem(list(df["path"]), labels, recipe.input_size, recipe), batch_size=args.batch_size, shuffle=True,
        num_workers=workers, persistent_workers=True, drop_last=True, pin_memory=device.type == "cuda")
    model = new_model(args.model, 18).to(device, memory_format=torch.channels_last)
    bench = Bench(torch.compile(model) if args.compile else model, device, amp=not args.no_amp)
    shape = (args.batch_size, 3, args.size[1], args.size[0])
    print(f"device {device}{' ' + torch.cuda.get_device_name(device) if device.type == 'cuda' else ''}, "
          f"model {args.model}{' (compiled)' if args.compile else ''}, input {args.size[0]}x{args.size[1]}, "
          f"batch {args.batch_size}, cache on the {store.where}, {torch.get_num_threads()} threads, "
          f"per-item workers {workers}; warming up")
    bench.rate(random_batches(shape, device), 3)
    bench.rate(source.stream(epoch_batches(len(source), args.batch_size, 0, 0, 99), 0, 99), 3)
    busy = GpuBusy() if device.type == "cuda" else None
    results: dict[str, list[float]] = {"a": [], "b": [], "c": []}
    for r in range(args.rounds):
        with busy.measuring() if busy else contextlib.nullcontext():
            order = epoch_batches(len(source), args.batch_size, 0, 0, r)
            results["a"].append(bench.rate(source.stream(order, 0, r), args.batches))
        results["b"].append(bench.rate(random_batches(shape, device), args.batches))
        if loader is not None:
            results["c"].append(bench.rate(loader_batches(loader, device), args.batches))
        print(f"round {r + 1}: " + ", ".join(f"{k} {statistics.median(v):.1f} img/s" for k, v in results.items() if v))
    a, b = statistics.median(results["a"]), statistics.median(results["b"])
    print(f"(a) ours, cached uint8 + batched augmentation: {a:8.1f} img/s")
    print(f"(b) random tensors on the device:              {b:8.1f} img/s")
    line = f"a/b = {a / b:.2f} (target >= 0.9)"
    if results["c"]:
        c = statistics.median(results["c"])
        print(f"(c) per-item PIL + transforms, {workers} workers:      {c:8.1f} img/s")
        line += f"   a/c = {a / c:.2f} (target >= {'3' if device.type == 'cuda' else '2.5'})"
    print(line)
    if busy:
        print(f"GPU busy during (a): {busy.close()}")
    os._exit(0)  # DataLoader workers and the nvidia-smi reader need no orderly teardown


if __name__ == "__main__":
    main()
