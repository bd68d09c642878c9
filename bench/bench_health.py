"""The health check (python -m core health): its first run (every core) phase by phase, the
cached rerun, and, with --defects, its recall and precision on the faults the demo plants.

    python bench/bench_health.py --people 30                          # smoke test (210 images)
    python bench/bench_health.py                                      # 270-person demo (1,890 + 567 eval images)
    python bench/bench_health.py --people 2700 --eval-people 1800     # full scale (18,900 + 12,600 eval images)
    python bench/bench_health.py --defects 0.2 --seeds 0 7            # recall and precision (270 persons each)
    python bench/bench_health.py --data D/train --eval D/eval         # existing folders

Targets (issue 18), full scale on 2 cores: first run <= 120 s; cached <= a few seconds. The first
run gets a fresh cache folder, so nothing is reused; the cached time is check_health() again
(the dataset scan, the cache lookup and reading the findings), the way the CLI and the page call it.
"""

from __future__ import annotations

import argparse
import itertools
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

TARGETS = {"first_s": 120.0, "cached_s": 5.0}  # full scale, 2 cores


def timed_run(data: Path, eval_dir: Path | None, workers: int | None, repeats: int, cache: Path) -> dict:
    """First run (phases from the check's own log lines) and cached reruns in a fresh cache folder."""
    from core.health import check_health

    os.environ["MASKLAB_CACHE"] = str(cache)
    marks: list[tuple[str, float]] = []
    start = time.perf_counter()
    result = check_health(data, eval_dir, workers=workers, log=lambda text: marks.append((text, time.perf_counter())))
    first = time.perf_counter() - start
    marks.append(("end", time.perf_counter()))
    phases = [(text, later - t) for (text, t), (_, later) in itertools.pairwise(marks)]
    again = []
    for _ in range(repeats):
        t = time.perf_counter()
        check_health(data, eval_dir, workers=workers)
        again.append(time.perf_counter() - t)
    return {"first": first, "phases": [("scan", marks[0][1] - start)] + phases, "cached": statistics.median(again),
            "result": result}


def score(root: Path, result) -> None:
    import pandas as pd

    from core.demo.defects import TRUTH_FILE, score_findings

    truth = pd.read_csv(root / TRUTH_FILE, dtype=str, keep_default_na=False)
    table = score_findings(truth, result.findings, root)
    print(table[["issue", "planted", "found", "right", "recall", "precision"]].to_string(index=False,
                                                                                         float_format="%.2f"))
    for row in table.itertuples():
        if row.missed or row.extra:
            print(f"  {row.issue}: missed {row.missed}; extra {row.extra}")
    right, planted, found = table["right"].sum(), table["planted"].sum(), table["found"].sum()
    print(f"all issues: recall {right / planted:.3f} ({right}/{planted}), precision {right / found:.3f} "
          f"({right}/{found})")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", help="train folder (default: generate a demo with --people)")
    ap.add_argument("--eval", help="eval folder checked against it (default: the demo's eval/)")
    ap.add_argument("--people", type=int, default=270)
    ap.add_argument("--eval-people", type=int, default=None, help="demo eval persons (default: 30%% of --people)")
    ap.add_argument("--defects", type=float, default=0.0, help="plant faults at this rate and score the findings")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0], help="demo seeds (one run each)")
    ap.add_argument("--workers", type=int, default=None)
    ap.add_argument("--repeats", type=int, default=5, help="cached reruns to time")
    args = ap.parse_args()

    tmp = Path(tempfile.mkdtemp(prefix="bench-health-"))
    for seed in args.seeds if args.data is None else [None]:
        if args.data:
            data, eval_dir, root = Path(args.data), Path(args.eval) if args.eval else None, None
        else:
            from core.demo import make_demo

            root = tmp / f"demo{seed}"
            t = time.perf_counter()
            s = make_demo(root, people=args.people, seed=seed, eval_people=args.eval_people, defect_rate=args.defects)
            print(f"\n== seed {seed}: demo of {s['train_images']} train and {s['eval_images']} eval images "
                  f"made in {time.perf_counter() - t:.1f} s" + (f", faults planted at {args.defects}" if args.defects
                                                                else ""))
            data, eval_dir = root / "train", root / "eval"
        r = timed_run(data, eval_dir, args.workers, args.repeats, tmp / f"cache{seed}")
        n = r["result"].images + r["result"].eval_images
        print(f"first run: {r['first']:.1f} s for {n} images ({1000 * r['first'] / n:.2f} ms/image; target at full "
              f"scale <= {TARGETS['first_s']:.0f} s)")
        for text, seconds in r["phases"]:
            print(f"  {text}: {seconds:.1f} s")
        print(f"cached: median {r['cached']:.2f} s over {args.repeats} runs (target <= {TARGETS['cached_s']:.0f} s)")
        print("findings: " + ", ".join(f"{k} {v}" for k, v in r["result"].counts().items() if v))
        if args.defects and root is not None:
            score(root, r["result"])


if __name__ == "__main__":
    main()
