"""Runs: every run directory in the runs folder; compare curves and metrics; one run's results."""

import pandas as pd
import plotly.express as px
import streamlit as st

from core.runs import list_runs, read_config
from explorer import state
from explorer.views import results

st.title("Runs")
runs_dir = state.runs_dir()
st.caption(f"Run directories in `{runs_dir}` (set MASKLAB_RUNS for another folder), newest first.")
runs = {p.name: p for p in list_runs(runs_dir)}
if not runs:
    st.info("No runs yet. Start one on the *Train & evaluate* page, or from the command line: "
            f"`python -m core train --data DATASET --out {runs_dir}`.")
    raise state.PageStop

table = pd.DataFrame([results.run_summary(p) for p in runs.values()])
st.dataframe(table, hide_index=True, key="runs_table",
             column_config={"best val macro F1": st.column_config.NumberColumn(format="%.4f"),
                            "val accuracy": st.column_config.NumberColumn(format="%.4f")})

names = list(runs)
picked = st.multiselect("Compare runs", names, default=names[:1], key="runs_pick",
                        help="Curves (mean over folds) and final metrics of each selected run side by side.")
if not picked:
    st.caption("Select one or more runs to compare them and see their results.")
    raise state.PageStop

curves = [results.epoch_curves(runs[n]).assign(run=n) for n in picked]
curves = pd.concat([c for c in curves if not c.empty] or [pd.DataFrame()], ignore_index=True)
if curves.empty:
    st.caption("The selected runs have no finished epoch yet.")
else:
    c1, c2 = st.columns(2)
    for col, y, title in ((c1, "macro_f1", "Validation macro F1"), (c2, "val_loss", "Validation loss")):
        fig = px.line(curves, x="epoch", y=y, color="run", markers=True, title=title,
                      labels={"macro_f1": "macro F1", "val_loss": "loss", "run": ""})
        fig.update_layout(height=340, margin=dict(t=40, b=10), legend=dict(orientation="h", y=-0.25))
        fig.update_xaxes(dtick=1 if curves["epoch"].max() <= 20 else None)
        if y == "macro_f1":
            fig.update_yaxes(range=[0, 1.02])
        col.plotly_chart(fig, key=f"runs_{y}")
side = table.set_index("run").loc[picked, ["model", "state", "epochs", "best val macro F1", "val accuracy",
                                            "created"]]
for column in ("best val macro F1", "val accuracy"):
    side[column] = side[column].map(lambda v: "—" if pd.isna(v) else f"{v:.4f}")
settings = {n: read_config(runs[n]).get("config", {}) for n in picked if "unreadable" not in side.loc[n, "state"]}
for field in ("lr", "batch_size", "optimizer", "scheduler", "loss", "folds"):
    side[field] = [settings.get(n, {}).get(field, "") for n in picked]
st.dataframe(side.T.astype(str), key="runs_side")

st.divider()
shown = st.selectbox("Results of", picked, key="runs_detail") if len(picked) > 1 else picked[0]
run = runs[shown]
st.subheader(f"Results: {shown}")
data = settings.get(shown, {}).get("data")
eval_dir = st.text_input("Eval folder for scoring", key=state.init_widget(f"runs.eval_dir.{shown}",
                                                                          results.default_eval_dir(data)),
                         placeholder="e.g. demo_data/eval")
results.show(run, "runs.res", eval_dir)
