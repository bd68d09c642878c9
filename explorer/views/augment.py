"""Augmentation preview: random train-time draws of one image, next to its validation view."""

import numpy as np
import streamlit as st
import torch

from core import stats
from core.augment import augment_batch, to_uint8_images
from core.preprocess import preprocess
from explorer import state

st.title("Augmentation")
ds = state.require_dataset()
df = ds.df
st.info("Augmentation is for training only. Validation and prediction images are never augmented: "
        "they get just the deterministic crop, resize and enhancement (the validation view on the left).")


def redraw():
    st.session_state["aug_seed"] = st.session_state.get("aug_seed", 0) + 1


@st.fragment
def preview():
    with state.guard():
        a = state.get_recipe().augment
        st.subheader("Train-time augmentation")
        c1, c2, c3 = st.columns(3)
        v = {}
        v["hflip"] = c1.toggle("Horizontal flip (50%)", key=state.init_widget("r.augment.hflip", a.hflip))
        v["rotate"] = c1.slider("Rotation (± degrees)", 0.0, 45.0, step=1.0,
                                key=state.init_widget("r.augment.rotate", float(a.rotate)))
        v["translate"] = c1.slider("Shift (± fraction of size)", 0.0, 0.3, step=0.01,
                                   key=state.init_widget("r.augment.translate", float(a.translate)))
        v["scale"] = c2.slider("Zoom (± fraction)", 0.0, 0.5, step=0.01,
                               key=state.init_widget("r.augment.scale", float(a.scale)))
        v["brightness"] = c2.slider("Brightness jitter", 0.0, 1.0, step=0.05,
                                    key=state.init_widget("r.augment.brightness", float(a.brightness)))
        v["contrast"] = c2.slider("Contrast jitter", 0.0, 1.0, step=0.05,
                                  key=state.init_widget("r.augment.contrast", float(a.contrast)))
        v["saturation"] = c3.slider("Saturation jitter", 0.0, 1.0, step=0.05,
                                    key=state.init_widget("r.augment.saturation", float(a.saturation)))
        v["erasing"] = c3.slider("Random erasing (probability)", 0.0, 1.0, step=0.05,
                                 key=state.init_widget("r.augment.erasing", float(a.erasing)))
        v["noise"] = c3.slider("Gaussian noise (std)", 0.0, 0.5, step=0.01,
                               key=state.init_widget("r.augment.noise", float(a.noise)))
        state.update_recipe("augment", **v)
        recipe = state.get_recipe()

        p1, p2, p3 = st.columns([3, 1, 1])
        choices = state.image_choices(state.loaded().key, df)
        row = p1.selectbox("Image", list(choices), format_func=choices.get, key="aug_image")
        n = p2.slider("Draws", 4, 24, 12, step=4, key="aug_n")
        p3.button("Redraw", key="aug_redraw", on_click=redraw, help="New random parameters (next seed).")
        seed = st.session_state.get("aug_seed", 0)

        path = df.iloc[row]["path"]
        base = preprocess(state.image_pil(path), recipe, state.face_box(path, state.faces_for_recipe(recipe)))
        batch = torch.from_numpy(np.stack([base] * n))
        draws = to_uint8_images(augment_batch(batch, recipe.augment, torch.Generator().manual_seed(seed))).numpy()
        factor = stats.display_scale(base.shape, 192)
        left, right = st.columns([1, 4])
        left.image(stats.upscale_nearest(base, factor), caption="Validation view (never augmented)")
        with right:
            st.caption(f"{n} random training draws of the same image (seed {seed})")
            cols = st.columns(6)
            for i, img in enumerate(draws):
                cols[i % 6].image(stats.upscale_nearest(img, factor))


preview()
