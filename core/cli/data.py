"""``python -m core demo | info | faces``: the commands that write, read and look at a dataset."""

from __future__ import annotations

from pathlib import Path

from core import rulebook as rb
from core.cli.util import corrections_arg, progress_bar
from core.recipe import recipe_params
from core.rules import Param, add_flag


def register(sub) -> None:
    d = sub.add_parser("demo", help="write the synthetic demo dataset (competition layout)")
    add_flag(d, "out", Param(rb.OUT_DIR, "folder to write train/ and eval/ into (a new folder, or a previous "
                             "demo's)"), required=True)
    add_flag(d, "people", rb.DEMO_PEOPLE, default=rb.DEMO_PEOPLE.default)
    add_flag(d, "eval_people", rb.DEMO_EVAL_PEOPLE)
    add_flag(d, "seed", rb.SEED, default=0)
    add_flag(d, "workers", rb.WORKERS)
    add_flag(d, "label_noise", rb.LABEL_NOISE, default=0.0, metavar="RATE")
    add_flag(d, "defects", rb.DEFECTS, default=0.0, metavar="RATE")
    d.set_defaults(func=cmd_demo)

    i = sub.add_parser("info", help="detect the layout, count images/persons/classes, list problems")
    add_flag(i, "data", Param(rb.DATA_DIR, "dataset folder"), required=True)
    add_flag(i, "corrections", Param(rb.CORRECTIONS, rb.CORRECTIONS_HELP))
    i.set_defaults(func=cmd_info)

    f = sub.add_parser("faces", help="detect faces (MTCNN and/or Haar), cached; write path,x,y,w,h,source, "
                       "confidence and landmarks")
    add_flag(f, "data", Param(rb.DATA_DIR, "dataset folder"), required=True)
    add_flag(f, "out", Param(rb.OUT_CSV, "the face table to write"), default="faces.csv", shown_default="faces.csv")
    add_flag(f, "detector", recipe_params()["crop.detector"], default=rb.DEFAULT_DETECTOR)
    add_flag(f, "workers", rb.WORKERS)
    f.set_defaults(func=cmd_faces)


def cmd_demo(args) -> int:
    from core.demo import make_demo

    summary = make_demo(args.out, people=args.people, seed=args.seed, eval_people=args.eval_people,
                        progress=progress_bar("demo"), workers=args.workers, label_noise=args.label_noise,
                        defect_rate=args.defects)
    out = Path(args.out)
    print(f"wrote demo dataset to {out.resolve()}: "
          f"{summary['train_images']} train images, {summary['eval_images']} eval images")
    print(f"  train: {out / 'train'}\n  eval:  {out / 'eval'}")
    planted = summary["label_noise"]
    if summary["label_noise_file"]:
        kinds = ", ".join(f"{n} {kind}" for kind, n in planted.items() if n)
        print(f"  planted label errors: {sum(planted.values())} of {summary['people']} train persons ({kinds}); "
              f"truth: {summary['label_noise_file']}, corrections: {summary['label_noise_corrections']}")
    if summary["defects_file"]:
        faults = summary["defects"]
        kinds = ", ".join(f"{n} {kind}" for kind, n in faults.items() if n)
        print(f"  planted data faults: {sum(faults.values())} ({kinds}); truth: {summary['defects_file']}")
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
    from core.faces import detection_rates, face_table, source_shares, write_faces_csv

    ds = scan(args.data)
    table = face_table(ds.df, args.detector, progress=progress_bar("faces"), workers=args.workers)
    out = write_faces_csv(table, args.out)
    rates = detection_rates(table, ds.df)
    print(f"wrote {len(table)} rows to {out} (detector: {args.detector})")
    if note := ds.problems_note():
        print(f"  {note}")
    for r in rates.itertuples():
        print(f"  faces found ({r.group}): {r.rate:.1%} of {r.images}")
    for r in source_shares(table).itertuples():
        print(f"  boxed by {r.source}: {r.share:.1%} ({r.images})")
    return 0
