"""Faces and crop: the detectors side by side, where faces sit in the frame, a suggested crop,
the crop and input size."""

import cv2
import numpy as np
import pandas as pd
import plotly.express as px
import plotly.graph_objects as go
import streamlit as st

from core import rulebook as rb
from core.faces import (
    coverage_heatmap,
    detection_rates,
    disagreements,
    landmark_points,
    normalized,
    rates_by_detector,
    source_shares,
    suggest_crop,
)
from core.preprocess import crop_box, preprocess
from explorer import compute, imaging
from explorer.data import loaded
from explorer.guard import require_dataset
from explorer.recipe_state import get_recipe, reset_widgets, update_recipe
from explorer.widgets import param_widget, recipe_choice, recipe_number, recipe_slider, widget_key

GRID = (48, 64)  # heatmap cells (columns, rows)
MTCNN_COLOR, HAAR_COLOR, POINT_COLOR = (0, 140, 255), (255, 60, 60), (255, 255, 0)
DISAGREE_SHOWN = 12


def heatmap(norm, suggested, crop, W: int, H: int) -> go.Figure:
    """Face coverage over a W x H frame, face centres, the suggested box and the recipe's fixed box."""
    heat = coverage_heatmap(norm, GRID)
    fig = go.Figure(go.Heatmap(z=heat, x=(np.arange(GRID[0]) + 0.5) * W / GRID[0],
                               y=(np.arange(GRID[1]) + 0.5) * H / GRID[1], colorscale="Viridis",
                               colorbar=dict(title="share")))
    sample = norm.sample(min(len(norm), 1500), random_state=0)
    fig.add_scatter(x=(sample.x + sample.w / 2) * W, y=(sample.y + sample.h / 2) * H, mode="markers",
                    marker=dict(size=3, color="white", opacity=0.6), name="face centres")
    boxes = [(suggested, dict(color="gold", width=3, dash="dash"))]
    if crop.mode == "fixed":
        boxes.append((crop.box, dict(color="lime", width=2)))
    for (x, y, w, h), line in boxes:
        fig.add_shape(type="rect", x0=x * W, y0=y * H, x1=(x + w) * W, y1=(y + h) * H, line=line)
    fig.update_xaxes(range=[0, W], constrain="domain")
    fig.update_yaxes(range=[H, 0], scaleanchor="x", scaleratio=1, constrain="domain")
    fig.update_layout(height=520, margin=dict(t=10, b=10, l=10, r=10), showlegend=False)
    return fig


def rates_chart(rates) -> go.Figure:
    """Detection rate per mask state, one bar per detector side by side."""
    shown = rates.assign(detector=rates["detector"].map(rb.DETECTOR.label))
    f = px.bar(shown, x="group", y="rate", color="detector", barmode="group", text=shown["rate"].map("{:.0%}".format),
               category_orders={"group": ["all", "Wear", "Incorrect", "Not wear"],
                                "detector": [rb.DETECTOR.label(d) for d in rb.DETECTOR.values]},
               labels={"group": "", "rate": "own face found", "detector": ""},
               title="Detection rate by mask state")
    f.update_layout(height=320, yaxis_range=[0, 1.1], margin=dict(t=40, b=10), legend=dict(orientation="h"))
    return f


def marked(path: str, rows: dict, points: bool) -> np.ndarray:
    """The photo with each table's box (detector -> row) and, with ``points``, MTCNN's landmarks."""
    img = compute.image(path)
    for row in rows.values():
        if row is None or np.isnan(row["x"]):
            continue
        color = MTCNN_COLOR if row["source"] == "mtcnn" else HAAR_COLOR
        img = imaging.draw_box(img, (row["x"], row["y"], row["x"] + row["w"], row["y"] + row["h"]), color, 4)
        for x, y in landmark_points(row) if points else []:
            cv2.circle(img, (int(x), int(y)), 6, POINT_COLOR, -1)
    return img


st.title("Faces and crop")
ds = require_dataset()
df = ds.df
recipe = get_recipe()

# --- face detection ------------------------------------------------------------------------
detector = recipe_choice("crop", "detector")
update_recipe("crop", detector=detector)
small = len(df) <= compute.FACES_AUTO_LIMIT
if small:  # every detector, the single ones first, so "both" is put together from their tables
    tables = compute.face_tables(run=True)
    faces = tables[detector]
else:
    # A recipe that crops to faces needs its detector's table (the previews and training compute it
    # anyway), so it is computed without a click; otherwise a large dataset waits for the button.
    needed = recipe.crop.mode == "face"
    clicked = not needed and not compute.faces_on_disk(detector) and st.button(
        f"Detect faces in {len(df):,} images", key="faces_run", type="primary",
        help="About 6 ms an image on one core with MTCNN then Haar; the result is cached on disk, so it runs "
             "once per dataset and detector.")
    faces = compute.faces(run=needed or clicked or compute.faces_on_disk(detector), detector=detector)
    tables = {}
W, H = int(df["width"].median()), int(df["height"].median())
suggested = (0.0, 0.0, 1.0, 1.0)
show_points = param_widget(rb.FACE_LANDMARKS, "faces_landmarks", rb.FACE_LANDMARKS.default)
if faces is None:
    st.info("Face boxes are not computed yet for this dataset: press the button above. "
            "The crop settings below work without them.")
else:
    if not small:
        missing = [name for name in rb.DETECTOR.values if not compute.faces_on_disk(name)]
        compare = bool(missing) and st.button(
            "Compare with the other detectors", key="faces_compare",
            help=f"Runs {', '.join(missing)} once over the dataset (cached on disk afterwards).")
        tables = compute.face_tables(run=compare)
    rates = detection_rates(faces, df)
    r1, r2 = st.columns([1, 2])
    r1.metric("Faces found", f"{rates.iloc[0]['rate']:.0%}", help=f"of {int(rates.iloc[0]['images']):,} images, "
              f"by {rb.DETECTOR.label(detector)}: a face found in the photo itself")
    known = tables or {detector: faces}
    shares = pd.DataFrame({rb.DETECTOR.label(name): source_shares(t).set_index("source")["share"]
                           for name, t in known.items()})
    r1.dataframe(shares.style.format("{:.1%}"))
    r1.caption("Share of photos boxed by each source. Where a photo has no face of its own, the crop uses the "
               "median box of the same person's photos (source: person); a dataset without persons keeps none.")
    r2.plotly_chart(rates_chart(rates_by_detector(known, df)), key="faces_rates")

    if "mtcnn" in tables and "haar" in tables:
        differ = disagreements(tables["mtcnn"], tables["haar"], ("MTCNN", "Haar"))
        with st.expander(f"Photos where MTCNN and Haar disagree: {len(differ):,} of {len(df):,}"):
            st.caption("MTCNN's box in blue (with its landmarks), Haar's in red.")
            by = {name: tables[name].set_index("path") for name in ("mtcnn", "haar")}
            cols = st.columns(6)
            for i, row in enumerate(differ.head(DISAGREE_SHOWN).itertuples()):
                rows = {name: t.loc[row.path] for name, t in by.items() if t.loc[row.path, "source"] == name}
                cols[i % 6].image(imaging.resize_to_height(marked(row.path, rows, show_points), 128),
                                  caption=row.kind)

    st.subheader("Where the faces are")
    h1, h2 = st.columns([2, 3])  # the heatmap goes into h1 once the crop below is settled
    norm = normalized(faces, df)
    with h2:
        k = param_widget(rb.CROP_SPREAD, "faces_k", rb.CROP_SPREAD.default, slider=True)
        suggested = suggest_crop(norm, k)
        x, y, w, h = suggested
        st.write(f"Suggested box (fractions of the frame): x={x:.3f}, y={y:.3f}, w={w:.3f}, h={h:.3f} "
                 f"→ {int(round(w * W))}x{int(round(h * H))} px of a {W}x{H} image.")
        counts = source_shares(faces).set_index("source")["images"]
        st.caption(f"The heatmap and the suggestion use the {len(norm):,} faces found in the photos themselves "
                   f"(MTCNN {counts['mtcnn']:,}, Haar {counts['haar']:,}); the {counts['person']:,} boxes borrowed "
                   "from a person's other photos are left out. Dots are face centres; the dashed box is the "
                   "suggestion, the green one the recipe's crop.")
# --- crop settings -> recipe.crop, recipe.input_size ---------------------------------------
st.subheader("Crop and input size")
c = recipe.crop
m1, m2 = st.columns([3, 2])
mode = recipe_choice("crop", "mode", where=m1)


def use_suggested(box):
    """Button callback: the suggested box becomes the recipe's fixed box and its sliders."""
    if update_recipe("crop", box=tuple(box)):
        reset_widgets(widget_key("crop", "box"))


m2.button("Use the suggested box", key="faces_use_suggested", on_click=use_suggested, args=(suggested,),
          disabled=faces is None)
box = c.box
if mode != "none":
    s = st.columns(4)
    box = tuple(recipe_slider("crop", "box", part=i, where=col) for i, col in enumerate(s))
    bx, by, bw, bh = box
    if bx + bw > 1 or by + bh > 1 or bw <= 0 or bh <= 0:
        box = (bx, by, max(0.01, min(bw, 1 - bx)), max(0.01, min(bh, 1 - by)))
        st.warning(f"The box must lie inside the image; using w={box[2]:.2f}, h={box[3]:.2f}.")
    if mode == "face":
        st.caption("Fixed box above: used for images with no box of their own or their person's.")
margin = c.face_margin
if mode == "face":
    margin = recipe_slider("crop", "face_margin")
i1, i2, _ = st.columns([1, 1, 2])
in_w = recipe_number(None, "input_size", part=0, suffix="w", where=i1)
in_h = recipe_number(None, "input_size", part=1, suffix="h", where=i2)
update_recipe("crop", mode=mode, box=box, face_margin=margin)
update_recipe(None, input_size=(int(in_w), int(in_h)))
recipe = get_recipe()
if faces is not None:
    h1.plotly_chart(heatmap(norm, suggested, recipe.crop, W, H), key="faces_heatmap")
if mode == "face" and faces is None:
    st.warning("Face mode needs face boxes: detect faces above. Until then every image uses the fixed box.")

# --- previews ------------------------------------------------------------------------------
st.subheader("Crops on random samples from every class")
seed = st.number_input("Seed", 0, 10_000, 0, key="faces_seed")
picks = compute.samples(loaded().key, df, 1, int(seed))
aspect = recipe.input_size[0] / recipe.input_size[1]
st.caption("Left: the photo with the suggested box (gold), this image's face box (blue: found by MTCNN, red: by Haar or "
           "borrowed from its person's photos) and its crop (green). Right: the crop resized to the input size, as the model gets it.")
lookup = faces.set_index("path") if faces is not None else None
cols = st.columns(4)
for i, row in enumerate(picks.itertuples()):
    img = compute.image(row.path)
    face = compute.face_box(row.path, faces)
    size = (img.shape[1], img.shape[0])
    own = lookup.loc[row.path] if lookup is not None and row.path in lookup.index else None
    shown = marked(row.path, {"face": own}, show_points) if own is not None else img
    if faces is not None:
        shown = imaging.draw_box(shown, imaging.box_to_pixels(suggested, size), (255, 215, 0), 4)
    shown = imaging.draw_box(shown, crop_box(recipe.crop, size, face, aspect), (0, 220, 0), 4)
    out = preprocess(compute.image_pil(row.path), recipe, face)
    source = f" · face: {own['source']}" if own is not None else ""
    with cols[i % 4]:
        st.markdown(f"**{row.label_name or 'no label'}**")
        st.image([imaging.resize_to_height(shown, 128), imaging.resize_to_height(out, 128)],
                 caption=["photo" + source, f"crop → {out.shape[1]}x{out.shape[0]}"])
