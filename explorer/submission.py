"""A run's downloads: its best checkpoint(s), and a submission for an eval folder predicted with
``core.predict.predict`` (the same call as ``python -m core predict``), scored when the folder has
a gt.csv."""

from __future__ import annotations

import functools
import io
import time
import zipfile
from pathlib import Path

import pandas as pd
import streamlit as st

from core.errors import UserError
from core.metrics import task_f1_text
from core.paths import user_path
from core.runs import checkpoint_paths, submission_path


def _zip_bytes(paths: list[Path], run: Path) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for p in paths:
            zf.write(p, f"{run.name}/{p.relative_to(run)}")
    return buf.getvalue()


def show_checkpoint_download(run: Path, key: str) -> None:
    """The best checkpoint (a zip of one per fold); read from disk only when clicked."""
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


@st.cache_data(show_spinner=False, max_entries=16)
def _evaluate(pred: str, pred_mtime: int, gt: str, gt_mtime: int) -> dict:
    from core.predict import evaluate

    result = evaluate(pred, gt)
    return {k: result[k] for k in ("images", "accuracy", "macro_f1", "task_f1")}


def _commands(run: Path, folder: Path, gt: Path) -> str:
    commands = [f"python -m core predict --run {run} --data {folder} --out submission.csv"]
    if gt.is_file():
        commands.append(f"python -m core evaluate --pred submission.csv --gt {gt}")
    return "\n".join(commands)


def _show_made(out: Path, gt: Path, key: str) -> None:
    """The submission's download, size and age, and its eval scores when gt.csv is there."""
    made = time.strftime("%Y-%m-%d %H:%M", time.localtime(out.stat().st_mtime))
    c1, c2, c3 = st.columns([2, 1, 1])
    c1.download_button("Download submission.csv", functools.partial(out.read_bytes), file_name="submission.csv",
                       mime="text/csv", key=f"{key}.submission", on_click="ignore", icon=":material/download:")
    c1.caption(f"{len(pd.read_csv(out)):,} rows, made {made}.")
    if gt.is_file():
        try:
            result = _evaluate(str(out), out.stat().st_mtime_ns, str(gt), gt.stat().st_mtime_ns)
        except UserError as exc:
            st.error(f"Scoring against {gt} failed: {exc}")
        else:
            c2.metric("Eval macro F1", f"{result['macro_f1']:.4f}", help=f"against {gt}")
            c3.metric("Eval accuracy", f"{result['accuracy']:.4f}", help=f"{result['images']:,} images")
            st.caption(f"Eval {task_f1_text(result['task_f1'])}.")


def show_submission(run: Path, key: str, eval_dir: str) -> None:
    st.markdown("**Submission for an eval folder**")
    if not eval_dir.strip():
        st.info("Type an eval folder (info.csv + images/) to predict it with this run's best model.")
        return
    folder = user_path(eval_dir)
    out, gt = submission_path(run, folder), folder / "gt.csv"
    if st.button(f"Predict {folder.name}/ and make a submission", key=f"{key}.predict",
                 icon=":material/batch_prediction:"):
        try:
            for note in predict_eval(run, folder, out):
                st.warning(note)
        except UserError as exc:
            st.error(f"Prediction failed: {exc}")
    if not out.is_file():
        st.caption(f"Predicts every image of `{folder}` with the run's own recipe (never its augmentation). "
                   "Same as:")
        st.code(_commands(run, folder, gt), language="bash", wrap_lines=True)
        return
    _show_made(out, gt, key)
    with st.expander("Same from the command line"):
        st.code(_commands(run, folder, gt), language="bash", wrap_lines=True)
