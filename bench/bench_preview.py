"""Preview speed: crop + enhance of one image, and the preprocessing page's rerun after a slider move.

    python bench/bench_preview.py --data demo_data/train
    python bench/bench_preview.py                 # generates a small demo in a temp folder

Targets (the README's Benchmarks table): crop + enhance of one 384x512 image <= 20 ms; preview rerun after a
slider move <= 300 ms.

1. ``core.preprocess.preprocess`` on a decoded 384x512 photo with a fixed-box crop and every
   enhancement switched on (the worst case: CLAHE, sharpness, colour...), median of many calls;
   the same with JPEG decoding included, for reference.
2. ``AppTest``: the preprocessing page is opened once (caches warm), then the contrast slider
   is set to a new value and ``at.run()`` timed, median of several moves. AppTest reruns the
   whole script (entry point, sidebar and page); in a browser the slider sits in an
   ``st.fragment`` and only the fragment reruns, so this is an upper bound.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def _median_ms(times: list[float]) -> float:
    return statistics.median(times) * 1000


def bench_core(path: str, repeats: int) -> tuple[float, float]:
    from core.images import load_rgb
    from core.preprocess import preprocess
    from core.recipe import Recipe

    recipe = Recipe().replace(
        crop={"mode": "fixed", "box": (0.1, 0.05, 0.8, 0.7)},
        enhance={"brightness": 1.2, "contrast": 1.3, "sharpness": 1.5, "color": 0.8, "equalize": "clahe"})
    img = load_rgb(path)
    assert img.size == (384, 512), f"expected a 384x512 photo, got {img.size}"
    preprocess(img, recipe)  # warm up (OpenCV and PIL lazy initialisation)
    warm, cold = [], []
    for _ in range(repeats):
        t = time.perf_counter()
        preprocess(img, recipe)
        warm.append(time.perf_counter() - t)
        t = time.perf_counter()
        preprocess(load_rgb(path), recipe)
        cold.append(time.perf_counter() - t)
    return _median_ms(warm), _median_ms(cold)


def bench_page(data: Path, moves: int) -> list[float]:
    from streamlit.testing.v1 import AppTest

    at = AppTest.from_file(str(ROOT / "explorer" / "app.py"), default_timeout=300)
    at.session_state["data_root"] = str(data)
    at.run()
    at.switch_page("views/preprocess.py").run()
    assert not at.exception, [e.value for e in at.exception]
    values = [1.05 + 0.05 * (i % 20) for i in range(moves + 2)]
    times = []
    for i, v in enumerate(values):
        at.slider(key="r.enhance.contrast").set_value(round(v, 2))
        t = time.perf_counter()
        at.run()
        if i >= 2:  # the first moves fill the per-image caches
            times.append(time.perf_counter() - t)
        assert not at.exception, [e.value for e in at.exception]
        assert at.session_state["recipe"].enhance.contrast == round(v, 2)
    return times


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", help="train folder (default: a 30-person demo in a temp folder)")
    ap.add_argument("--repeats", type=int, default=200, help="core preprocess calls to time")
    ap.add_argument("--moves", type=int, default=10, help="slider moves to time on the page")
    args = ap.parse_args()

    tmp = Path(tempfile.mkdtemp(prefix="bench-preview-"))
    os.environ.setdefault("MASKLAB_CACHE", str(tmp / "cache"))
    if args.data:
        data = Path(args.data).resolve()
    else:
        from core.demo import make_demo
        make_demo(tmp / "demo", people=30, seed=0, eval_people=10)
        data = tmp / "demo" / "train"

    from core.dataset import scan
    ds = scan(data)
    path = next(p for p in ds.df["path"] if p.endswith(".jpg"))
    warm, cold = bench_core(path, args.repeats)
    print(f"crop + enhance, one 384x512 image (decoded):   median {warm:6.1f} ms   target <= 20 ms")
    print(f"decode + crop + enhance, same image (JPEG):   median {cold:6.1f} ms   (for reference)")
    times = bench_page(data, args.moves)
    print(f"preprocessing page rerun after a slider move: median {_median_ms(times):6.1f} ms   target <= 300 ms"
          f"   (AppTest full rerun; min {min(times) * 1000:.0f}, max {max(times) * 1000:.0f} ms, {len(times)} moves,"
          f" {len(ds.df):,} images)")


if __name__ == "__main__":
    main()
