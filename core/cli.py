"""``python -m core``: the command line. Every step of the explorer can be run from here.

Bad input ends with one line on stderr (``error: <path or value>: <rule>``) and exit status 2,
never a traceback.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from core.cli_train import add_commands
from core.cli_util import Parser, corrections_arg, progress_bar
from core.errors import UserError


# ----------------------------------------------------------------------------- commands

def cmd_demo(args) -> int:
    from core.demo import make_demo

    try:
        summary = make_demo(args.out, people=args.people, seed=args.seed, eval_people=args.eval_people,
                            progress=progress_bar("demo"), workers=args.workers,
                            label_noise=args.label_noise)
    except ValueError as exc:  # the generator's own argument checks
        raise UserError(str(exc)) from None
    print(f"wrote demo dataset to {Path(args.out).resolve()}: "
          f"{summary['train_images']} train images, {summary['eval_images']} eval images")
    print(f"  train: {Path(args.out) / 'train'}\n  eval:  {Path(args.out) / 'eval'}")
    planted = summary["label_noise"]
    if summary["label_noise_file"]:
        kinds = ", ".join(f"{n} {kind}" for kind, n in planted.items() if n)
        print(f"  planted label errors: {sum(planted.values())} of {summary['people']} train persons ({kinds}); "
              f"truth: {summary['label_noise_file']}, corrections: {summary['label_noise_corrections']}")
    return 0


def cmd_info(args) -> int:
    from core.dataset import scan

    ds = scan(args.data, corrections=corrections_arg(args.corrections))
    s = ds.summary()
    print(f"dataset: {s['root']}")
    print(f"layout:  {s['layout']}")
    print(f"images:  {s['images']}")
    if s["persons"] is not None:
        print(f"persons: {s['persons']}")
    print(f"classes: {s['classes']} with labels" + ("" if ds.has_labels else " (no labels: answers unknown)"))
    if ds.skipped_hidden:
        print(f"hidden files skipped: {s['hidden_files_skipped']} (e.g. AppleDouble ._* files)")
    if ds.has_labels:
        counts = ds.df[ds.df.label >= 0].groupby("label").size()
        width = max(len(n) for n in ds.class_names)
        for label, n in counts.items():
            print(f"  {label:>3}  {ds.class_names[label]:<{width}}  {n:>6}")
    if ds.df["corrected"].any():
        print(f"corrected rows: {int(ds.df['corrected'].sum())}")
    print(f"problems: {len(ds.problems)}")
    for p in ds.problems:
        print(f"  {p}")
    return 0


def cmd_faces(args) -> int:
    from core.dataset import scan
    from core.faces import cached_faces, detection_rates, write_faces_csv

    ds = scan(args.data)
    table = cached_faces(ds.df["path"], progress=progress_bar("faces"), workers=args.workers)
    out = write_faces_csv(table, args.out)
    rates = detection_rates(table, ds.df)
    print(f"wrote {len(table)} rows to {out}")
    for r in rates.itertuples():
        print(f"  faces found ({r.group}): {r.rate:.1%} of {r.images}")
    return 0


def cmd_predict(args) -> int:
    import pandas as pd

    from core.predict import predict

    out = predict(args.run, args.data, args.out, device=args.device, batch_size=args.batch_size,
                  progress=progress_bar("images"), log=lambda text: print(text, file=sys.stderr), workers=args.workers,
                  tta=args.tta)
    ensemble = f" (mean probabilities of {len(args.run)} runs)" if len(args.run) > 1 else ""
    print(f"wrote {len(pd.read_csv(out))} predictions to {out}{ensemble}")
    return 0


def cmd_evaluate(args) -> int:
    from core.predict import evaluate

    result = evaluate(args.pred, args.gt)
    print(f"images:   {result['images']}")
    print(f"accuracy: {result['accuracy']:.4f}")
    print(f"macro F1: {result['macro_f1']:.4f}")
    table = result["per_class"]
    table = table[(table["support"] > 0) | (table["predicted"] > 0)]
    width = max(len(n) for n in table["name"])
    print(f"  {'class':>5}  {'name':<{width}}  precision  recall      f1  support")
    for r in table.itertuples():
        print(f"  {r[1]:>5}  {r.name:<{width}}  {r.precision:9.3f}  {r.recall:6.3f}  {r.f1:6.3f}  {r.support:>7}")
    return 0


# ----------------------------------------------------------------------------- parser

def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The parser. The flags of predict, train, lr-find and label-issues are generated from
    modules that import torch (seconds): with ``command`` given, only that command gets its
    flags (the others are listed by name), so ``demo``, ``info`` or ``--help`` start at once."""
    def wanted(name: str) -> bool:
        return command is None or command == name

    p = Parser(prog="python -m core", description="Mask-status dataset explorer and trainer (command line).")
    sub = p.add_subparsers(dest="command", required=True, parser_class=Parser)

    d = sub.add_parser("demo", help="write the synthetic demo dataset (competition layout)")
    d.add_argument("--out", required=True, help="folder to write train/ and eval/ into")
    d.add_argument("--people", type=int, default=270, help="train persons (270 = a tenth of the real data)")
    d.add_argument("--eval-people", type=int, default=None, help="eval persons (default 30%% of --people)")
    d.add_argument("--seed", type=int, default=0)
    d.add_argument("--workers", type=int, default=None, help="drawing processes (default: every available core)")
    d.add_argument("--label-noise", type=float, default=0.0, metavar="RATE",
                   help="share of train persons (0 to 0.5) given a wrong label on purpose: swapped normal/"
                        "incorrect_mask photos, wrong gender or age group; the truth goes to "
                        "OUT/label_noise.csv and OUT/label_noise_corrections.csv (a --corrections file)")
    d.set_defaults(func=cmd_demo)

    i = sub.add_parser("info", help="detect the layout, count images/persons/classes, list problems")
    i.add_argument("--data", required=True)
    i.add_argument("--corrections", default=None,
                   help="label-corrections CSV (person,field,value), or 'reported' for the shipped list")
    i.set_defaults(func=cmd_info)

    f = sub.add_parser("faces", help="detect faces (Haar cascade), cached; write path,x,y,w,h")
    f.add_argument("--data", required=True)
    f.add_argument("--out", default="faces.csv")
    f.add_argument("--workers", type=int, default=None, help="processes (default: one per core)")
    f.set_defaults(func=cmd_faces)

    pr = sub.add_parser("predict", help="predict a folder with a run's best model (or an ensemble); writes a CSV")
    if wanted("predict"):
        _add_predict_flags(pr)
    pr.set_defaults(func=cmd_predict)

    e = sub.add_parser("evaluate", help="score a submission against the true answers")
    e.add_argument("--pred", required=True, help="submission CSV (ImageID,ans)")
    e.add_argument("--gt", required=True, help="true answers CSV (ImageID,ans)")
    e.set_defaults(func=cmd_evaluate)

    add_commands(sub, wanted)
    return p


def _add_predict_flags(pr: argparse.ArgumentParser) -> None:
    from core.predict import TTA_CHOICES, TTA_HELP

    pr.add_argument("--run", required=True, action="append",
                    help="run directory; repeat it (--run A --run B) for an ensemble: the mean of the runs' "
                         "probabilities, each run preprocessing with its own recipe")
    pr.add_argument("--data", required=True, help="eval folder (info.csv + images/) or a folder of images")
    pr.add_argument("--out", default="submission.csv")
    pr.add_argument("--device", default="auto", help="auto | cpu | cuda")
    pr.add_argument("--batch-size", type=int, default=128)
    pr.add_argument("--workers", type=int, default=None, help="processes preparing images (default: every core)")
    pr.add_argument("--tta", default="auto", choices=TTA_CHOICES, help=TTA_HELP.replace("%", "%%"))


def main(argv: list[str] | None = None) -> int:
    try:
        words = list(sys.argv[1:] if argv is None else argv)
        args = build_parser(next((w for w in words if not w.startswith("-")), "")).parse_args(words)
        args.argv = list(sys.argv[1:] if argv is None else argv)
        return args.func(args)
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except (FileNotFoundError, PermissionError, IsADirectoryError, NotADirectoryError) as exc:
        print(f"error: {exc.filename}: {exc.strerror}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
