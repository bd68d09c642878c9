"""What the Train and Runs pages show about one run directory (not a page of its own).

Everything is read from the run directory that the trainer wrote (core.runs): metrics.jsonl for
the curves, summary.json, confusion_matrix.csv, per_class_report.csv, val_predictions.csv and
the checkpoints. Nothing about a run is kept only in memory.
"""

from __future__ import annotations

import functools
import hashlib
import io
import json
import time
import zipfile
from pathlib import Path

import pandas as pd
import plotly.express as px
import plotly.graph_objects as go
import streamlit as st

from core import launch
from core.errors import UserError
from core.runs import checkpoint_paths, read_config, read_metrics
from explorer import state

GALLERY = 12  # worst-predicted validation images shown
STATE_ICONS = {"done": ":material/check_circle:", "running": ":material/pending:", "starting": ":material/pending:",
               "stopped": ":material/stop_circle:", "failed": ":material/error:"}  # for markdown


# ----------------------------------------------------------------------------- reading

def read_json(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return {}


def read_csv(path: Path, **kwargs) -> pd.DataFrame | None:
    try:
        return pd.read_csv(path, **kwargs)
    except (OSError, ValueError):
        return None


def metrics_frame(run: Path) -> pd.DataFrame:
    """One row per (fold, epoch): train_loss, val_loss, accuracy, macro_f1."""
    columns = ["fold", "epoch", "train_loss", "val_loss", "accuracy", "macro_f1"]
    try:
        records = read_metrics(run)
    except (OSError, ValueError):
        records = []
    if not records:
        return pd.DataFrame(columns=columns)
    return pd.DataFrame([{c: r.get(c) for c in columns} for r in records])


def run_summary(run: Path) -> dict:
    """One row of the Runs table: name, model, state, epochs, best val macro F1, accuracy, date."""
    row = {"run": run.name, "model": "?", "state": "?", "epochs": "", "best val macro F1": None,
           "val accuracy": None, "created": ""}
    try:
        config = read_config(run)
    except UserError as exc:
        return {**row, "state": f"unreadable: {exc}"}
    cfg = config.get("config", {})
    now = launch.run_state(run)
    m = metrics_frame(run)
    done_epochs = int(m.groupby("fold")["epoch"].max().min()) if len(m) else 0
    summary = read_json(run / "summary.json")
    best = m.groupby("fold")["macro_f1"].max().mean() if len(m) else None
    return {**row, "model": cfg.get("model", "?"), "state": now.state,
            "epochs": f"{done_epochs}/{cfg.get('epochs', '?')}",
            "best val macro F1": summary.get("macro_f1", best),
            "val accuracy": summary.get("accuracy", m["accuracy"].iloc[-1] if len(m) else None),
            "created": config.get("created", "")}


def epoch_curves(run: Path) -> pd.DataFrame:
    """Per epoch, the mean over folds: what the Runs page compares across runs."""
    m = metrics_frame(run)
    if m.empty:
        return m
    return m.groupby("epoch", as_index=False)[["train_loss", "val_loss", "accuracy", "macro_f1"]].mean()


def submission_path(run: Path, eval_dir: Path) -> Path:
    """Where the app keeps the submission for ``eval_dir``, next to the run's other outputs."""
    tag = hashlib.sha1(str(eval_dir).encode()).hexdigest()[:6]
    return run / f"submission-{eval_dir.name}-{tag}.csv"


def default_eval_dir(data: str | Path | None) -> str:
    """The ``eval`` folder beside a dataset folder (demo_data/train -> demo_data/eval), or ''."""
    if not data:
        return ""
    sibling = Path(str(data)).expanduser().parent / "eval"
    return str(sibling) if sibling.is_dir() else ""


def duration(seconds) -> str:
    if seconds is None:
        return "—"
    seconds = int(round(float(seconds)))
    return f"{seconds // 60} min {seconds % 60:02d} s" if seconds >= 60 else f"{seconds} s"


# ----------------------------------------------------------------------------- charts

def curve_figures(m: pd.DataFrame, color: str | None = None) -> tuple[go.Figure, go.Figure]:
    """(loss, macro F1) line charts per epoch; ``color`` splits lines by a column (fold, run)."""
    loss = m.melt(id_vars=[c for c in ("epoch", color) if c], value_vars=["train_loss", "val_loss"],
                  var_name="split", value_name="loss")
    loss["split"] = loss["split"].map({"train_loss": "train", "val_loss": "validation"})
    if color:
        loss["line"] = loss[color].astype(str) + " · " + loss["split"]
    f1 = px.line(m, x="epoch", y="macro_f1", color=color, markers=True, title="Validation macro F1",
                 labels={"macro_f1": "macro F1", color or "": color or ""})
    f1.update_yaxes(range=[0, 1.02])
    lf = px.line(loss, x="epoch", y="loss", color="line" if color else "split", markers=True, title="Loss",
                 labels={"line": "", "split": ""})
    for fig in (f1, lf):
        fig.update_layout(height=320, margin=dict(t=40, b=10))
        fig.update_xaxes(dtick=1 if m["epoch"].max() <= 20 else None)
    return lf, f1


def show_curves(m: pd.DataFrame, key: str, color: str | None = None) -> None:
    if m.empty:
        st.caption("No finished epoch yet: the curves appear after the first one.")
        return
    loss, f1 = curve_figures(m, color)
    c1, c2 = st.columns(2)
    c1.plotly_chart(loss, key=f"{key}.loss")
    c2.plotly_chart(f1, key=f"{key}.f1")


def confusion_figure(conf: pd.DataFrame) -> go.Figure:
    names = [str(n) for n in conf.columns]
    fig = px.imshow(conf.to_numpy(), x=names, y=list(map(str, conf.index)), text_auto=True,
                    color_continuous_scale="Blues", aspect="auto",
                    labels={"x": "predicted", "y": "true", "color": "images"})
    fig.update_layout(height=max(360, 28 * len(names) + 200), margin=dict(t=30, b=10),
                      xaxis_tickangle=-40, coloraxis_showscale=False)
    return fig


def per_class_figure(report: pd.DataFrame) -> go.Figure:
    fig = px.bar(report, x="name", y="f1", text=report["f1"].map("{:.2f}".format),
                 hover_data=["precision", "recall", "support", "predicted"],
                 labels={"name": "class", "f1": "F1"}, title="F1 per class (validation)")
    fig.update_yaxes(range=[0, 1.05])
    fig.update_layout(height=380, xaxis_tickangle=-40, margin=dict(t=40, b=10))
    return fig


# ----------------------------------------------------------------------------- sections

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
    n_models = max(1, int(s.get("n_models") or 0) or _folds(now.run_dir))
    frac = ((fold * epochs + max(epoch - 1, 0)) * n_batches + batch) / max(1, n_models * epochs * n_batches)
    parts = ([f"fold {fold + 1}/{n_models}"] if n_models > 1 else []) + [
        f"epoch {epoch}/{epochs}", f"batch {batch}/{n_batches}", f"about {duration(s.get('eta_s'))} left"]
    st.progress(min(max(frac, 0.0), 1.0), text=" · ".join(parts))


def _folds(run: Path | None) -> int:
    if run is None:
        return 1
    cfg = read_json(run / "config.json").get("config", {})
    return int(cfg.get("folds") or 0) if int(cfg.get("folds") or 0) >= 2 else 1


def show_failure(now: launch.RunState, key: str) -> None:
    st.error(f"Training failed: {now.message or 'no message'}")
    if now.log_tail:
        with st.expander("Log (last lines)"):
            st.code(now.log_tail, language="text")


def metrics_table(m: pd.DataFrame) -> pd.DataFrame:
    """Final and best (by macro F1) epoch of each fold."""
    rows = []
    for fold, part in m.groupby("fold"):
        for which, row in (("final epoch", part.iloc[-1]), ("best epoch", part.loc[part["macro_f1"].idxmax()])):
            rows.append({"": which, "fold": int(fold), "epoch": int(row["epoch"]), "accuracy": row["accuracy"],
                         "macro F1": row["macro_f1"], "val loss": row["val_loss"], "train loss": row["train_loss"]})
    table = pd.DataFrame(rows)
    return table.drop(columns="fold") if table["fold"].nunique() == 1 else table


def show_gallery(run: Path, names: list[str]) -> None:
    table = read_csv(run / "val_predictions.csv")
    if table is None or table.empty:
        return
    st.subheader("Top losses")
    st.caption(f"The {GALLERY} validation images the best model got most wrong (highest cross-entropy of the "
               "true class).")
    worst = table.sort_values("loss", ascending=False).head(GALLERY)
    name = lambda c: names[int(c)] if 0 <= int(c) < len(names) else str(c)  # noqa: E731
    for i, row in enumerate(worst.itertuples()):
        if i % 6 == 0:
            cols = st.columns(6)  # one row of columns per 6 images, so the rows line up
        caption = f"true: {name(row.true)} / pred: {name(row.pred)} · p(true) {row.prob_true:.2f}"
        with cols[i % 6]:
            if Path(row.path).is_file():
                st.image(state.thumbnail(row.path, 160), caption=caption)
            else:
                st.caption(f"{caption} (image moved: {row.path})")


def _zip_bytes(paths: list[Path], run: Path) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for p in paths:
            zf.write(p, f"{run.name}/{p.relative_to(run)}")
    return buf.getvalue()


def show_checkpoint_download(run: Path, key: str) -> None:
    try:
        paths = [p for p in checkpoint_paths(run) if p.is_file()]
    except UserError:
        paths = []
    if not paths:
        st.caption("No best checkpoint yet.")
        return
    size = sum(p.stat().st_size for p in paths) / 1e6
    if len(paths) == 1:
        data, name, mime = functools.partial(paths[0].read_bytes), f"{run.name}-best.pt", "application/octet-stream"
    else:
        data, name, mime = functools.partial(_zip_bytes, paths, run), f"{run.name}-best.zip", "application/zip"
    st.download_button(f"Download the best checkpoint ({size:.1f} MB)", data, file_name=name, mime=mime,
                       key=f"{key}.ckpt", on_click="ignore", icon=":material/download:")


def predict_eval(run: Path, eval_dir: Path, out: Path) -> list[str]:
    """core.predict.predict with a progress bar; returns the notes it logged."""
    from core.predict import predict

    notes: list[str] = []
    bar = st.progress(0.0, text="Preparing the eval images…")

    def progress(done: int, total: int) -> None:
        bar.progress(done / max(total, 1), text=f"Preparing the eval images: {done:,} / {total:,}")

    predict(run, eval_dir, out, progress=progress, log=notes.append)
    bar.empty()
    return notes


def show_submission(run: Path, key: str, eval_dir: str) -> None:
    st.markdown("**Submission for an eval folder**")
    folder = Path(eval_dir).expanduser().resolve() if eval_dir.strip() else None
    if folder is None:
        st.info("Type an eval folder (info.csv + images/) to predict it with this run's best model.")
        return
    out = submission_path(run, folder)
    gt = folder / "gt.csv"
    if st.button(f"Predict {folder.name}/ and make a submission", key=f"{key}.predict",
                 icon=":material/batch_prediction:"):
        try:
            for note in predict_eval(run, folder, out):
                st.warning(note)
        except UserError as exc:
            st.error(f"Prediction failed: {exc}")
    commands = [f"python -m core predict --run {run} --data {folder} --out submission.csv"]
    if gt.is_file():
        commands.append(f"python -m core evaluate --pred submission.csv --gt {gt}")
    if not out.is_file():
        st.caption(f"Predicts every image of `{folder}` with the run's own recipe (never its augmentation). "
                   "Same as:")
        st.code("\n".join(commands), language="bash", wrap_lines=True)
        return
    made = time.strftime("%Y-%m-%d %H:%M", time.localtime(out.stat().st_mtime))
    c1, c2, c3 = st.columns([2, 1, 1])
    c1.download_button("Download submission.csv", functools.partial(out.read_bytes), file_name="submission.csv",
                       mime="text/csv", key=f"{key}.submission", on_click="ignore", icon=":material/download:")
    c1.caption(f"{len(pd.read_csv(out)):,} rows, made {made}.")
    if gt.is_file():
        try:
            score = _evaluate(str(out), out.stat().st_mtime_ns, str(gt), gt.stat().st_mtime_ns)
        except UserError as exc:
            st.error(f"Scoring against {gt} failed: {exc}")
        else:
            c2.metric("Eval macro F1", f"{score['macro_f1']:.4f}", help=f"against {gt}")
            c3.metric("Eval accuracy", f"{score['accuracy']:.4f}", help=f"{score['images']:,} images")
    with st.expander("Same from the command line"):
        st.code("\n".join(commands), language="bash", wrap_lines=True)


@st.cache_data(show_spinner=False, max_entries=16)
def _evaluate(pred: str, pred_mtime: int, gt: str, gt_mtime: int) -> dict:
    from core.predict import evaluate

    result = evaluate(pred, gt)
    return {k: result[k] for k in ("images", "accuracy", "macro_f1")}


def show(run: Path, key: str, eval_dir: str = "") -> None:
    """Everything about one run: state, metrics, curves, confusion matrix, per-class F1, top
    losses, downloads. ``key`` prefixes every widget key (unique per page)."""
    try:
        config = read_config(run)
    except UserError as exc:
        st.error(str(exc))
        return
    cfg = config.get("config", {})
    names = list(config.get("class_names") or [])
    now = launch.run_state(run)
    message = now.message.removeprefix(f"{now.state}: ").removeprefix(f"{now.state}; ")  # no "done · done: ..."
    st.caption(f"`{run}` · {cfg.get('model', '?')} · {STATE_ICONS.get(now.state, '')} {now.state}"
               + (f" · {message}" if message and now.state != "failed" else ""))
    if now.state == "failed":
        show_failure(now, key)
    elif now.live:
        show_progress(now)

    m = metrics_frame(run)
    summary = read_json(run / "summary.json")
    scope = summary.get("scope", "validation")
    if summary:
        c = st.columns(4)
        c[0].metric(f"{scope.capitalize()} macro F1", f"{summary['macro_f1']:.4f}",
                    help="Of the best checkpoint (by macro F1) on the held-out persons.")
        c[1].metric(f"{scope.capitalize()} accuracy", f"{summary['accuracy']:.4f}")
        c[2].metric("Best epoch", ", ".join(map(str, summary.get("best_epochs", []))) or "—")
        c[3].metric("Training time", duration(summary.get("train_seconds")))
    if not m.empty:
        st.dataframe(metrics_table(m), hide_index=True, key=f"{key}.metrics",
                     column_config={c: st.column_config.NumberColumn(format="%.4f")
                                    for c in ("accuracy", "macro F1", "val loss", "train loss")})
    show_curves(m, f"{key}.curves", "fold" if m["fold"].nunique() > 1 else None)

    st.subheader("Downloads")
    show_checkpoint_download(run, key)
    if summary:
        show_submission(run, key, eval_dir)

    conf = read_csv(run / "confusion_matrix.csv", index_col=0)
    report = read_csv(run / "per_class_report.csv")
    if conf is not None:
        st.subheader("Confusion matrix")
        st.caption(f"{scope.capitalize()} images: rows are the true class, columns the predicted one.")
        st.plotly_chart(confusion_figure(conf), key=f"{key}.confusion")
    if report is not None:
        st.plotly_chart(per_class_figure(report), key=f"{key}.per_class")
    show_gallery(run, names)
    with st.expander("The command that repeats this run"):
        st.code(config.get("command", ""), language="bash", wrap_lines=True)
