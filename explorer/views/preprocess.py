"""Preprocessing: enhancement sliders with a before/after preview that is exactly what the model sees."""

import io

import numpy as np
import streamlit as st

from core.images import load_rgb
from core.preprocess import preprocess
from explorer import compute, imaging
from explorer.data import loaded
from explorer.guard import guard, require_dataset
from explorer.recipe_state import compact_json, get_recipe, update_recipe
from explorer.widgets import recipe_choice, recipe_slider, recipe_toggle

DISPLAY_HEIGHT = 384  # on-screen height of the before/after pair
FACTORS = ("brightness", "contrast", "sharpness", "color")  # label, range and step: the recipe's

st.title("Preprocessing")
ds = require_dataset()
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
                return img, None, upload.name, imaging.resize_to_height(np.asarray(img), DISPLAY_HEIGHT)
            except Exception:  # noqa: BLE001 - PIL raises several types for junk files
                st.error(f"{upload.name}: not an image PIL can open (allowed: JPEG, PNG).")
        st.caption("No upload yet: showing a dataset image.")
    choices = compute.image_choices(loaded().key, df)
    row = st.selectbox("Dataset image", list(choices), format_func=choices.get, key="pp_image")
    path = df.iloc[row]["path"]
    face = compute.face_box(path, compute.faces_for_recipe(get_recipe()))
    return compute.image_pil(path), face, df.iloc[row]["rel"], compute.thumbnail(path, DISPLAY_HEIGHT)


@st.fragment
def preview():
    """Sliders and preview in one fragment: a slider move reruns only this part of the page."""
    with guard():
        controls, pair = st.columns([1, 2])
        with controls:
            values = {name: recipe_slider("enhance", name) for name in FACTORS}
            values["grayscale"] = recipe_toggle("enhance", "grayscale")
            values["equalize"] = recipe_choice("enhance", "equalize")
            update_recipe("enhance", **values)
            img, face, name, shown = pick_image()
        recipe = get_recipe()
        after = preprocess(img, recipe, face)
        factor = imaging.display_scale(after.shape, DISPLAY_HEIGHT)
        with pair:
            before_col, after_col = st.columns(2)
            before_col.image(shown, caption=f"Before: {name} ({img.size[0]}x{img.size[1]})")
            after_col.image(imaging.upscale_nearest(after, factor),
                            caption=f"After: {after.shape[1]}x{after.shape[0]}, what the model sees "
                                    f"(shown {factor}x, nearest neighbour)")
            st.caption("Recipe snippet that reproduces this preview exactly:")
            st.code(compact_json(recipe.preprocess_dict()), language="json", wrap_lines=True)
        st.subheader("Across classes")
        picks = compute.samples(loaded().key, df, 1, 0)
        cols = st.columns(9)
        table = compute.faces_for_recipe(recipe)
        for i, row in enumerate(picks.itertuples()):
            out = preprocess(compute.image_pil(row.path), recipe, compute.face_box(row.path, table))
            cols[i % 9].image(out, caption=row.label_name or "no label")


preview()
