"""``python -m core train | lr-find | label-issues``: the commands that train.

The train flags are generated from TrainConfig's field metadata (core.training.config), so
they are defined once. ``train --nproc N`` starts torchrun (core.training.distributed).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

from core.cli_util import progress_bar
from core.errors import UserError


def add_commands(sub, wanted=lambda name: True) -> None:
    """The train, lr-find and label-issues subcommands; flags only for those ``wanted``."""
    t = sub.add_parser("train", help="train a model on a dataset with a recipe; writes a run directory")
    t.set_defaults(func=cmd_train)
    if wanted("train"):
        _add_train_flags(t)
        t.add_argument("--resume", help="run directory to continue from its last.pt (only --device, --workers "
                                        "and --nproc may be given with it)")

    lr = sub.add_parser("lr-find", help="sweep the learning rate over a few hundred training steps; suggest one")
    lr.set_defaults(func=cmd_lr_find)
    if wanted("lr-find"):
        _add_train_flags(lr)
        lr.add_argument("--steps", type=int, default=None,
                        help="optimiser steps in the sweep (default: 5 epochs' worth, between 20 and 300)")
        lr.add_argument("--lr-start", type=float, default=1e-7, help="first learning rate (default: 1e-7)")
        lr.add_argument("--lr-end", type=float, default=10.0, help="last learning rate (default: 10)")
        lr.add_argument("--save", default=None, help="folder for lr_find.csv/.json/.png (default: OUT/lr-find/<time>)")

    li = sub.add_parser("label-issues", help="rank the training labels a K-fold run's out-of-fold predictions "
                                             "contradict (cleanlab); persons and images")
    li.set_defaults(func=cmd_label_issues)
    if wanted("label-issues"):
        li.add_argument("--data", required=True, help="competition train folder (or one folder per class)")
        li.add_argument("--run", default=None, help="a finished run with --folds K >= 2 on --data (default: train one)")
        li.add_argument("--folds", type=int, default=None, help="folds of the run trained without --run (default: 3)")
        li.add_argument("--out", default="suspects.csv",
                        help="ranked persons (rank,path,person,field,given,suggested,value,score,flagged,stems); "
                             "the ranked images go beside it as <name>_images.csv")
        li.add_argument("--runs", default="runs", help="folder for the run trained without --run")
        li.add_argument("--truth", default=None,
                        help="a demo's label_noise.csv: report the recall of its planted persons in the top 3x")
        li.add_argument("--show", type=int, default=10, help="suspects printed (default: 10)")
        _add_label_issue_flags(li)


def _add_train_flags(parser: argparse.ArgumentParser) -> None:
    """One flag per TrainConfig field, with the help, type and default its metadata gives
    (core.training.config.opt): the flags are defined once, there."""
    from core.training.config import TrainConfig, flag_name, train_flags

    default = TrainConfig()
    for name, meta in train_flags():
        value = getattr(default, name)
        shown = f" (default: {value})" if value not in (None, "") and meta["type"] is not bool else ""
        if meta["type"] is bool:
            shown = f" (default: {'on' if value else 'off'})"
            parser.add_argument(flag_name(name), action=argparse.BooleanOptionalAction, default=None,
                                help=meta["help"] + shown)
        else:
            parser.add_argument(flag_name(name), type=meta["type"], default=None, help=meta["help"] + shown)


def _terminal_callbacks():
    """Train callbacks that draw progress on stderr (core itself never prints)."""
    from core.training import Callbacks

    class Terminal(Callbacks):
        def __init__(self):
            self.bar = None

        def on_message(self, text):
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
    from core.training import TrainConfig, train
    from core.training.config import FLAG_FIELDS, RESUME_FLAGS

    given = {k: getattr(args, k) for k in FLAG_FIELDS if getattr(args, k) is not None}
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
        return _torchrun(nproc, TrainConfig(**given), args.argv)
    run_dir = train(TrainConfig(**given), callbacks=[_terminal_callbacks()])
    if os.environ.get("RANK", "0") != "0":
        return 0  # under torchrun only rank 0 reports
    status = read_status(run_dir)
    print(f"run: {run_dir}")
    if status.get("state") == "done":
        result = status.get("result", {})
        print(f"{result.get('scope', 'validation')} macro F1: {result.get('macro_f1', float('nan')):.4f}  "
              f"accuracy: {result.get('accuracy', float('nan')):.4f}")
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


def _torchrun(nproc: int, cfg, argv: list[str]) -> int:
    """Start ``nproc`` copies of this command under torchrun (PyTorch's own launcher) on this
    machine; the same flags, without --nproc (each copy finds its rank in the environment)."""
    from core.training.config import validate_config

    if not cfg.resume:
        validate_config(cfg)  # bad input: one line and status 2 here, not N tracebacks from the copies
    rest, skip = [], False
    for a in argv:
        if skip:
            skip = False
        elif a == "--nproc":
            skip = True
        elif not a.startswith("--nproc="):
            rest.append(a)
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={nproc}",
               "-m", "core", *rest]
    print("starting: " + " ".join(["torchrun", *command[3:]]), file=sys.stderr)
    code = subprocess.run(command).returncode
    if code != 0:
        print(f"error: torchrun ended with status {code}: a process of the run failed (see above)", file=sys.stderr)
        return 1
    return 0


def cmd_lr_find(args) -> int:
    from core.training import TrainConfig
    from core.training.config import FLAG_FIELDS
    from core.training.lr_find import describe, lr_find, write_sweep

    given = {k: getattr(args, k) for k in FLAG_FIELDS if getattr(args, k) is not None}
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
        cfg = finder_config(args.data, 3 if args.folds is None else args.folds, out=args.runs, **settings)
        print(f"training a {cfg.folds}-fold run for out-of-fold predictions of every image", file=sys.stderr)
        run = train(cfg, callbacks=[_terminal_callbacks()])
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


LABEL_ISSUE_TRAIN_FLAGS = ("recipe", "model", "epochs", "batch_size", "lr", "seed", "device", "workers", "corrections")


def _add_label_issue_flags(parser: argparse.ArgumentParser) -> None:
    """The train settings the finder's own K-fold run takes, with TrainConfig's help (said once there)."""
    from core.training.config import flag_name, train_flags

    for name, meta in train_flags():
        if name in LABEL_ISSUE_TRAIN_FLAGS:
            parser.add_argument(flag_name(name), type=meta["type"], default=None,
                                help=meta["help"] + " (for the run trained without --run)")
