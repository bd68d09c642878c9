"""``python -m core train | lr-find | label-issues``: the commands that train.

The train flags are generated from the rules on TrainConfig's fields (core.training.config),
so they are defined once. ``train --nproc N`` starts torchrun (core.training.distributed).
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import subprocess
import sys
import time
from pathlib import Path

from core import rulebook as rb
from core.cli.util import progress_bar
from core.errors import UserError
from core.rules import Param, add_flag
from core.training.config import FLAG_FIELDS, PARAMS, RESUME_FLAGS, TrainConfig, train_argv, train_flags

LABEL_ISSUE_TRAIN_FLAGS = ("recipe", "model", "epochs", "batch_size", "lr", "seed", "device", "workers", "corrections")


def register(sub) -> None:
    """The train, lr-find and label-issues subcommands."""
    t = sub.add_parser("train", help="train a model on a dataset with a recipe; writes a run directory")
    t.set_defaults(func=cmd_train)
    _add_train_flags(t)
    add_flag(t, "resume", Param(rb.RUN_DIR, "run directory to continue from its last.pt (only --device, --workers "
                                "and --nproc may be given with it)"))

    lr = sub.add_parser("lr-find", help="sweep the learning rate over a few hundred training steps; suggest one")
    lr.set_defaults(func=cmd_lr_find)
    _add_train_flags(lr)
    add_flag(lr, "steps", rb.LR_STEPS)
    add_flag(lr, "lr_start", rb.LR_START, default=rb.LR_START.default)
    add_flag(lr, "lr_end", rb.LR_END, default=rb.LR_END.default)
    add_flag(lr, "save", Param(rb.OUT_DIR, "folder for lr_find.csv/.json/.png (default: OUT/lr-find/<time>)"))

    li = sub.add_parser("label-issues", help="rank the training labels a K-fold run's out-of-fold predictions "
                                             "contradict (cleanlab); persons and images")
    li.set_defaults(func=cmd_label_issues)
    add_flag(li, "data", Param(rb.DATA_DIR, "competition train folder (or one folder per class)"), required=True)
    add_flag(li, "run", Param(rb.RUN_DIR, "a finished run with --folds K >= 2 on --data (default: train one)"))
    add_flag(li, "folds", Param(rb.FINDER_FOLDS.rule, rb.FINDER_FOLDS.help, default=rb.FINDER_FOLDS.default))
    add_flag(li, "out", Param(rb.OUT_CSV, "ranked persons (rank,path,person,field,given,suggested,value,score,"
                              "flagged,stems); the ranked images go beside it as <name>_images.csv"),
             default="suspects.csv", shown_default="suspects.csv")
    add_flag(li, "runs", Param(rb.OUT_DIR, "folder for the run trained without --run"), default="runs",
             shown_default="runs")
    add_flag(li, "truth", Param(rb.CSV_FILE, "a demo's label_noise.csv: report the recall of its planted persons "
                                "in the top 3x"))
    add_flag(li, "show", rb.SHOW, default=rb.SHOW.default)
    for name in LABEL_ISSUE_TRAIN_FLAGS:
        p = PARAMS[name]
        add_flag(li, name, Param(p.rule, p.help + " (for the run trained without --run)"), shown_default=None)


def _add_train_flags(parser: argparse.ArgumentParser) -> None:
    """One flag per TrainConfig field, with the help, type and rule its Param gives: the flags
    are defined once, on the field. Omitted flags parse as None (the config's default)."""
    for name, p in train_flags():
        add_flag(parser, name, p)


def _given(args) -> dict:
    return {k: getattr(args, k) for k in FLAG_FIELDS if getattr(args, k, None) is not None}


def _terminal_callbacks(first: str | None = None):
    """Train callbacks that draw progress on stderr (core itself never prints); ``first`` is
    printed before the trainer's first message, once the settings and the dataset were accepted."""
    from core.training import Callbacks

    class Terminal(Callbacks):
        def __init__(self):
            self.bar, self.first = None, first

        def on_message(self, text):
            if self.first:
                print(self.first, file=sys.stderr)
                self.first = None
            print(text, file=sys.stderr)

        def on_cache_progress(self, done, total):
            if done == 0 or self.bar is None:
                self.bar = progress_bar("images")
            self.bar(done, total)
            if done >= total:
                self.bar = None

        def on_epoch_start(self, fold, epoch, n_batches):
            self.bar = progress_bar(f"fold {fold} epoch {epoch + 1}")

        def on_batch_end(self, epoch, batch, n_batches, loss):
            self.bar(batch + 1, n_batches)

    return Terminal()


def cmd_train(args) -> int:
    from core.runs import read_status
    from core.training import train

    given = _given(args)
    if args.resume:
        extra = sorted(set(given) - set(RESUME_FLAGS))
        if extra:
            raise UserError(f"--resume continues {args.resume} with its own settings; remove "
                            + ", ".join("--" + k.replace("_", "-") for k in extra))
        nproc = _resumed_nproc(args.resume, given.get("nproc"))
        given = {"resume": args.resume, **{k: v for k, v in given.items() if k != "nproc"}}
    elif "data" not in given:
        raise UserError("train: --data is required (the dataset folder), or --resume RUN")
    else:
        nproc = given.get("nproc", 1)
    if nproc > 1 and "RANK" not in os.environ:
        return _torchrun(nproc, TrainConfig(**given))
    run_dir = train(TrainConfig(**given), callbacks=[_terminal_callbacks()])
    if os.environ.get("RANK", "0") != "0":
        return 0  # under torchrun only rank 0 reports
    status = read_status(run_dir)
    print(f"run: {run_dir}")
    if status.get("state") == "done":
        from core.metrics import TASKS_ABSENT, task_f1_text

        result = status.get("result", {})
        scope = result.get("scope", "validation")
        print(f"{scope} macro F1: {result.get('macro_f1', float('nan')):.4f}  "
              f"accuracy: {result.get('accuracy', float('nan')):.4f}")
        print(f"{scope} {task_f1_text(result['task_f1'])}" if "task_f1" in result else TASKS_ABSENT)
        return 0
    print(status.get("message", "stopped"))
    return 0


def _resumed_nproc(run: str, asked: int | None) -> int:
    """The process count a run was trained with; resuming needs the same."""
    from core.runs import read_config, run_path

    stored = int(read_config(run_path(run)).get("world_size", 1))
    if asked is not None and asked != stored:
        raise UserError(f"{run}: the run was trained by {stored} process(es); resume it with --nproc {stored} "
                        f"(got --nproc {asked}): each process's batches depend on the count")
    return stored


def _torchrun(nproc: int, cfg: TrainConfig) -> int:
    """Start ``nproc`` copies of this training under torchrun (PyTorch's own launcher) on this
    machine: the same settings, from the one argv builder, without --nproc (each copy finds
    its rank in the environment)."""
    from core.training.config import validate_config

    if cfg.resume:
        rest = ["train", "--resume", str(cfg.resume), "--device", cfg.device, "--workers", str(cfg.workers)]
    else:
        validate_config(cfg)  # bad input: one line and status 2 here, not N tracebacks from the copies
        rest = train_argv(dataclasses.replace(cfg, nproc=1), short=True)[3:]
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={nproc}",
               "-m", "core", *rest]
    print("starting: " + " ".join(["torchrun", *command[3:]]), file=sys.stderr)
    code = subprocess.run(command).returncode
    if code != 0:
        print(f"error: torchrun ended with status {code}: a process of the run failed (see above)", file=sys.stderr)
        return 1
    return 0


def cmd_lr_find(args) -> int:
    from core.training.lr_find import describe, lr_find, write_sweep

    given = _given(args)
    if "data" not in given:
        raise UserError("lr-find: --data is required (the dataset folder)")
    cfg = TrainConfig(**given)
    sweep = lr_find(cfg, steps=args.steps, lr_start=args.lr_start, lr_end=args.lr_end,
                    log=lambda text: print(text, file=sys.stderr), progress=progress_bar("lr sweep"),
                    cache_progress=progress_bar("images"))
    folder = Path(args.save) if args.save else Path(cfg.out) / "lr-find" / time.strftime("%Y%m%d-%H%M%S")
    paths = write_sweep(sweep, folder)
    print(describe(sweep))
    print(f"curve: {paths['csv']}")
    print(f"plot:  {paths['png']}" if paths["png"]
          else "plot:  none (matplotlib is not installed; the CSV has the curve)")
    return 0


def cmd_label_issues(args) -> int:
    from core.label_issues import finder_config, planted_recall, suspects_of
    from core.runs import read_status
    from core.training import train

    run = args.run
    if run is None:
        settings = {k: getattr(args, k) for k in LABEL_ISSUE_TRAIN_FLAGS}
        cfg = finder_config(args.data, rb.FINDER_FOLDS.default if args.folds is None else args.folds, out=args.runs,
                            **settings)
        run = train(cfg, callbacks=[_terminal_callbacks(
            first=f"training a {cfg.folds}-fold run for out-of-fold predictions of every image")])
        status = read_status(run)
        if status.get("state") != "done":
            raise UserError(f"{run}: the training did not finish ({status.get('message', 'stopped')}); "
                            f"pass it with --run once it is done")
    elif args.folds is not None:
        raise UserError("--folds applies to the run the finder trains; with --run the run's own folds are used")
    persons, images = suspects_of(run, args.data)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    persons.to_csv(out, index=False)
    images_out = out.with_name(f"{out.stem}_images{out.suffix or '.csv'}")
    images.to_csv(images_out, index=False)
    print(f"run: {run}")
    print(f"wrote {len(persons)} ranked persons to {out} and {len(images)} ranked images to {images_out}")
    print(f"flagged by cleanlab: {int(persons['flagged'].sum())} persons, {int(images['flagged'].sum())} images")
    top = persons.head(args.show)
    if len(top):
        print(top[["rank", "person", "field", "given", "suggested", "score"]].to_string(index=False,
                                                                                        float_format="%.4f"))
    if args.truth:
        r = planted_recall(persons, args.truth)
        print(f"planted persons among the top {r['top']} suspects: {r['found']} of {r['planted']} "
              f"(recall {r['recall']:.2f}; right field for {r['field_right']})"
              + (f"; missed: {', '.join(r['missed'])}" if r["missed"] else ""))
    return 0
