"""Runs: every run directory in the runs folder; compare curves and metrics; one run's results."""

from pathlib import Path

import pandas as pd
import streamlit as st

from core import launch
from core.errors import UserError
from core.paths import eval_dir_beside
from core.runs import epoch_curves, list_runs, read_config, run_overview
from core.sweep import read_trials
from explorer import charts, report
from explorer.data import runs_dir
from explorer.ensemble import show_ensemble
from explorer.guard import PageStop
from explorer.recipe_state import init_widget

BEST, LAST = "val macro F1, best epoch (picked on val)", "val macro F1, last epoch"
COLUMNS = {"run": "run", "trial": "sweep trial", "model": "model", "state": "state", "epochs": "epochs", "best_f1": BEST,
           "best_epochs": "best epoch", "last_f1": LAST, "accuracy": "val accuracy", "created": "created"}
SCORES = (BEST, LAST, "val accuracy")
SETTINGS = ("lr", "batch_size", "optimizer", "scheduler", "loss", "folds")


def overview_row(run) -> dict:
    """A run's row of the table; a run whose config cannot be read says so in its state."""
    try:
        row = run_overview(run)
    except UserError as exc:
        return {"run": run.name, "state": f"unreadable: {exc}"}
    return {**row, "state": launch.run_state(run).state}


def sweep_runs(folder) -> tuple[dict, dict]:
    """The trial runs of each sweep folder inside the runs folder (SWEEP/runs/), named
    ``SWEEP/RUN``, and each one's trial number (from the sweep's trials.json)."""
    found, trials = {}, {}
    sweeps = sorted(p for p in folder.iterdir() if (p / "sweep.json").is_file()) if folder.is_dir() else []
    for sweep in sweeps:
        number = {Path(r["run_dir"]).name: r.get("trial") for r in read_trials(sweep) if r.get("run_dir")}
        for run in list_runs(sweep / "runs"):
            found[f"{sweep.name}/{run.name}"] = run
            trials[f"{sweep.name}/{run.name}"] = number.get(run.name)
    return found, trials


st.title("Runs")
folder = runs_dir()
st.caption(f"Run directories in `{folder}` (set MASKLAB_RUNS for another folder), newest first; then each sweep's "
           "trial runs (SWEEP/RUN, with the trial's number).")
trial_runs, trial_of = sweep_runs(folder)
runs = {**{p.name: p for p in list_runs(folder)}, **trial_runs}
if not runs:
    st.info("No runs yet. Start one on the *Train & evaluate* page, or from the command line: "
            f"`python -m core train --data DATASET --out {folder}`.")
    raise PageStop

table = pd.DataFrame([{**overview_row(p), "run": n, "trial": trial_of.get(n)} for n, p in runs.items()],
                     columns=list(COLUMNS)).rename(columns=COLUMNS)
st.dataframe(table, hide_index=True, key="runs_table",
             column_config={c: st.column_config.NumberColumn(format="%.4f") for c in SCORES})
st.caption("The best epoch is picked on the same validation persons it is scored on, so its macro F1 is "
           "optimistic; the last epoch's was not picked on anything.")

names = list(runs)
picked = st.multiselect("Compare runs", names, default=names[:1], key="runs_pick",
                        help="Curves (mean over folds) and final metrics of each selected run side by side.")
if not picked:
    st.caption("Select one or more runs to compare them and see their results.")
    raise PageStop

curves = [epoch_curves(runs[n]).assign(run=n) for n in picked]
curves = pd.concat([c for c in curves if not c.empty] or [pd.DataFrame()], ignore_index=True)
if curves.empty:
    st.caption("The selected runs have no finished epoch yet.")
else:
    c1, c2 = st.columns(2)
    for col, y, title in ((c1, "macro_f1", "Validation macro F1"), (c2, "val_loss", "Validation loss")):
        col.plotly_chart(charts.comparison_figure(curves, y, title), key=f"runs_{y}")
side = table.set_index("run").loc[picked, [c for c in COLUMNS.values() if c != "run"]]
for column in SCORES:
    side[column] = side[column].map(report.score)
settings = {n: read_config(runs[n]).get("config", {}) for n in picked if "unreadable" not in side.loc[n, "state"]}
for field in SETTINGS:
    side[field] = [settings.get(n, {}).get(field, "") for n in picked]
st.dataframe(side.T.astype(str), key="runs_side")
show_ensemble(runs, picked, folder)
report.show_correction_compare(runs, picked)

st.divider()
shown = st.selectbox("Results of", picked, key="runs_detail") if len(picked) > 1 else picked[0]
st.subheader(f"Results: {shown}")
eval_dir = st.text_input("Eval folder for scoring", placeholder="e.g. demo_data/eval",
                         key=init_widget(f"runs.eval_dir.{shown}",
                                         str(eval_dir_beside(settings.get(shown, {}).get("data")) or "")))
report.show(runs[shown], "runs.res", eval_dir)
