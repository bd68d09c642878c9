"""Train page: the learning-rate finder (``core.training.lr_find``), run in this process.

The button sweeps the learning rate with the page's current settings and recipe (the same
data path and step as a training), writes the curve to ``<runs>/lr-find/<time>/`` and puts
the suggestion in the page's learning-rate field. It runs in the button's callback, before
the page is drawn again, because a drawn widget's value can only be set then. The sweep is a
few hundred steps at most (``--steps`` from the command line for more control), so the wait
is short on small data; on a large dataset the command line is the better place.
"""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path

import plotly.graph_objects as go
import streamlit as st

from core import launch
from core.errors import UserError
from core.recipe import Recipe
from core.training.config import PARAMS, TrainConfig, train_argv

RESULT = "t.lr_sweep"  # session state: the last sweep (or its error)
LR_KEY = "t.lr"  # the Train page's learning-rate widget
LR_RANGE = PARAMS["lr"].rule.bounds(PARAMS["lr"].step)  # that widget's bounds, from the field's rule


def sweep_figure(table, suggestion: float) -> go.Figure:
    """Loss against learning rate (log axis), raw and smoothed, with the suggestion marked."""
    fig = go.Figure()
    fig.add_scatter(x=table["lr"], y=table["loss"], mode="lines", name="loss", line=dict(color="lightgray"))
    fig.add_scatter(x=table["lr"], y=table["smoothed"], mode="lines", name="smoothed")
    fig.add_vline(x=suggestion, line_dash="dash", line_color="firebrick",
                  annotation_text=f"suggestion {suggestion:.3g}")
    fig.update_xaxes(type="log", title="learning rate")
    top = float(table["smoothed"].quantile(0.95)) * 1.3
    fig.update_yaxes(title="training loss", range=[max(0.0, float(table["loss"].min()) * 0.9), top])
    fig.update_layout(height=320, margin=dict(t=40, b=10), title="Learning-rate sweep")
    return fig


def run_sweep(cfg: TrainConfig, recipe: Recipe, runs: Path) -> None:
    """The button's callback: sweep, save the curve, fill the learning-rate field."""
    from core.training.lr_find import lr_find, write_sweep

    try:
        with st.spinner("Sweeping the learning rate (a short training run)…"):
            sweep = lr_find(dataclasses.replace(cfg, recipe=recipe))
        folder = Path(runs) / "lr-find" / time.strftime("%Y%m%d-%H%M%S")
        write_sweep(sweep, folder)
    except UserError as exc:
        st.session_state[RESULT] = {"error": str(exc)}
        return
    value = min(max(float(f"{sweep.suggestion:.3g}"), LR_RANGE[0]), LR_RANGE[1])
    st.session_state[RESULT] = {"sweep": sweep, "folder": str(folder), "was": st.session_state.get(LR_KEY),
                                "set": value}
    st.session_state[LR_KEY] = value


def command(cfg: TrainConfig) -> str:
    argv = train_argv(dataclasses.replace(cfg, recipe="recipe.json"), short=True)
    argv[argv.index("train")] = "lr-find"
    return launch.command_line(argv)


def show_lr_finder(cfg: TrainConfig, recipe: Recipe, runs: Path, disabled: bool) -> None:
    """The finder's expander: the button, then the last sweep's curve and suggestion."""
    from core.training.lr_find import RULE

    result = st.session_state.get(RESULT)
    with st.expander("Learning-rate finder", expanded=result is not None, icon=":material/search_insights:"):
        st.caption("Trains briefly from scratch with the settings above while the learning rate rises "
                   "exponentially, and suggests one. Rule: " + RULE + ".")
        st.button("Find a learning rate", key="t.lr_find", on_click=run_sweep, args=(cfg, recipe, runs),
                  disabled=disabled, icon=":material/search:")
        if result is None:
            st.caption("Same from the command line (recipe saved as recipe.json):")
            st.code(command(cfg), language="bash", wrap_lines=True)
            return
        if "error" in result:
            st.error(f"The sweep failed: {result['error']}")
            return
        sweep = result["sweep"]
        st.success(f"Suggested learning rate **{sweep.suggestion:.3g}**: the learning-rate field now holds "
                   f"{result['set']:g} (was {result['was']:g})." if result["was"] is not None else
                   f"Suggested learning rate **{sweep.suggestion:.3g}**, set in the learning-rate field.")
        st.plotly_chart(sweep_figure(sweep.table(), sweep.suggestion), key="t.lr_curve")
        st.caption(f"{len(sweep.lrs)} steps, {sweep.lrs[0]:.0e} to {sweep.lrs[-1]:.2g}"
                   + ("" if len(sweep.lrs) == sweep.planned else " (stopped early: the loss diverged)")
                   + f". Curve saved in `{result['folder']}`.")
