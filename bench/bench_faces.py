"""Face scan speed: first scan (2 processes) and cached rescan, on a demo dataset.

    python bench/bench_faces.py --data demo_data/train          # the default demo
    python bench/bench_faces.py --people 2700                   # full scale (18,900 images)

Targets (DESIGN.md, issue 3): 1,890 images <= 30 s; 18,900 images <= 90 s; cached <= 2 s.
Each run uses a fresh cache folder, so the first scan really detects.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", help="train folder to scan (default: generate a demo with --people)")
    ap.add_argument("--people", type=int, default=270)
    ap.add_argument("--workers", type=int, default=None)
    ap.add_argument("--repeats", type=int, default=5, help="cached rescans to time")
    args = ap.parse_args()

    tmp = Path(tempfile.mkdtemp(prefix="bench-faces-"))
    os.environ["MASKLAB_CACHE"] = str(tmp / "cache")
    from core.dataset import scan
    from core.faces import cached_faces, detection_rates

    data = Path(args.data) if args.data else None
    if data is None:
        from core.demo import make_demo
        t = time.perf_counter()
        make_demo(tmp / "demo", people=args.people, seed=0)
        print(f"generated demo with {args.people} people in {time.perf_counter() - t:.1f} s")
        data = tmp / "demo" / "train"

    paths = scan(data).df["path"]
    t = time.perf_counter()
    table = cached_faces(paths, workers=args.workers)
    first = time.perf_counter() - t
    cached = []
    for _ in range(args.repeats):
        t = time.perf_counter()
        cached_faces(paths, workers=args.workers)
        cached.append(time.perf_counter() - t)
    print(f"images: {len(paths)}  cores: {os.cpu_count()}")
    print(f"first scan: {first:.1f} s ({1000 * first / len(paths):.2f} ms/image)")
    print(f"cached scan: median {statistics.median(cached):.3f} s over {args.repeats} runs")
    print(detection_rates(table, scan(data).df).to_string(index=False))


if __name__ == "__main__":
    main()
