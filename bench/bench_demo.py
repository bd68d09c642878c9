"""Demo generation speed: time make_demo into a fresh temporary folder.

    python bench/bench_demo.py                     # default size: 270 + 81 people, 2,457 images
    python bench/bench_demo.py --people 2700       # full scale (about 24,600 images)
    python bench/bench_demo.py --workers 1         # one process, to see what the pool buys

Target: the default size in under 30 s on a 2-core machine.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--people", type=int, default=270)
    ap.add_argument("--eval-people", type=int, default=None)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--workers", type=int, default=None,
                    help="drawing processes (default: make_demo's, every available core)")
    ap.add_argument("--keep", action="store_true", help="keep the generated folder and print its path")
    args = ap.parse_args()

    from core.cores import usable_cores
    from core.demo import make_demo

    tmp = Path(tempfile.mkdtemp(prefix="bench-demo-"))
    try:
        t = time.perf_counter()
        summary = make_demo(tmp / "demo", people=args.people, seed=args.seed,
                            eval_people=args.eval_people, workers=args.workers)
        seconds = time.perf_counter() - t
        images = summary["train_images"] + summary["eval_images"]
        size = sum(f.stat().st_size for f in (tmp / "demo").rglob("*") if f.is_file())
        print(f"people: {summary['people']} train + {summary['eval_people']} eval  images: {images}  "
              f"cores: {usable_cores()} of {os.cpu_count()}  processes: {summary['processes']}")
        print(f"make_demo: {seconds:.1f} s ({1000 * seconds / images:.2f} ms/image, "
              f"{size / 2**20:.0f} MiB written)")
        if args.keep:
            print(f"kept: {tmp / 'demo'}")
    finally:
        if not args.keep:
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
