"""``python -m core``: the command line. Every step of the explorer can be run from here.

Bad input ends with one line on stderr (``error: <path or value>: <rule>``) and exit status 2,
never a traceback.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from core.errors import UserError


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line and status 2 like every other bad input."""

    def error(self, message: str):  # noqa: D401 - argparse API
        raise UserError(f"{self.prog}: {message} (see --help)")


def _progress_bar(label: str):
    """A terminal progress callback(done, total) that redraws one line on stderr."""
    start = time.monotonic()

    def update(done: int, total: int) -> None:
        frac = done / total if total else 1.0
        elapsed = time.monotonic() - start
        eta = elapsed / frac - elapsed if frac > 0 else 0.0
        bar = "#" * int(frac * 30)
        sys.stderr.write(f"\r{label} [{bar:<30}] {done}/{total} {elapsed:5.1f}s eta {eta:5.1f}s")
        if done >= total:
            sys.stderr.write("\n")
        sys.stderr.flush()

    return update


# ----------------------------------------------------------------------------- commands

def cmd_demo(args) -> int:
    from core.demo import make_demo

    try:
        summary = make_demo(args.out, people=args.people, seed=args.seed, eval_people=args.eval_people,
                            progress=_progress_bar("demo"))
    except ValueError as exc:  # the generator's own argument checks
        raise UserError(str(exc)) from None
    print(f"wrote demo dataset to {Path(args.out).resolve()}: "
          f"{summary['train_images']} train images, {summary['eval_images']} eval images")
    print(f"  train: {Path(args.out) / 'train'}\n  eval:  {Path(args.out) / 'eval'}")
    return 0


def cmd_info(args) -> int:
    from core.dataset import scan

    ds = scan(args.data, corrections=_corrections_arg(args.corrections))
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
    table = cached_faces(ds.df["path"], progress=_progress_bar("faces"), workers=args.workers)
    out = write_faces_csv(table, args.out)
    rates = detection_rates(table, ds.df)
    print(f"wrote {len(table)} rows to {out}")
    for r in rates.itertuples():
        print(f"  faces found ({r.group}): {r.rate:.1%} of {r.images}")
    return 0


def _corrections_arg(value: str | None) -> str | None:
    if value == "reported":
        from core.dataset import REPORTED_CORRECTIONS
        return str(REPORTED_CORRECTIONS)
    return value


# ----------------------------------------------------------------------------- parser

def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="python -m core", description="Mask-status dataset explorer and trainer (command line).")
    sub = p.add_subparsers(dest="command", required=True, parser_class=_Parser)

    d = sub.add_parser("demo", help="write the synthetic demo dataset (competition layout)")
    d.add_argument("--out", required=True, help="folder to write train/ and eval/ into")
    d.add_argument("--people", type=int, default=270, help="train persons (270 = a tenth of the real data)")
    d.add_argument("--eval-people", type=int, default=None, help="eval persons (default 30%% of --people)")
    d.add_argument("--seed", type=int, default=0)
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
    return p


def main(argv: list[str] | None = None) -> int:
    try:
        args = build_parser().parse_args(argv)
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
