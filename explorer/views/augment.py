"""Augmentation preview: random train-time draws of one image, next to its validation view."""

import numpy as np
import streamlit as st
import torch

from core.augment import augment_batch, to_uint8_images
from core.preprocess import preprocess
from explorer import compute, imaging
from explorer.data import loaded
from explorer.guard import guard, require_dataset
from explorer.recipe_state import get_recipe, update_recipe
from explorer.widgets import recipe_slider, recipe_toggle

# The column of each train-time transform's slider; label, range and step are the recipe's.
SLIDERS = {"rotate": 0, "translate": 0, "scale": 1, "brightness": 1, "contrast": 1, "saturation": 2, "erasing": 2,
           "noise": 2}

st.title("Augmentation")
ds = require_dataset()
df = ds.df
st.info("Augmentation is for training only. Validation and prediction images are never augmented: "
        "they get just the deterministic crop, resize and enhancement (the validation view on the left).")


def redraw():
    st.session_state["aug_seed"] = st.session_state.get("aug_seed", 0) + 1


@st.fragment
def preview():
    with guard():
        st.subheader("Train-time augmentation")
        cols = st.columns(3)
        v = {"hflip": recipe_toggle("augment", "hflip", where=cols[0])}
        for name, col in SLIDERS.items():
            v[name] = recipe_slider("augment", name, where=cols[col])
        update_recipe("augment", **v)
        recipe = get_recipe()

        p1, p2, p3 = st.columns([3, 1, 1])
        choices = compute.image_choices(loaded().key, df)
        row = p1.selectbox("Image", list(choices), format_func=choices.get, key="aug_image")
        n = p2.slider("Draws", 4, 24, 12, step=4, key="aug_n")
        p3.button("Redraw", key="aug_redraw", on_click=redraw, help="New random parameters (next seed).")
        seed = st.session_state.get("aug_seed", 0)

        path = df.iloc[row]["path"]
        base = preprocess(compute.image_pil(path), recipe, compute.face_box(path, compute.faces_for_recipe(recipe)))
        batch = torch.from_numpy(np.stack([base] * n))
        draws = to_uint8_images(augment_batch(batch, recipe.augment, torch.Generator().manual_seed(seed))).numpy()
        factor = imaging.display_scale(base.shape, 192)
        left, right = st.columns([1, 4])
        left.image(imaging.upscale_nearest(base, factor), caption="Validation view (never augmented)")
        with right:
            st.caption(f"{n} random training draws of the same image (seed {seed})")
            cols = st.columns(6)
            for i, img in enumerate(draws):
                cols[i % 6].image(imaging.upscale_nearest(img, factor))


preview()
