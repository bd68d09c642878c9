"""Figures: training curves, run comparisons, per-class F1, image properties
by class and the embedding map.

Plain functions from tables (read by core.runs) to plotly figures; no Streamlit here, so a
figure can be checked without a page.
"""

from __future__ import annotations

import pandas as pd
import plotly.express as px
import plotly.graph_objects as go

F1_RANGE = [0, 1.02]


def _epoch_axis(fig: go.Figure, epochs: pd.Series, height: int) -> go.Figure:
    fig.update_layout(height=height, margin=dict(t=40, b=10))
    fig.update_xaxes(dtick=1 if epochs.max() <= 20 else None)
    return fig


def curve_figures(m: pd.DataFrame, color: str | None = None) -> tuple[go.Figure, go.Figure]:
    """(loss, macro F1) line charts per epoch; ``color`` splits lines by a column (fold, run)."""
    loss = m.melt(id_vars=[c for c in ("epoch", color) if c], value_vars=["train_loss", "val_loss"],
                  var_name="split", value_name="loss")
    loss["split"] = loss["split"].map({"train_loss": "train", "val_loss": "validation"})
    if color:
        loss["line"] = loss[color].astype(str) + " · " + loss["split"]
    f1 = px.line(m, x="epoch", y="macro_f1", color=color, markers=True, title="Validation macro F1",
                 labels={"macro_f1": "macro F1", color or "": color or ""})
    f1.update_yaxes(range=F1_RANGE)
    lf = px.line(loss, x="epoch", y="loss", color="line" if color else "split", markers=True, title="Loss",
                 labels={"line": "", "split": ""})
    return _epoch_axis(lf, m["epoch"], 320), _epoch_axis(f1, m["epoch"], 320)


def comparison_figure(curves: pd.DataFrame, y: str, title: str) -> go.Figure:
    """One line per run (column ``run``) of ``y`` per epoch: the Runs page's side-by-side view."""
    fig = px.line(curves, x="epoch", y=y, color="run", markers=True, title=title,
                  labels={"macro_f1": "macro F1", "val_loss": "loss", "run": ""})
    fig.update_layout(legend=dict(orientation="h", y=-0.25))
    if y == "macro_f1":
        fig.update_yaxes(range=F1_RANGE)
    return _epoch_axis(fig, curves["epoch"], 340)


def per_class_figure(report: pd.DataFrame) -> go.Figure:
    fig = px.bar(report, x="name", y="f1", text=report["f1"].map("{:.2f}".format),
                 hover_data=["precision", "recall", "support", "predicted"],
                 labels={"name": "class", "f1": "F1"}, title="F1 per class (validation)")
    fig.update_yaxes(range=[0, 1.05])
    fig.update_layout(height=380, xaxis_tickangle=-40, margin=dict(t=40, b=10))
    return fig


def property_boxes(table: pd.DataFrame, column: str, title: str) -> go.Figure:
    """One box per class of an image property (core.stats.property_table), classes in label order."""
    order = table.sort_values("label", kind="stable")["label_name"].drop_duplicates().tolist()
    fig = px.box(table, x="label_name", y=column, points="outliers", title=title,
                 category_orders={"label_name": order}, labels={"label_name": "class", column: ""})
    fig.update_layout(height=340, xaxis_tickangle=-40, margin=dict(t=40, b=10), showlegend=False)
    return fig


def embedding_figure(points: pd.DataFrame) -> go.Figure:
    """The 2-D embedding map: one colour per true class, mistakes drawn as crosses. Each point
    carries its row in ``points`` as customdata, which :func:`selected_rows` reads back."""
    shown = points.assign(row=range(len(points)),
                          outcome=points["mistake"].map({True: "mistake", False: "right"}))
    fig = px.scatter(shown, x="x", y="y", color="true_name", symbol="outcome", custom_data=["row"],
                     symbol_map={"right": "circle", "mistake": "x"},
                     hover_data={"x": False, "y": False, "row": False, "pred_name": True, "path": True},
                     labels={"true_name": "true class", "outcome": "", "pred_name": "predicted"},
                     title="Embedding map of the validation images (select points to see them)")
    fig.update_traces(marker=dict(size=7, opacity=0.8))
    fig.update_layout(height=560, margin=dict(t=40, b=10), dragmode="lasso", xaxis_title="", yaxis_title="")
    return fig


def selected_rows(points: list[dict]) -> list[int]:
    """Rows of the embedding table behind the points of a plotly selection (their customdata)."""
    rows = []
    for p in points:
        data = p.get("customdata")
        if data is not None and len(data):
            rows.append(int(data[0]))
    return sorted(set(rows))
