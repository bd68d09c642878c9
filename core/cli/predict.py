"""``python -m core predict | evaluate``: a submission from finished runs, and its score."""

from __future__ import annotations

import sys

from core import rulebook as rb
from core.cli.util import progress_bar
from core.rules import Param, PathRule, add_flag


def register(sub) -> None:
    pr = sub.add_parser("predict", help="predict a folder with a run's best model (or an ensemble); writes a CSV")
    add_flag(pr, "run", Param(rb.RUN_DIR, "run directory; repeat it (--run A --run B) for an ensemble: the mean of "
                              "the runs' probabilities, each run preprocessing with its own recipe"),
             required=True, action="append")
    add_flag(pr, "data", Param(rb.DATA_DIR, "eval folder (info.csv + images/) or a folder of images"), required=True)
    add_flag(pr, "out", Param(rb.OUT_CSV, "the submission to write"), default="submission.csv",
             shown_default="submission.csv")
    add_flag(pr, "device", Param(rb.DEVICE, "where the model runs"), default="auto", shown_default="auto")
    add_flag(pr, "batch_size", rb.PREDICT_BATCH, default=rb.PREDICT_BATCH.default)
    add_flag(pr, "workers", rb.WORKERS)
    add_flag(pr, "tta", rb.TTA_PARAM, default="auto")
    pr.set_defaults(func=cmd_predict)

    e = sub.add_parser("evaluate", help="score a submission against the true answers")
    add_flag(e, "pred", Param(PathRule(kind="file", what="submission"), "submission CSV (ImageID,ans)"),
             required=True)
    add_flag(e, "gt", Param(PathRule(kind="file", what="answers"), "true answers CSV (ImageID,ans)"),
             required=True)
    e.set_defaults(func=cmd_evaluate)


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
    from core.metrics import TASKS
    from core.predict import evaluate

    result = evaluate(args.pred, args.gt)
    print(f"images:    {result['images']}")
    print(f"accuracy:  {result['accuracy']:.4f}")
    print(f"macro F1:  {result['macro_f1']:.4f}")
    for task in TASKS:  # each over its own values, from the same 18-class answers
        print(f"{task + ' F1:':<10} {result['task_f1'][task]:.4f}")
    table = result["per_class"]
    table = table[(table["support"] > 0) | (table["predicted"] > 0)]
    width = max(len(n) for n in table["name"])
    print(f"  {'class':>5}  {'name':<{width}}  precision  recall      f1  support")
    for r in table.itertuples():
        print(f"  {r[1]:>5}  {r.name:<{width}}  {r.precision:9.3f}  {r.recall:6.3f}  {r.f1:6.3f}  {r.support:>7}")
    return 0
