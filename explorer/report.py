"""What the Train and Runs pages show about one run directory: a component, not a page.

Everything comes from what the trainer wrote (read through core.runs): status.json for
progress, metrics.jsonl for the curves and the last epoch, summary.json, the CSV reports and
the checkpoints. Nothing about a run is kept only in memory. Downloads and the submission are
in :mod:`explorer.submission`.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import streamlit as st

from core import launch
from core.errors import UserError
from core.label_issues import baseline_run
from core.runs import Scores, fold_count, metrics_frame, read_config, read_summary, read_table, run_scores
from explorer import charts, mistakes
from explorer.submission import show_checkpoint_download, show_submission

STATE_ICONS = {"done": ":material/check_circle:", "running": ":material/pending:", "starting": ":material/pending:",
               "stopped": ":material/stop_circle:", "failed": ":material/error:"}  # for markdown
F1_FORMAT = {c: st.column_config.NumberColumn(format="%.4f")
             for c in ("accuracy", "macro F1", "val loss", "train loss")}


def duration(seconds) -> str:
    if seconds is None:
        return "—"
    seconds = int(round(float(seconds)))
    return f"{seconds // 60} min {seconds % 60:02d} s" if seconds >= 60 else f"{seconds} s"


def score(value: float | None) -> str:
    return "—" if value is None or pd.isna(value) else f"{value:.4f}"


def show_progress(now: launch.RunState, epochs_hint: int | None = None) -> None:
    """A progress bar with fold, epoch, batch and time left, from status.json."""
    s = now.status
    if now.state == "starting" or not s:
        st.progress(0.0, text="Starting the training process (loading Python and torch)…")
        return
    message = str(s.get("message", ""))
    if message.startswith("preparing"):
        st.progress(0.0, text=f"Preparing images ({message.removeprefix('preparing images').strip() or '…'}); "
                              "decoded once per recipe, then cached")
        return
    epochs = int(s.get("epochs") or epochs_hint or 1)
    epoch, batch, n_batches = int(s.get("epoch") or 0), int(s.get("batch") or 0), int(s.get("n_batches") or 0)
    fold = int(s.get("fold") or 0)
    n_models = max(1, int(s.get("n_models") or 0) or (fold_count(now.run_dir) if now.run_dir else 1))
    frac = ((fold * epochs + max(epoch - 1, 0)) * n_batches + batch) / max(1, n_models * epochs * n_batches)
    parts = ([f"fold {fold + 1}/{n_models}"] if n_models > 1 else []) + [
        f"epoch {epoch}/{epochs}", f"batch {batch}/{n_batches}", f"about {duration(s.get('eta_s'))} left"]
    st.progress(min(max(frac, 0.0), 1.0), text=" · ".join(parts))


def show_failure(now: launch.RunState) -> None:
    st.error(f"Training failed: {now.message or 'no message'}")
    if now.log_tail:
        with st.expander("Log (last lines)"):
            st.code(now.log_tail, language="text")


def show_curves(m: pd.DataFrame, key: str, color: str | None = None) -> None:
    if m.empty:
        st.caption("No finished epoch yet: the curves appear after the first one.")
        return
    loss, f1 = charts.curve_figures(m, color)
    c1, c2 = st.columns(2)
    c1.plotly_chart(loss, key=f"{key}.loss")
    c2.plotly_chart(f1, key=f"{key}.f1")


def picked_on(scores: Scores) -> str:
    """How the reported score was chosen, in words: the honest label of a best-epoch score."""
    epochs = ", ".join(map(str, scores.best_epochs)) or "—"
    if len(scores.best_epochs) > 1:
        return f"best epochs {epochs}, each picked on its fold's validation"
    return f"best epoch {epochs}, picked on validation"


def show_scores(scores: Scores, summary: dict) -> None:
    """The best-epoch score, labelled as picked on validation, beside the last epoch's."""
    scope = scores.scope.capitalize()
    c = st.columns(4)
    c[0].metric(f"{scope} macro F1, best epoch", score(scores.best_f1),
                help="The checkpoint whose epoch scored best on these same held-out persons, so this is "
                     "optimistic; the last epoch beside it was not picked on anything."
                     + (" Scored with flip TTA when the recipe flips (as predict does); the per-epoch values "
                        "in metrics.jsonl are without it." if scores.final else ""))
    c[0].caption(picked_on(scores))
    last = ", ".join(map(str, sorted(set(scores.last_epochs)))) or "—"
    c[1].metric(f"{scope} macro F1, last epoch", score(scores.last_f1),
                help="From metrics.jsonl" + (": the mean of the folds' last epochs." if len(scores.last_epochs) > 1
                                             else "."))
    c[1].caption(f"epoch {last}, nothing picked on it")
    c[2].metric(f"{scope} accuracy" + (", best epoch" if scores.final else ", last epoch"), score(scores.accuracy))
    c[3].metric("Training time", duration(summary.get("train_seconds")))


def metrics_table(m: pd.DataFrame) -> pd.DataFrame:
    """Final and best (by macro F1) epoch of each fold."""
    rows = []
    for fold, part in m.groupby("fold"):
        for which, row in (("final epoch", part.iloc[-1]), ("best epoch", part.loc[part["macro_f1"].idxmax()])):
            rows.append({"": which, "fold": int(fold), "epoch": int(row["epoch"]), "accuracy": row["accuracy"],
                         "macro F1": row["macro_f1"], "val loss": row["val_loss"], "train loss": row["train_loss"]})
    table = pd.DataFrame(rows)
    return table.drop(columns="fold") if table["fold"].nunique() == 1 else table


def show_header(run: Path, cfg: dict) -> None:
    """The run's path, model and state; its failure or live progress."""
    now = launch.run_state(run)
    message = now.message.removeprefix(f"{now.state}: ").removeprefix(f"{now.state}; ")  # no "done · done: ..."
    st.caption(f"`{run}` · {cfg.get('model', '?')} · {STATE_ICONS.get(now.state, '')} {now.state}"
               + (f" · {message}" if message and now.state != "failed" else ""))
    if now.state == "failed":
        show_failure(now)
    elif now.live:
        show_progress(now)


def show_reports(run: Path, scope: str, names: list[str], key: str) -> None:
    """Confusion matrix (click a cell: its images), per-class F1, the scores by task with each
    task's confusion matrix (mask, gender, age; clickable too), the top losses (with Grad-CAM)
    and the embedding map, once the trainer has written them (explorer/mistakes.py)."""
    conf = read_table(run, "confusion_matrix.csv", index_col=0)
    report = read_table(run, "per_class_report.csv")
    predictions = read_table(run, "val_predictions.csv")
    if predictions is not None and predictions.empty:
        predictions = None
    if conf is not None:
        mistakes.show_confusion(conf, predictions, names, scope, key)
    if report is not None:
        st.plotly_chart(charts.per_class_figure(report), key=f"{key}.per_class")
    if predictions is not None:
        mistakes.show_tasks(predictions, read_summary(run), names, scope, key)
        mistakes.show_top_losses(run, predictions, names, key)
        mistakes.show_embedding(run, predictions, names, key)


def show(run: Path, key: str, eval_dir: str = "") -> None:
    """Everything about one run: state, scores, curves, downloads, confusion matrix, per-class F1,
    top losses. ``key`` prefixes every widget key (unique per page)."""
    try:
        config = read_config(run)
    except UserError as exc:
        st.error(str(exc))
        return
    cfg = config.get("config", {})
    show_header(run, cfg)
    m, summary = metrics_frame(run), read_summary(run)
    scores = run_scores(run)
    if not m.empty:
        show_scores(scores, summary)
        st.dataframe(metrics_table(m), hide_index=True, key=f"{key}.metrics", column_config=F1_FORMAT)
    show_curves(m, f"{key}.curves", "fold" if m["fold"].nunique() > 1 else None)

    st.subheader("Downloads")
    show_checkpoint_download(run, key)
    if summary:
        show_submission(run, key, eval_dir)
    show_reports(run, scores.scope, list(config.get("class_names") or []), key)
    with st.expander("The command that repeats this run"):
        st.code(config.get("command", ""), language="bash", wrap_lines=True)


# ----------------------------------------------------------------------------- label corrections

def correction_rows(before: Path, after: Path) -> pd.DataFrame:
    """Scores of a run and of the same settings retrained with label corrections, side by side."""
    rows = []
    for which, run in (("before", before), ("after", after)):
        s = run_scores(run)
        rows.append({"": which, "run": run.name, "corrections": read_config(run)["config"].get("corrections") or "none",
                     "macro F1, best epoch": s.best_f1, "macro F1, last epoch": s.last_f1, "accuracy": s.accuracy})
    return pd.DataFrame(rows).set_index("")


def show_correction_compare(runs: dict[str, Path], picked: list[str]) -> None:
    """For each picked run retrained with label corrections (the Label issues page's Retrain):
    its scores against the run before, the same settings with the old labels."""
    for name in picked:
        before = baseline_run(runs[name], list(runs.values()))
        if before is None or not read_summary(runs[name]) or not read_summary(before):
            continue
        st.subheader(f"Label corrections: {name} against {before.name}")
        table = correction_rows(before, runs[name])
        cols = st.columns(3)
        for col, metric in zip(cols, ("macro F1, best epoch", "macro F1, last epoch", "accuracy")):
            now, then = table.loc["after", metric], table.loc["before", metric]
            delta = None if now is None or then is None or pd.isna(now) or pd.isna(then) else f"{now - then:+.4f}"
            col.metric(f"{metric} (after)", score(now), delta=delta)
        st.dataframe(table, key=f"runs.fix.{name}", column_config=F1_FORMAT | {
            c: st.column_config.NumberColumn(format="%.4f") for c in ("macro F1, best epoch", "macro F1, last epoch")})
        st.caption("Same data, recipe, folds, seed and settings; only the labels differ. Each run is scored on "
                   "its own labels, so the run after is scored on the corrected ones; the eval folder's "
                   "submission score (below, per run) is the comparison on labels neither run changed.")
