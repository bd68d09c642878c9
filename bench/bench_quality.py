"""What a training configuration scores, measured honestly: several seeds, a large eval set.

One seed's macro F1 on a small eval set moves by a few points from luck alone, so a change
that "wins" once may not win at all. This script trains the same configuration once per
seed (``python -m core train``, any train flags passed through), predicts the demo's eval
set with each run (``core.predict.predict``, the run's own recipe and test-time mirror
choice) and scores it against the true answers (``core.predict.evaluate``). It prints each
seed's macro F1, accuracy, F1 by task (mask, gender, age: each a macro F1 over the task's own
values, from the same 18-class answers) and train time, then the mean, min and max of each
task's F1 and, last, of macro F1.

The eval set is a demo with 540 eval persons (3,780 images; the default demo has 81) and
the default 270 training persons: the demo is seeded, so its training persons are the same
as the default demo's. It is written once into --demo and reused.

    python bench/bench_quality.py                                  # the default configuration
    python bench/bench_quality.py --seeds 0 1 2 -- --old-age 58     # any train flags after --
    python bench/bench_quality.py --epochs 30 --loss focal          # (or mixed in directly)

Target: default one-click training, macro F1 >= 0.95 on demo eval (mean of
3 seeds, eval-540), <= 5 min, from scratch.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from core.metrics import TASKS, task_f1_text  # after the path line above

EVAL_PEOPLE = 540
TRAIN_PEOPLE = 270


def ensure_demo(folder: Path, people: int = TRAIN_PEOPLE, eval_people: int = EVAL_PEOPLE) -> Path:
    """The demo with ``eval_people`` eval persons in ``folder``: written once, then reused."""
    gt = folder / "eval" / "gt.csv"
    if gt.is_file() and (folder / "train" / "train.csv").is_file():
        rows = sum(1 for _ in gt.open()) - 1
        if rows != eval_people * 7:
            sys.exit(f"{folder}: its eval set has {rows} images, not {eval_people * 7}; "
                     "pass another --demo folder or remove this one")
        return folder
    subprocess.run([sys.executable, "-m", "core", "demo", "--out", str(folder), "--people", str(people),
                    "--eval-people", str(eval_people)], cwd=ROOT, check=True, stdout=sys.stderr)  # stdout: results only
    return folder


def train_run(demo: Path, seed: int, out: Path, flags: list[str], log: Path) -> tuple[Path, float]:
    """Train one seed through the CLI; (run directory, wall seconds of the whole command)."""
    cmd = [sys.executable, "-m", "core", "train", "--data", str(demo / "train"), "--seed", str(seed),
           "--out", str(out), *flags]
    t = time.perf_counter()
    with log.open("w") as err:
        done = subprocess.run(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=err, text=True)
    seconds = time.perf_counter() - t
    runs = [line[5:].strip() for line in done.stdout.splitlines() if line.startswith("run: ")]
    if done.returncode != 0 or not runs:
        sys.exit(f"seed {seed}: train failed (exit {done.returncode}); see {log}")
    return Path(runs[-1]), seconds


def score_run(run: Path, demo: Path) -> dict:
    """Predict the eval set with ``run`` and score it against the true answers."""
    from core.predict import evaluate, predict

    out = predict(run, demo / "eval", run / "eval_submission.csv")
    return evaluate(out, demo / "eval" / "gt.csv")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter,
                                 allow_abbrev=False)  # --seed must reach the check below, not become --seeds
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--demo", type=Path, default=ROOT / "demo_data" / f"quality-eval{EVAL_PEOPLE}",
                    help="demo folder with the large eval set (written when missing)")
    ap.add_argument("--people", type=int, default=TRAIN_PEOPLE, help="train persons of a demo written here")
    ap.add_argument("--eval-people", type=int, default=EVAL_PEOPLE, help="eval persons of a demo written here")
    ap.add_argument("--out", type=Path, default=ROOT / "runs" / "quality", help="where the runs go")
    args, flags = ap.parse_known_args()
    flags = [f for f in flags if f != "--"]
    if any(f in ("--seed", "--data", "--out", "--resume") for f in flags):
        sys.exit("--seed, --data, --out and --resume are set by this script; use --seeds, --demo, --out")

    demo = ensure_demo(args.demo.resolve(), args.people, args.eval_people)
    args.out.mkdir(parents=True, exist_ok=True)
    eval_images = sum(1 for _ in (demo / "eval" / "gt.csv").open()) - 1
    print(f"configuration: train {' '.join(flags) or '(defaults)'}")
    print(f"data: {demo} ({eval_images} eval images)")
    f1s, tasks = [], {task: [] for task in TASKS}
    for seed in args.seeds:
        run, seconds = train_run(demo, seed, args.out, flags, args.out / f"train-seed{seed}.log")
        result = score_run(run, demo)
        f1s.append(result["macro_f1"])
        for task in TASKS:
            tasks[task].append(result["task_f1"][task])
        print(f"seed {seed}: eval macro F1 {result['macro_f1']:.4f}  accuracy {result['accuracy']:.4f}  "
              f"{task_f1_text(result['task_f1'])}  train {seconds:.0f} s  run {run}", flush=True)
    for name, values in [*((f"{task} F1", tasks[task]) for task in TASKS), ("macro F1", f1s)]:  # macro F1 last
        print(f"{name} over {len(values)} seed(s): mean {statistics.fmean(values):.4f}  min {min(values):.4f}  "
              f"max {max(values):.4f}")


if __name__ == "__main__":
    main()
