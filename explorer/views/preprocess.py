"""Preprocessing: enhancement sliders with a before/after preview that is exactly what the model sees."""

import io

import numpy as np
import streamlit as st

from core import stats
from core.preprocess import load_rgb, preprocess
from explorer import state

DISPLAY_HEIGHT = 384  # on-screen height of the before/after pair
EQUALIZE = {"none": "None", "hist": "Histogram", "clahe": "CLAHE (adaptive)"}

st.title("Preprocessing")
ds = state.require_dataset()
df = ds.df
st.caption("Crop → resize to the input size → enhance: the deterministic part of the recipe, applied to "
           "training, validation and prediction alike. Set the crop and input size on *Faces and crop*.")


def pick_image():
    """(PIL image, face box or None, name, display-size copy) from the dataset or an upload."""
    source = st.radio("Image", ["Dataset image", "Upload"], horizontal=True, key="pp_source")
    if source == "Upload":
        upload = st.file_uploader("Image file", type=["jpg", "jpeg", "png"], key="pp_upload")
        if upload is not None:
            try:
                img = load_rgb(io.BytesIO(upload.getvalue()))
                return img, None, upload.name, stats.resize_to_height(np.asarray(img), DISPLAY_HEIGHT)
            except Exception:  # noqa: BLE001 - PIL raises several types for junk files
                st.error(f"{upload.name}: not an image PIL can open (allowed: JPEG, PNG).")
        st.caption("No upload yet: showing a dataset image.")
    choices = state.image_choices(state.loaded().key, df)
    row = st.selectbox("Dataset image", list(choices), format_func=choices.get, key="pp_image")
    path = df.iloc[row]["path"]
    recipe = state.get_recipe()
    face = state.face_box(path, state.faces_for_recipe(recipe))
    return state.image_pil(path), face, df.iloc[row]["rel"], state.thumbnail(path, DISPLAY_HEIGHT)


@st.fragment
def preview():
    """Sliders and preview in one fragment: a slider move reruns only this part of the page."""
    with state.guard():
        e = state.get_recipe().enhance
        controls, pair = st.columns([1, 2])
        with controls:
            values = {name: st.slider(name.capitalize() if name != "color" else "Colour", 0.0, 3.0, step=0.05,
                                      key=state.init_widget(f"r.enhance.{name}", float(getattr(e, name))),
                                      help="1 leaves the image unchanged, 0 removes the property.")
                      for name in ("brightness", "contrast", "sharpness", "color")}
            values["grayscale"] = st.toggle("Grayscale", key=state.init_widget("r.enhance.grayscale", e.grayscale))
            values["equalize"] = st.radio("Equalisation", list(EQUALIZE), format_func=EQUALIZE.get, horizontal=True,
                                          key=state.init_widget("r.enhance.equalize", e.equalize))
            state.update_recipe("enhance", **values)
            img, face, name, shown = pick_image()
        recipe = state.get_recipe()
        after = preprocess(img, recipe, face)
        factor = stats.display_scale(after.shape, DISPLAY_HEIGHT)
        with pair:
            before_col, after_col = st.columns(2)
            before_col.image(shown, caption=f"Before: {name} ({img.size[0]}x{img.size[1]})")
            after_col.image(stats.upscale_nearest(after, factor),
                            caption=f"After: {after.shape[1]}x{after.shape[0]}, what the model sees "
                                    f"(shown {factor}x, nearest neighbour)")
            st.caption("Recipe snippet that reproduces this preview exactly:")
            st.code(state.compact_json(recipe.preprocess_dict()), language="json", wrap_lines=True)
        st.subheader("Across classes")
        picks = state.samples(state.loaded().key, df, 1, 0)
        cols = st.columns(9)
        table = state.faces_for_recipe(recipe)
        for i, row in enumerate(picks.itertuples()):
            out = preprocess(state.image_pil(row.path), recipe, state.face_box(row.path, table))
            cols[i % 9].image(out, caption=row.label_name or "no label")


preview()
