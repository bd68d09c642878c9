"""``python -m core sweep``: an Optuna study whose trials are training runs (core.sweep).

Every train flag is a sweep flag too and fixes that setting for every trial, except that
``--workers`` counts the sweep's worker processes here (the train flag's image workers are
``--train-workers``) and ``--out`` is the sweep folder (trials' runs go to OUT/runs).
"""

from __future__ import annotations

import os
import sys

from core import rulebook as rb
from core.errors import UserError
from core.rules import Param, add_flag
from core.training.config import PARAMS, train_flags

OWN = ("workers", "out")  # train flags whose names the sweep uses for its own settings


def register(sub) -> None:
    s = sub.add_parser("sweep", help="search the recipe and training settings with Optuna: one training run per "
                                     "trial, chosen by the validation macro F1; see docs/sweep.md")
    s.set_defaults(func=cmd_sweep)
    add_flag(s, "out", rb.SWEEP_DIR, required=True)
    add_flag(s, "trials", rb.SWEEP_TRIALS, default=rb.SWEEP_TRIALS.default)
    add_flag(s, "space", rb.SWEEP_SPACE, shown_default="the default space (docs/sweep.md)")
    add_flag(s, "storage", rb.SWEEP_STORAGE)
    add_flag(s, "study", rb.SWEEP_STUDY, default=rb.SWEEP_STUDY.default)
    add_flag(s, "workers", rb.SWEEP_WORKERS, default=rb.SWEEP_WORKERS.default)
    add_flag(s, "pruner", rb.SWEEP_PRUNER, default=rb.SWEEP_PRUNER.default)
    add_flag(s, "prune_startup", rb.PRUNE_STARTUP, default=rb.PRUNE_STARTUP.default)
    add_flag(s, "prune_warmup", rb.PRUNE_WARMUP, default=rb.PRUNE_WARMUP.default)
    for name, p in train_flags():
        if name not in OWN:
            add_flag(s, name, Param(p.rule, p.help + " (fixed for every trial)", p.label, p.default, p.optional),
                     shown_default=p.default)
    p = PARAMS["workers"]
    add_flag(s, "train_workers", Param(p.rule, "each trial's " + p.help + " (train's --workers)"),
             shown_default=p.default)


def given_train_flags(args) -> dict:
    """TrainConfig fields the command fixes for every trial."""
    given = {name: getattr(args, name) for name, _ in train_flags()
             if name not in OWN and getattr(args, name, None) is not None}
    if args.train_workers is not None:
        given["workers"] = args.train_workers
    return given


def cmd_sweep(args) -> int:
    from core.sweep import open_study, prepare, read_best, storage_label, write_best
    from core.sweep_workers import run_worker, spawn

    if "RANK" in os.environ:
        raise UserError("sweep: start it without torchrun; give --nproc N and each trial runs under torchrun (only "
                        "the sweep's worker talks to the study; the trial's processes never open it)")
    given = given_train_flags(args)
    if "data" not in given:
        raise UserError("sweep: --data is required (the dataset folder every trial trains on)")
    job, notes = prepare(given, args.out, args.trials, args.space, args.storage, args.study, args.workers,
                         args.pruner, args.prune_startup, args.prune_warmup)
    for note in notes:
        print(f"note: {note}", file=sys.stderr)
    searched = [name for name, spec in job.space.items() if "value" not in spec]
    print(f"sweep {job.dir}: study {job.study!r} in {storage_label(job.storage)}; adding {job.trials} trial(s) "
          f"with {job.workers} worker(s); searching {', '.join(searched)}", flush=True)
    try:
        if job.workers > 1:
            code = spawn(job)
        else:
            run_worker(job)
            code = 0
    except KeyboardInterrupt:  # Ctrl-C: every worker has ended; say where the study stands, then exit 130
        write_best(open_study(job), job)  # trials.json with the interrupted trials' end
        _summary(job, read_best(job.dir), 0)
        print("interrupted: the trials that were running are marked failed; run the same command again to add "
              "more", file=sys.stderr)
        return 130
    return _summary(job, read_best(job.dir), code)


def _summary(job, best: dict | None, code: int) -> int:
    from core.sweep import open_study, trial_rows

    rows = trial_rows(open_study(job), job.batch)
    counts = {}
    for row in rows:
        counts[row["state"]] = counts.get(row["state"], 0) + 1
    print(f"added {len(rows)} trial(s): " + (", ".join(f"{n} {s}" for s, n in sorted(counts.items())) or "none"))
    if best is not None:
        print(f"best: trial {best['trial']}, val macro F1 {best['value']:.4f}; {job.dir / 'best.json'}")
        print(f"repeat it: {best['command']}")
    else:
        print("no trial completed yet")
    if code != 0:
        print(f"error: a worker process ended with status {code} (see its lines above)", file=sys.stderr)
        return 1
    return 0
