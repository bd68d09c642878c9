"""``python -m core health``: duplicates, duplicated persons, train/eval overlap and bad photos,
found before training (core.health), cached per dataset; health.csv has one row per finding."""

from __future__ import annotations

from core import rulebook as rb
from core.cli.util import progress_bar
from core.rules import Param, add_flag


def register(sub) -> None:
    h = sub.add_parser("health", help="find duplicates, duplicated persons, train/eval overlap and dark, light, "
                                      "blurred, blank or odd-sized photos (cleanvision + per-person checks), cached; "
                                      "write issue,path,person,score,group")
    add_flag(h, "data", Param(rb.DATA_DIR, "dataset folder"), required=True)
    add_flag(h, "eval", Param(rb.EVAL_DIR, "eval folder: its photos that duplicate a training photo are "
                                           "train_eval_overlap"))
    add_flag(h, "out", Param(rb.OUT_CSV, "the findings to write"), default="health.csv", shown_default="health.csv")
    add_flag(h, "workers", rb.WORKERS)
    h.set_defaults(func=cmd_health)


def cmd_health(args) -> int:
    from core.health import check_health, write_health_csv

    result = check_health(args.data, args.eval, progress=progress_bar("health"), workers=args.workers)
    out = write_health_csv(result.findings, args.out)
    looked = f"{result.images} images" + (f" and {result.eval_images} eval images" if args.eval else "")
    print(f"wrote {len(result.findings)} findings on {looked} to {out}" + (" (cached)" if result.cached else ""))
    labels = rb.HEALTH_ISSUE
    width = max(len(labels.label(i)) for i in labels.values)
    for issue, n in result.counts().items():
        print(f"  {labels.label(issue):<{width}}  {issue:<18}  {n:>5}")
    for note in result.left_out:
        print(f"  {note}")
    if result.unreadable:
        print(f"  {len(result.unreadable)} file(s) could not be decoded and were skipped, e.g. {result.unreadable[0]}")
    return 0
