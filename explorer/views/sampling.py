"""Oversampling: class counts of the training split before and after, and SMOTE's synthetic images."""

import plotly.express as px
import streamlit as st

from core import stats
from explorer import compute
from explorer.data import loaded
from explorer.guard import PageStop, require_dataset
from explorer.recipe_state import get_recipe, init_widget, update_recipe
from explorer.widgets import current, field_range, recipe_choice, recipe_param, recipe_slider, widget_key

SIZE_PRESETS = [(12, 16), (24, 32), (36, 48), (48, 64)]  # offered SMOTE sizes (w, h), kept to the recipe's range

st.title("Oversampling")
ds = require_dataset()
df = ds.df
if not ds.has_labels:
    st.info("This dataset has no labels (an eval set without gt.csv), so there is nothing to balance.")
    raise PageStop
st.caption(f"Only the training split is oversampled. Persons are split {1 - compute.VAL_RATIO:.0%} / "
           f"{compute.VAL_RATIO:.0%} (seed {compute.SPLIT_SEED}); the validation split keeps its real counts.")


def smote_sizes() -> list[tuple[int, int]]:
    """The presets inside the recipe's allowed range, plus the recipe's own size."""
    lo, hi = field_range("sampling", "smote_size")
    sizes = [wh for wh in SIZE_PRESETS if lo <= min(wh) and max(wh) <= hi]
    own = tuple(current("sampling", "smote_size"))
    return sizes if own in sizes else sizes + [own]


c1, c2, c3, c4 = st.columns([2, 2, 1, 1])
method = recipe_choice("sampling", "method", where=c1)
target = recipe_slider("sampling", "target", where=c2)
k = recipe_slider("sampling", "k_neighbors", where=c3, disabled=method != "smote")
size = c4.selectbox(recipe_param("sampling", "smote_size").label, smote_sizes(), format_func=lambda wh: f"{wh[0]}x{wh[1]}",
                    key=init_widget(widget_key("sampling", "smote_size"), tuple(current("sampling", "smote_size"))),
                    disabled=method != "smote")
update_recipe("sampling", method=method, target=target, k_neighbors=int(k), smote_size=tuple(size))
recipe = get_recipe()

info = loaded()
train_idx, val_idx = compute.split(info.key, df)
labels = df["label"].to_numpy()
train_df = df.iloc[train_idx]
images = features = None
if method == "smote":
    images = compute.train_images(train_df, recipe, compute.faces_for_recipe(recipe))
    features = compute.smote_features(f"{info.key}|{recipe.preprocess_key()}", tuple(size), images)
try:
    plan = compute.sample_plan(f"{info.key}|{recipe.preprocess_key()}|{size}", method, float(target), int(k),
                             labels[train_idx], features)
except ValueError as exc:
    st.error(f"Oversampling failed: {exc}")
    raise PageStop
for note in plan.notes:
    st.info(note)
if method == "weighted":
    st.caption("Weighted: the training split keeps its images; each epoch draws as many with replacement, rare "
               "classes more often. *train after* is the expected count per epoch.")
table = stats.split_counts(labels, train_idx, val_idx, plan.counts(), ds.class_names)
missing = table.loc[(table["train_before"] == 0) & (table["val"] > 0), "name"]
if len(missing):
    st.warning("No training images (all of them went to validation), so nothing to oversample: "
               + ", ".join(missing))
m1, m2, m3 = st.columns(3)
m1.metric("Training images", f"{int(table.train_after.sum()):,}",
          delta=f"{int(table.train_after.sum() - table.train_before.sum()):+,} added")
m2.metric("Validation images (unchanged)", f"{int(table.val.sum()):,}")
m3.metric("Synthetic (SMOTE) images", f"{int(plan.synthetic.sum()):,}")
long = table.melt(id_vars=["label", "name"], value_vars=["train_before", "train_after", "val"],
                  var_name="split", value_name="images")
long["split"] = long["split"].map({"train_before": "train, before", "train_after": "train, after",
                                   "val": "validation (unchanged)"})
fig = px.bar(long, x="name", y="images", color="split", barmode="group", labels={"name": "class", "split": ""})
fig.update_layout(height=430, xaxis_tickangle=-40, margin=dict(t=30, b=10))
st.plotly_chart(fig, key="smp_counts")
st.dataframe(table.rename(columns={"train_before": "train before", "train_after": "train after"}),
             hide_index=True, key="smp_table")

if method == "smote" and plan.synthetic.any():
    st.subheader("Synthetic images and their parents")
    st.caption("Each synthetic image lies on the line between two images of the same class: "
               "parent A + gap × (parent B − parent A), on preprocessed pixels.")
    cols = st.columns(3)
    for j, i in enumerate(stats.synthetic_examples(plan.a, plan.b, plan.gap, 6)):
        a, b, gap = int(plan.a[i]), int(plan.b[i]), float(plan.gap[i])
        with cols[j % 3]:
            st.markdown(f"**{ds.class_names[int(plan.labels[i])]}**")
            st.image([images[a], stats.interpolate(images[a], images[b], gap), images[b]],
                     caption=["parent A", f"synthetic (gap {gap:.2f})", "parent B"], width=int(images.shape[2]))
elif method == "random":
    st.caption("Random duplication repeats existing training images; it creates no new pixels.")
