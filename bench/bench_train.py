"""Images per second of three ways to feed the same model, measured in one run.

(a) ours: batches drawn from the preprocessed uint8 cache, augmented on the batch in torch,
    made in line on the CPU and one batch ahead on a thread on a GPU (BatchSource.stream,
    exactly what core.training runs);
(b) the ceiling: the same model and optimiser fed random tensors already in memory;
(c) the usual per-item pipeline: PIL open + torchvision transforms in ``__getitem__``,
    DataLoader with 2 worker processes.

Rounds interleave a, b and c so that load from other processes hits all three alike; the
script prints each one's median and the ratios a/b (target >= 0.9) and a/c (target >= 2.5).

    python bench/bench_train.py --data demo_data/train [--model resnet18] [--batches 6] [--rounds 3]
"""

from __future__ import annotations

import argparse
import statistics
import sys
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
from core.dataset import scan  # noqa: E402
from core.models import new_model  # noqa: E402
from core.recipe import Recipe  # noqa: E402
from core.training import BatchSource, epoch_batches, train_steps  # noqa: E402


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


def timed_steps(model, batches, n: int, optimizer, criterion) -> list[float]:
    """Images/s of each of n training steps (forward, backward, optimiser) over ``batches``."""
    rates, it = [], iter(batches)
    for _ in range(n):
        t = time.perf_counter()
        x, y = next(it)
        train_steps(model, [(x, y)], criterion, optimizer, 1, 1)
        rates.append(len(y) / (time.perf_counter() - t))
    getattr(it, "close", lambda: None)()  # stop background work before the next method runs
    return rates


def ours(model, source: BatchSource, batch: int, n: int, optimizer, criterion, round_: int) -> list[float]:
    order = epoch_batches(len(source), batch, 0, 0, round_)
    return timed_steps(model, source.stream(order, 0, round_), n, optimizer, criterion)


def in_memory(model, shape, n: int, optimizer, criterion) -> list[float]:
    g = torch.Generator().manual_seed(0)
    x = torch.randn(shape, generator=g).contiguous(memory_format=torch.channels_last)
    y = torch.randint(0, 18, (shape[0],), generator=g)
    return timed_steps(model, iter(lambda: (x, y), None), n, optimizer, criterion)


def per_item(model, loader: DataLoader, n: int, optimizer, criterion) -> list[float]:
    def batches():
        for x, y in loader:
            yield x.contiguous(memory_format=torch.channels_last), y
    return timed_steps(model, batches(), n, optimizer, criterion)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--data", required=True, help="demo train folder (python -m core demo --out DIR)")
    p.add_argument("--model", default="resnet18")
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--size", type=int, nargs=2, default=(96, 128), metavar=("W", "H"))
    p.add_argument("--batches", type=int, default=6, help="timed batches per method per round")
    p.add_argument("--rounds", type=int, default=3)
    args = p.parse_args()

    torch.manual_seed(0)
    recipe = Recipe().replace(input_size=tuple(args.size))
    df = scan(args.data).df
    t = time.perf_counter()
    images = build_cache(df, recipe)
    print(f"cache: {len(df)} images {images.shape[1:]} ready in {time.perf_counter() - t:.1f}s (built once per recipe)")
    labels = df["label"].to_numpy(np.int64)
    rows = np.arange(len(df))
    source = BatchSource(images, rows, rows, np.zeros(len(df)), labels, recipe.augment, seed=0)
    loader = DataLoader(PerItem(list(df["path"]), labels, recipe.input_size, recipe), batch_size=args.batch_size,
                        shuffle=True, num_workers=2, persistent_workers=True, drop_last=True)
    model = new_model(args.model, 18).to(memory_format=torch.channels_last)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    criterion = nn.CrossEntropyLoss()
    shape = (args.batch_size, 3, args.size[1], args.size[0])
    print(f"model {args.model}, input {args.size[0]}x{args.size[1]}, batch {args.batch_size}, "
          f"{torch.get_num_threads()} threads; warming up")
    in_memory(model, shape, 2, optimizer, criterion)
    results = {"a": [], "b": [], "c": []}
    for r in range(args.rounds):
        results["a"] += ours(model, source, args.batch_size, args.batches, optimizer, criterion, r)[1:]
        results["b"] += in_memory(model, shape, args.batches, optimizer, criterion)[1:]
        results["c"] += per_item(model, loader, args.batches, optimizer, criterion)[1:]
        print(f"round {r + 1}: " + ", ".join(f"{k} {statistics.median(v):.1f} img/s" for k, v in results.items()))
    a, b, c = (statistics.median(results[k]) for k in "abc")
    print(f"(a) ours, cached uint8 + batched augmentation: {a:7.1f} img/s")
    print(f"(b) random in-memory tensors:                   {b:7.1f} img/s")
    print(f"(c) per-item PIL + transforms, 2 workers:       {c:7.1f} img/s")
    print(f"a/b = {a / b:.2f} (target >= 0.9)   a/c = {a / c:.2f} (target >= 2.5)")


if __name__ == "__main__":
    main()
