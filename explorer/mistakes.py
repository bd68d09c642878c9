"""What a run gets wrong, with its images: a confusion-matrix cell's validation images (of the
18 classes, and of each task: mask, gender, age), Grad-CAM over the top losses, and the
embedding map. A component of the run report (explorer/report.py).

Clicking a cell of a confusion table (``st.dataframe`` single-cell selection; plotly heatmap
clicks return nothing in Streamlit) sets the true/predicted selectboxes, which decide what is
shown, so a test (AppTest) drives the same view through the selectboxes. Grad-CAM and the
embedding map load the run's model and its cached images (core.explain): both are cached per run.
"""

from __future__ import annotations

import functools
from pathlib import Path

import numpy as np
import pandas as pd
import streamlit as st

from core import explain, stats
from core.labels import NUM_CLASSES
from core.metrics import (TASK_NAMES, TASKS, TASKS_ABSENT, has_tasks, task_confusion, task_f1, task_probabilities,
                          task_values)
from core.runs import fold_count
from explorer import charts, imaging
from explorer.compute import thumbnail

CELL_SHOWN = 24  # images of one confusion cell shown
GALLERY = 12  # top losses
THUMB = 160  # display height


def _stamp(run: Path) -> float:
    """Changes when the run's predictions are rewritten, so cached results follow the run."""
    path = run / "val_predictions.csv"
    return path.stat().st_mtime if path.is_file() else 0.0


def name_of(names: list[str], c) -> str:
    return names[int(c)] if 0 <= int(c) < len(names) else str(c)


def image_grid(paths: list[str], captions: list[str], per_row: int = 6) -> None:
    for i, (path, caption) in enumerate(zip(paths, captions)):
        if i % per_row == 0:
            cols = st.columns(per_row)  # one row of columns per line of images, so they line up
        with cols[i % per_row]:
            if Path(path).is_file():
                st.image(thumbnail(path, THUMB), caption=caption)
            else:
                st.caption(f"{caption} (image moved: {path})")


# ----------------------------------------------------------------------------- confusion cells

def confusion_table(conf: pd.DataFrame, numbered: bool = True) -> pd.DataFrame:
    """The confusion matrix with short headers: rows 'i · name', columns the class numbers (or,
    not ``numbered``, the names: a task's few values)."""
    table = conf.copy()
    table.index = [f"{i} · {n}" for i, n in enumerate(conf.index)]
    table.columns = [str(j) for j in range(len(conf.columns))] if numbered else [str(n) for n in conf.columns]
    return table


def _pick_cell(key: str, columns: list[str]) -> None:
    """on_select of the confusion table: the clicked cell sets the true/predicted selectboxes."""
    cell = imaging.confusion_cell(st.session_state[f"{key}.cell"]["selection"]["cells"], columns)
    if cell is not None:
        st.session_state[f"{key}.cell_true"], st.session_state[f"{key}.cell_pred"] = cell


def pick_cell(conf: pd.DataFrame, names: list[str], key: str, what: str, numbered: bool = True) -> tuple[int, int]:
    """The confusion table ``conf`` (click a cell) above the true/predicted selectboxes the click
    sets; the chosen (true, predicted) pair. ``what`` names a value ("class", "mask"...)."""
    table = confusion_table(conf, numbered)
    columns = list(table.columns)
    counts = conf.to_numpy()
    off = counts - np.diag(np.diag(counts)) if counts.shape[0] == counts.shape[1] else counts
    worst = np.unravel_index(int(off.argmax()), off.shape)  # the commonest mistake, shown first
    for part, value in (("cell_true", worst[0]), ("cell_pred", worst[1])):
        if st.session_state.get(f"{key}.{part}") not in range(len(names)):  # first draw, or a run with fewer classes
            st.session_state[f"{key}.{part}"] = int(value)
    config = {c: st.column_config.NumberColumn(c, help=name_of(names, j), width="small") for j, c in enumerate(columns)}
    st.dataframe(table.style.background_gradient(cmap="Blues", axis=None), key=f"{key}.cell",
                 on_select=functools.partial(_pick_cell, key, columns), selection_mode="single-cell",
                 column_config=config, height=35 * (len(table) + 1) + 3)  # every row, no inner scroll
    classes = list(range(len(names)))
    c1, c2 = st.columns(2)
    true = c1.selectbox(f"True {what}", classes, format_func=lambda c: f"{c} · {name_of(names, c)}",
                        key=f"{key}.cell_true")
    pred = c2.selectbox(f"Predicted {what}", classes, format_func=lambda c: f"{c} · {name_of(names, c)}",
                        key=f"{key}.cell_pred")
    return true, pred


def show_cell(predictions: pd.DataFrame, names: list[str], true: int, pred: int, what: str,
              sure: str = "p(true)") -> None:
    """The validation images of one confusion cell (``predictions``' true/pred columns hold the
    values ``names`` names), the least sure of the true value first; ``sure`` starts each caption."""
    rows = stats.cell_rows(predictions, true, pred)
    right = "correctly classified" if true == pred else "mistaken"
    st.markdown(f"**{len(rows)} {right} image(s)**: true *{name_of(names, true)}*, predicted "
                f"*{name_of(names, pred)}*" + (f"; the {CELL_SHOWN} least sure of the true {what} shown"
                                                 if len(rows) > CELL_SHOWN else ""))
    shown = rows.head(CELL_SHOWN)
    image_grid(list(shown["path"]), [f"{sure} {p:.2f}" for p in shown["prob_true"]])


def show_confusion(conf: pd.DataFrame, predictions: pd.DataFrame | None, names: list[str], scope: str,
                   key: str) -> None:
    """The confusion table (click a cell) and the validation images of the chosen cell."""
    st.subheader("Confusion matrix")
    st.caption(f"{scope.capitalize()} images: rows are the true class, columns the predicted class number. "
               "Click a cell, or choose a true and a predicted class below, to see its images.")
    true, pred = pick_cell(conf, names, key, "class")
    if predictions is not None:
        show_cell(predictions, names, true, pred, "class")


# ----------------------------------------------------------------------------- the score by task

TASK_WHAT = {"mask": "mask", "gender": "gender", "age": "age group"}  # a value of each task, in words


def task_predictions(predictions: pd.DataFrame, task: str) -> pd.DataFrame:
    """val_predictions.csv rows with true and pred turned into ``task`` values, and prob_true the
    probability of the true value (the sum over its classes; the class's own when a run's table
    has no per-class probabilities): what one cell of the task's confusion table selects."""
    table = predictions.copy()
    table["true"] = task_values(predictions["true"].to_numpy(), task)
    table["pred"] = task_values(predictions["pred"].to_numpy(), task)
    columns = [f"p{c}" for c in range(NUM_CLASSES)]
    if set(columns) <= set(predictions.columns):
        probs = task_probabilities(predictions[columns].to_numpy(), task)
        table["prob_true"] = probs[np.arange(len(table)), table["true"].to_numpy()]
    return table


def show_tasks(predictions: pd.DataFrame, summary: dict, names: list[str], scope: str, key: str) -> None:
    """Each task's macro F1 (summary.json's task_f1) and its own confusion table, clickable like
    the 18-class one; for classes that are not the competition's, why there are none."""
    st.subheader("Scores by task")
    if not has_tasks(names):
        st.info(f"{TASKS_ABSENT[0].upper()}{TASKS_ABSENT[1:]} (this dataset has a folder per class).")
        return
    scores = summary.get("task_f1") or task_f1(predictions["true"].to_numpy(), predictions["pred"].to_numpy())
    st.caption(f"{scope.capitalize()} macro F1 of each task over its own values, from the same 18-class "
               "predictions as the matrix above: a Female · 30-59 photo called Male · 30-59 is a gender mistake "
               "only. Click a cell of a task's table, or choose its values, to see the images.")
    cols = st.columns(len(TASKS))
    for col, task in zip(cols, TASKS):
        col.metric(f"{TASK_WHAT[task].capitalize()} macro F1", f"{scores[task]:.4f}",
                   help=f"Over the {len(TASK_NAMES[task])} values " + ", ".join(TASK_NAMES[task])
                        + ": each value's F1, averaged (the values that occur in the truth or the predictions).")
    for tab, task in zip(st.tabs([TASK_WHAT[t].capitalize() for t in TASKS]), TASKS):
        with tab:
            values = list(TASK_NAMES[task])
            conf = task_confusion(predictions["true"].to_numpy(), predictions["pred"].to_numpy(), task)
            true, pred = pick_cell(conf, values, f"{key}.task.{task}", TASK_WHAT[task], numbered=False)
            show_cell(task_predictions(predictions, task), values, true, pred, TASK_WHAT[task], f"p({values[true]})")


# ----------------------------------------------------------------------------- Grad-CAM on the top losses

@st.cache_data(show_spinner="Computing Grad-CAM maps…", max_entries=16)
def gradcam_views(run: str, stamp: float, paths: tuple[str, ...], folds: tuple[int, ...],
                  classes: tuple[int, ...]) -> list[np.ndarray]:
    """Per image: the original photo beside the model's view with its Grad-CAM overlay (one
    uint8 picture), each explained by the fold model that held the image out."""
    df, images = explain.run_images(run)
    rows = pd.Series(np.arange(len(df)), index=df["path"]).reindex(list(paths)).to_numpy()
    views: list[np.ndarray | None] = [None] * len(paths)
    for fold in sorted(set(folds)):
        picked = [i for i, f in enumerate(folds) if f == fold and not np.isnan(rows[i])]
        if not picked:
            continue
        model, _ = explain.load_fold_model(run, fold)
        seen = images[rows[picked].astype(int)]
        maps = explain.gradcam(model, seen, [classes[i] for i in picked])
        for i, view, cam in zip(picked, seen, maps):
            shown = imaging.resize_to_height(explain.overlay(view, cam), THUMB)
            views[i] = np.hstack([thumbnail(paths[i], THUMB), shown])
    return [v if v is not None else thumbnail(p, THUMB) for v, p in zip(views, paths)]


def show_top_losses(run: Path, predictions: pd.DataFrame, names: list[str], key: str) -> None:
    """The GALLERY validation images with the highest loss; optionally with Grad-CAM overlays."""
    st.subheader("Top losses")
    st.caption(f"The {GALLERY} validation images the best model got most wrong (highest cross-entropy of the "
               "true class).")
    worst = predictions.sort_values("loss", ascending=False).head(GALLERY)
    captions = [f"true: {name_of(names, r.true)} / pred: {name_of(names, r.pred)} · p(true) {r.prob_true:.2f}"
                for r in worst.itertuples()]
    c1, c2 = st.columns([1, 2])
    cam = c1.toggle("Where the model looked (Grad-CAM)", key=f"{key}.gradcam",
                    help="Grad-CAM (the grad-cam package) on the run's best checkpoint, for each image the fold "
                         "model that held it out: the photo, then what the model saw with the evidence for the "
                         "class it explains drawn over it (red = strong).")
    if not cam:
        image_grid(list(worst["path"]), captions)
        return
    target = c2.radio("Explain", ["predicted class", "true class"], horizontal=True, key=f"{key}.cam_target")
    folds = worst["fold"].astype(int) if "fold" in worst else pd.Series(0, index=worst.index)
    classes = worst["pred" if target == "predicted class" else "true"].astype(int)
    views = gradcam_views(str(run), _stamp(run), tuple(worst["path"]), tuple(folds), tuple(classes))
    for i, (view, caption) in enumerate(zip(views, captions)):
        if i % 3 == 0:
            cols = st.columns(3)
        cols[i % 3].image(view, caption=caption)


# ----------------------------------------------------------------------------- embedding map

@st.cache_data(show_spinner="Computing the embedding map…", max_entries=8)
def embedding(run: str, stamp: float, fold: int, method: str, _predictions: pd.DataFrame) -> pd.DataFrame:
    """x, y per validation image of ``fold`` (its own model's penultimate features, 2-D) with
    path, true, pred."""
    part = _predictions[_predictions["fold"] == fold] if "fold" in _predictions else _predictions
    df, images = explain.run_images(run)
    rows = pd.Series(np.arange(len(df)), index=df["path"]).reindex(part["path"]).to_numpy()
    keep = ~np.isnan(rows)
    part, rows = part[keep], rows[keep].astype(int)
    model, meta = explain.load_fold_model(run, fold)
    xy = explain.embed_2d(explain.penultimate_features(model, meta["model_name"], images[rows]), method)
    return pd.DataFrame({"x": xy[:, 0], "y": xy[:, 1], "path": part["path"].to_numpy(),
                         "true": part["true"].to_numpy(), "pred": part["pred"].to_numpy()})


def show_embedding(run: Path, predictions: pd.DataFrame, names: list[str], key: str) -> None:
    st.subheader("Embedding map")
    on = st.toggle("Show the embedding map", key=f"{key}.embed",
                   help="The vectors the model's head reads (penultimate layer) for each validation image, "
                        "reduced to 2-D: images the model finds alike sit together; crosses are mistakes.")
    if not on:
        return
    c1, c2 = st.columns(2)
    method = c1.radio("Reduction", explain.EMBED_METHODS, horizontal=True, key=f"{key}.embed_method",
                      format_func={"pca": "PCA", "tsne": "t-SNE"}.get,
                      help=f"t-SNE keeps neighbourhoods better; it is offered up to {explain.TSNE_MAX} points.")
    folds = fold_count(run)
    fold = c2.selectbox("Fold", list(range(folds)), key=f"{key}.embed_fold",
                        help="Each fold's held-out images, embedded by that fold's own model (the models' "
                             "feature spaces differ).") if folds > 1 else 0
    points = embedding(str(run), _stamp(run), int(fold), method, predictions)
    points = points.assign(true_name=[name_of(names, c) for c in points["true"]],
                           pred_name=[name_of(names, c) for c in points["pred"]],
                           mistake=points["true"] != points["pred"])
    event = st.plotly_chart(charts.embedding_figure(points), key=f"{key}.embed_chart", on_select="rerun",
                            selection_mode=("points", "box", "lasso"))
    rows = charts.selected_rows(event.selection.points) if event and event.selection else []
    if not rows:
        st.caption(f"{len(points)} images, {int(points['mistake'].sum())} mistakes. Select points (click, box or "
                   "lasso) to see their images.")
        return
    picked = points.iloc[rows[:CELL_SHOWN]]
    st.markdown(f"**{len(rows)} selected image(s)**" + (f", the first {CELL_SHOWN} shown" if len(rows) > CELL_SHOWN
                                                        else ""))
    image_grid(list(picked["path"]), [f"true: {t} / pred: {p}" for t, p in zip(picked["true_name"],
                                                                                 picked["pred_name"])])
