"""The sweep's own cost per trial, beyond a plain training run of the same settings.

Every trial here trains the same configuration (the space holds one field at its base value),
so a trial and a plain run differ only by what the sweep adds: the study's writes (journal
file), the trial's attributes and reports, the median pruner's look at each epoch, dead-worker
checks, tickets, and best.json / trials.json rewritten after each trial. The image cache is
warm for both (the first plain run builds it; trials that share a preprocessing recipe reuse it).

Rounds interleave: one plain ``core.training.train`` call, then a one-trial sweep command added
to the same study (``python -m core sweep`` in this process, so neither side pays an interpreter
start). It prints, over rounds: the median plain run, the median trial (from the study's own
start/complete times), the median whole sweep command, and the differences:

    per-trial overhead   = trial - plain run         (aim: under 1 s)
    per-command overhead = sweep command - trial     (checking, the study's creation, summary)

    python bench/bench_sweep.py --data demo_data/train [--epochs 1] [--rounds 5]
        [--model smallcnn] [--batch-size 16] [--out /tmp/bench-sweep]

``--best-flags SWEEP_DIR`` prints instead the best trial's train flags (best.json's argv without
--data, --out, --seed, --workers and --device) for bench/bench_quality.py:

    python bench/bench_quality.py -- $(python bench/bench_sweep.py --best-flags runs/sweep-demo)
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import shlex
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from core.cli import main
from core.recipe import starter_recipe
from core.sweep import Job, open_study
from core.training import TrainConfig, train
from core.training.data import scan_labelled


def parse() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data", help="dataset folder (competition train layout or one folder per class)")
    p.add_argument("--best-flags", metavar="SWEEP_DIR", help="print the best trial's train flags and stop")
    p.add_argument("--epochs", type=int, default=1)
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--model", default="smallcnn")
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--out", default=None, help="scratch folder (default: a temporary one, removed after)")
    return p.parse_args()


SET_BY_BENCH_QUALITY = ("--data", "--out", "--seed", "--workers", "--device")


def best_flags(sweep_dir: str) -> list[str]:
    """best.json's train argv less the flags bench_quality.py sets (and this machine's own)."""
    argv = json.loads((Path(sweep_dir) / "best.json").read_text())["argv"][4:]
    flags, i = [], 0
    while i < len(argv):
        has_value = i + 1 < len(argv) and not argv[i + 1].startswith("--")
        if argv[i] not in SET_BY_BENCH_QUALITY:
            flags += argv[i:i + 1 + has_value]
        i += 1 + has_value
    return flags


def main_() -> int:
    args = parse()
    if args.best_flags:
        print(shlex.join(best_flags(args.best_flags)))
        return 0
    if not args.data:
        print("--data is required (or --best-flags SWEEP_DIR)", file=sys.stderr)
        return 2
    out = Path(args.out) if args.out else Path(tempfile.mkdtemp(prefix="bench-sweep-"))
    ds, _ = scan_labelled(args.data, None)
    recipe_file = out / "recipe.json"
    out.mkdir(parents=True, exist_ok=True)
    starter_recipe(ds.layout).save(recipe_file)
    rotate = starter_recipe(ds.layout).augment.rotate
    space = out / "space.json"
    space.write_text(json.dumps({"recipe.augment.rotate": {"choices": [rotate]}}))  # one configuration
    settings = {"model": args.model, "epochs": args.epochs, "batch_size": args.batch_size, "lr": 2e-3}
    flags = ["--model", args.model, "--epochs", str(args.epochs), "--batch-size", str(args.batch_size),
             "--lr", "0.002"]
    plain_cfg = TrainConfig(data=args.data, recipe=str(recipe_file), out=str(out / "plain"), **settings)
    train(plain_cfg)  # builds the image cache: every timed run below finds it warm
    plain, command = [], []
    for r in range(args.rounds):
        t0 = time.perf_counter()
        train(plain_cfg)
        plain.append(time.perf_counter() - t0)
        argv = ["sweep", "--data", args.data, "--recipe", str(recipe_file), "--out", str(out / "sweep"), "--space",
                str(space), "--trials", "1", "--pruner", "median", *flags]
        t0 = time.perf_counter()
        with contextlib.redirect_stdout(io.StringIO()):
            code = main(argv)
        command.append(time.perf_counter() - t0)
        if code != 0:
            print(f"the sweep command failed with status {code}", file=sys.stderr)
            return 1
        print(f"round {r + 1}/{args.rounds}: plain {plain[-1]:.2f} s, sweep command {command[-1]:.2f} s", flush=True)
    study = open_study(Job.load(max((out / "sweep" / ".jobs").glob("*.json"), key=lambda p: p.stat().st_mtime)))
    trials = [(t.datetime_complete - t.datetime_start).total_seconds() for t in study.get_trials()
              if t.state.name == "COMPLETE"]
    med = {"plain": statistics.median(plain), "trial": statistics.median(trials),
           "command": statistics.median(command)}
    print(f"\n{args.rounds} rounds, {args.epochs} epoch(s) of {args.model} on {args.data} (medians):")
    print(f"  plain train() run     {med['plain']:7.2f} s")
    print(f"  sweep trial           {med['trial']:7.2f} s   (study start -> complete)")
    print(f"  sweep command         {med['command']:7.2f} s   (one trial, checks, study, best.json, summary)")
    print(f"  per-trial overhead    {med['trial'] - med['plain']:+7.2f} s   "
          f"({100 * (med['trial'] / med['plain'] - 1):+.1f}% of a run; aim: under 1 s)")
    print(f"  per-command overhead  {med['command'] - med['trial']:+7.2f} s")
    if not args.out:
        shutil.rmtree(out, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main_())
