"""Runs page: an ensemble submission, the mean of several runs' probabilities.

One call into ``core.predict.predict`` with a list of runs, the same as
``python -m core predict --run A --run B ... --data EVAL --tta auto``: each run preprocesses
the images with its own recipe. The file goes to ``<runs folder>/ensembles/`` and is scored
when the eval folder has a gt.csv; the members' own submissions for that folder, where the
run's page made one, are scored beside it so the gain (or loss) of ensembling is plain.
"""

from __future__ import annotations

import functools
import hashlib
import shlex
from pathlib import Path

import pandas as pd
import streamlit as st

from core.errors import UserError
from core.metrics import TASKS
from core.paths import eval_dir_beside, user_path
from core.predict import TTA_CHOICES, TTA_HELP, evaluate
from core.runs import checkpoint_paths, read_config, submission_path
from explorer.recipe_state import init_widget


def finished(runs: dict[str, Path]) -> list[str]:
    """The runs that have every best checkpoint (only those can predict)."""
    names = []
    for name, run in runs.items():
        try:
            if all(p.is_file() for p in checkpoint_paths(run)):
                names.append(name)
        except UserError:
            continue
    return names


def ensemble_path(folder: Path, names: list[str], eval_dir: Path, tta: str) -> Path:
    """One file per (runs, eval folder, tta): the run names and the folder are hashed into it."""
    tag = hashlib.sha1("\n".join([*sorted(names), str(eval_dir), tta]).encode()).hexdigest()[:8]
    return folder / "ensembles" / f"ensemble-{len(names)}runs-{eval_dir.name}-{tag}.csv"


def command(runs: list[Path], eval_dir: Path, tta: str) -> str:
    argv = ["python", "-m", "core", "predict", *[a for r in runs for a in ("--run", str(r))], "--data", str(eval_dir),
            "--tta", tta, "--out", "ensemble.csv"]
    return shlex.join(argv)


def _predict(runs: list[Path], eval_dir: Path, out: Path, tta: str) -> list[str]:
    from core.predict import predict

    notes: list[str] = []
    bar = st.progress(0.0, text="Preparing the eval images…")
    predict(runs, eval_dir, out, tta=tta, log=notes.append,
            progress=lambda d, t: bar.progress(d / max(t, 1), text=f"Preparing the eval images: {d:,} / {t:,}"))
    bar.empty()
    return notes


def _scores(paths: dict[str, Path], gt: Path) -> pd.DataFrame:
    """macro F1, accuracy and each task's macro F1 of each existing submission against gt.csv."""
    rows = []
    for label, path in paths.items():
        if path.is_file():
            result = evaluate(path, gt)
            rows.append({"submission": label, "eval macro F1": result["macro_f1"], "eval accuracy": result["accuracy"],
                         **{f"{task} F1": result["task_f1"][task] for task in TASKS}})
    return pd.DataFrame(rows)


def show_ensemble(runs: dict[str, Path], picked: list[str], folder: Path) -> None:
    """The ensemble section: pick runs, a TTA choice and an eval folder; predict; download and score."""
    st.subheader("Ensemble submission")
    ready = finished(runs)
    if len(ready) < 2:
        st.caption("An ensemble averages the probabilities of two or more finished runs; this folder has "
                   f"{len(ready)}.")
        return
    default = [n for n in picked if n in ready][:4]
    chosen = st.multiselect("Runs to average", ready, default=default if len(default) >= 2 else ready[:2],
                            key="runs.ens.pick", help="Each run counts once (a run with folds is already the mean "
                                                      "of its fold models) and preprocesses with its own recipe.")
    c1, c2 = st.columns([3, 1])
    first_data = read_config(runs[chosen[0]]).get("config", {}).get("data") if chosen else None
    eval_text = c1.text_input("Eval folder", key=init_widget("runs.ens.eval", str(eval_dir_beside(first_data) or "")),
                              placeholder="e.g. demo_data/eval")
    tta = c2.selectbox("Test-time augmentation", TTA_CHOICES, key="runs.ens.tta", help=TTA_HELP)
    if len(chosen) < 2 or not eval_text.strip():
        st.caption("Pick at least two runs and an eval folder (info.csv + images/).")
        return
    eval_dir = user_path(eval_text)
    members = [runs[n] for n in chosen]
    out, gt = ensemble_path(folder, chosen, eval_dir, tta), eval_dir / "gt.csv"
    if st.button(f"Predict {eval_dir.name}/ with {len(chosen)} runs and make an ensemble submission",
                 key="runs.ens.predict", icon=":material/join:"):
        try:
            for note in _predict(members, eval_dir, out, tta):
                st.caption(note)
        except UserError as exc:
            st.error(f"Ensemble prediction failed: {exc}")
    st.caption("Same from the command line:")
    st.code(command(members, eval_dir, tta), language="bash", wrap_lines=True)
    if not out.is_file():
        return
    st.download_button("Download the ensemble submission.csv", functools.partial(out.read_bytes),
                       file_name="submission.csv", mime="text/csv", key="runs.ens.download", on_click="ignore",
                       icon=":material/download:")
    if gt.is_file():
        paths = {f"ensemble of {len(chosen)}": out,
                 **{f"{n} alone": submission_path(runs[n], eval_dir) for n in chosen}}
        try:
            table = _scores(paths, gt)
        except UserError as exc:
            st.error(f"Scoring against {gt} failed: {exc}")
        else:
            st.dataframe(table, hide_index=True, key="runs.ens.scores",
                         column_config={c: st.column_config.NumberColumn(format="%.4f")
                                        for c in ("eval macro F1", "eval accuracy", *(f"{t} F1" for t in TASKS))})
            st.caption("A run's own row appears once its results below have made a submission for this folder.")
