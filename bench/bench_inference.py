"""What test-time mirroring and ensembles give, on trained runs and a large eval set.

Companion of ``bench_quality.py``: it trains nothing. For each run given it predicts the eval
set once per test-time choice (``core.predict.predict_probabilities``, the run's own recipe),
and scores against ``gt.csv``:

* ``--tta none`` and ``--tta flip`` for every run: mean, min and max of macro F1 over the runs;
* ensembles (the mean of the runs' probabilities, as ``predict --run A --run B`` averages them):
  every pair of ``--runs`` and all of them together; with ``--with``, each run of ``--runs``
  paired with the run in the same position of ``--with`` (for example seed k of two configurations).

    python bench/bench_inference.py --runs runs/quality/A runs/quality/B runs/quality/C
    python bench/bench_inference.py --runs A0 A1 A2 --with B0 B1 B2

Ensembles use each run's own ``--tta auto`` choice, the predict default.

``--by-age`` adds, for a demo's eval set (whose true ages the demo's seed gives back), the share
of images put in the 60+ group at each true age from 55 up: what ``--old-age`` trades.
"""

from __future__ import annotations

import argparse
import itertools
import json
import statistics
import sys
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from core.labels import AGE_NAMES, decode
from core.metrics import accuracy, macro_f1
from core.predict import predict_probabilities, resolve_tta
from core.recipe import Recipe


def eval_truth(demo: Path, df: pd.DataFrame) -> np.ndarray:
    """The true class of each row of ``df`` (the eval index), from the demo's gt.csv."""
    gt = pd.read_csv(demo / "eval" / "gt.csv", dtype={"ImageID": str})
    answers = dict(zip(gt["ImageID"], gt["ans"].astype(int)))
    missing = [i for i in df["image_id"] if i not in answers]
    if missing:
        sys.exit(f"{demo / 'eval' / 'gt.csv'}: no answer for {len(missing)} image(s), e.g. {missing[0]}")
    return np.array([answers[i] for i in df["image_id"]])


def eval_ages(demo: Path) -> dict[str, int]:
    """ImageID -> true age of a demo's eval images, rebuilt from the demo's own seed and size."""
    from core.demo.person import plan_people
    from core.demo.population import STEMS
    from core.demo.writing import eval_image_id

    marker = json.loads((demo / ".masklab_demo.json").read_text())
    seed, people = int(marker["seed"]), int(marker["eval_people"])
    return {eval_image_id(seed, p.index, stem): p.age for p in plan_people(people, seed, "eval") for stem in STEMS}


def by_age(label: str, runs: list[Path], probs: dict, df: pd.DataFrame, ages: dict[str, int]) -> None:
    """Share of images predicted 60+ at each true age from 55, mean over ``runs``."""
    age = np.array([ages[i] for i in df["image_id"]])
    old = AGE_NAMES.index("60+")
    shares = {}
    for a in range(55, 61):
        rows = age == a
        if rows.any():
            shares[a] = statistics.fmean(float(np.mean([decode(c)[2] == old for c in probs[(r, "auto")][rows].argmax(1)])) for r in runs)
    print(f"{label:<34} predicted 60+ by true age: " + "  ".join(f"{a}: {v:.2f}" for a, v in shares.items()))


def summary(label: str, f1s: list[float], accs: list[float]) -> str:
    return (f"{label:<34} macro F1 mean {statistics.fmean(f1s):.4f}  min {min(f1s):.4f}  max {max(f1s):.4f}  "
            f"accuracy mean {statistics.fmean(accs):.4f}  each " + " ".join(f"{f:.4f}" for f in f1s))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=Path, nargs="+", required=True, help="trained runs (e.g. one per seed)")
    ap.add_argument("--with", dest="partners", type=Path, nargs="+", default=None,
                    help="runs to ensemble with --runs position by position (same count)")
    ap.add_argument("--demo", type=Path, default=ROOT / "demo_data" / "quality-eval540",
                    help="demo folder whose eval/ has gt.csv (bench_quality.py's default)")
    ap.add_argument("--by-age", action="store_true",
                    help="also the share of images predicted 60+ at each true age 55-60 (a demo's eval set)")
    args = ap.parse_args()
    if args.partners is not None and len(args.partners) != len(args.runs):
        sys.exit(f"--with has {len(args.partners)} runs but --runs has {len(args.runs)}; give as many")
    eval_dir = args.demo / "eval"

    probs: dict[tuple[Path, str], np.ndarray] = {}
    truth = df = None
    for run in [*args.runs, *(args.partners or [])]:
        for tta in ("none", "flip"):
            _, df, _, p, _ = predict_probabilities(run, eval_dir, tta=tta)
            probs[(run, tta)] = p
            truth = eval_truth(args.demo, df) if truth is None else truth
        flips = resolve_tta("auto", Recipe.load(run / "recipe.json"))  # what predict's default does
        probs[(run, "auto")] = probs[(run, "flip" if flips else "none")]
    print(f"eval images: {len(truth)}  ({eval_dir})")

    def score(p: np.ndarray) -> tuple[float, float]:
        pred = p.argmax(1)
        return macro_f1(truth, pred), accuracy(truth, pred)

    for tta in ("none", "flip"):
        f1s, accs = zip(*(score(probs[(r, tta)]) for r in args.runs))
        print(summary(f"single run, --tta {tta}", list(f1s), list(accs)))
    f1s, accs = zip(*(score(probs[(r, "auto")]) for r in args.runs))
    print(summary("single run, --tta auto (default)", list(f1s), list(accs)))
    if args.partners:
        groups = [(a, b) for a, b in zip(args.runs, args.partners)]
        label = "ensemble --runs[k] + --with[k]"
    else:
        groups = list(itertools.combinations(args.runs, 2))
        label = "ensemble of 2 runs (every pair)"
    if groups:
        f1s, accs = zip(*(score(np.mean([probs[(r, "auto")] for r in g], axis=0)) for g in groups))
        print(summary(label, list(f1s), list(accs)))
    if not args.partners and len(args.runs) > 2:
        f1, acc = score(np.mean([probs[(r, "auto")] for r in args.runs], axis=0))
        print(summary(f"ensemble of all {len(args.runs)} runs", [f1], [acc]))
    if args.by_age:
        ages = eval_ages(args.demo)
        by_age("--runs", args.runs, probs, df, ages)
        if args.partners:
            by_age("--with", args.partners, probs, df, ages)


if __name__ == "__main__":
    main()
