"""Overview: counts, class balance, breakdowns, image sizes, image properties by class, sample
images, corrections."""

import pandas as pd
import plotly.express as px
import streamlit as st

from core import stats
from explorer import charts, compute
from explorer.data import loaded
from explorer.guard import require_dataset, show_problems


@st.cache_data(show_spinner="Measuring brightness, contrast and blur…", max_entries=8)
def properties(key: str, _df: pd.DataFrame, per_class: int) -> pd.DataFrame:
    return stats.property_table(_df, per_class)


def ages_by_person(df) -> None:
    """Persons at each age, the 30 and 60 boundaries marked, and who sits just below 60."""
    t = stats.persons_by_age(df)
    if t.empty:
        return
    f = px.bar(t, x="age", y="persons", title="Persons by age (the lines are the 30 and 60 boundaries)")
    for boundary in (29.5, 59.5):
        f.add_vline(x=boundary, line_dash="dash", line_color="grey")
    f.update_layout(height=300, margin=dict(t=40, b=10))
    st.plotly_chart(f, key="ov_ages")
    near = {int(a): int(n) for a, n in zip(t["age"], t["persons"]) if 57 <= a <= 59}
    st.caption(f"Persons aged 57-59: {sum(near.values())} "
               f"({', '.join(f'{n} aged {a}' for a, n in near.items()) or 'none'}). Training with "
               "`--old-age N` (Train page, *Competition tricks*) puts those aged N to 59 in the 60+ group.")


st.title("Overview")
ds = require_dataset()
df = ds.df
summary = ds.summary()

cols = st.columns(5)
cols[0].metric("Images", f"{summary['images']:,}")
cols[1].metric("Persons", f"{summary['persons']:,}" if summary["persons"] is not None else "—")
cols[2].metric("Classes with images", summary["classes"])
cols[3].metric("Layout", ds.layout, help="train: competition train folder; eval: competition eval folder; folders: one folder per class")
cols[4].metric("Problems", summary["problems"])
show_problems(ds.problems)
if ds.skipped_hidden:
    st.caption(f"{ds.skipped_hidden} hidden file(s) such as AppleDouble `._*` were skipped on purpose.")

# --- classes -----------------------------------------------------------------------------
if not ds.has_labels:
    st.info("This is an evaluation set without answers (no gt.csv): there are no labels, "
            "so there is nothing to count per class. Image sizes and samples follow.")
else:
    counts = stats.class_counts(df, ds.class_names)
    imb = stats.imbalance(counts)
    st.subheader("Classes")
    c1, c2, c3 = st.columns(3)
    c1.metric("Imbalance ratio (largest / smallest)", f"{imb['ratio']:.1f}x")
    c2.metric("Largest class", f"{imb['largest'][1]:,}", help=imb["largest"][0])
    c3.metric("Smallest class", f"{imb['smallest'][1]:,}", help=imb["smallest"][0])
    counts["flag"] = counts["minority"].map({True: f"under {stats.MINORITY_SHARE:.0%} of the mean", False: "other"})
    fig = px.bar(counts, x="name", y="count", color="flag", text="count",
                 color_discrete_map={"other": "#4c78a8", f"under {stats.MINORITY_SHARE:.0%} of the mean": "#e45756"},
                 labels={"name": "class", "count": "images", "flag": ""})
    fig.update_layout(xaxis_tickangle=-40, height=430, margin=dict(t=30, b=10), xaxis={"categoryorder": "array",
                      "categoryarray": list(counts["name"])})
    st.plotly_chart(fig, key="ov_classes")
    if imb["minority"]:
        st.warning(f"Minority classes (under {stats.MINORITY_SHARE:.0%} of the mean of {imb['mean']:.0f} images): "
                   + ", ".join(imb["minority"]))
    if imb["empty"]:
        st.warning("Classes without any image: " + ", ".join(imb["empty"]))

    if (df["mask"] >= 0).any():  # competition labels: mask / gender / age breakdowns
        st.subheader("Mask, gender and age")
        b1, b2, b3 = st.columns(3)
        for col, column, title in ((b1, "mask_name", "Images by mask"), (b2, "gender_name", "Images by gender"),
                                   (b3, "age_name", "Images by age group")):
            t = stats.group_counts(df, [column]).sort_values(column)
            f = px.bar(t, x=column, y="images", text="images", title=title, labels={column: ""})
            f.update_layout(height=300, margin=dict(t=40, b=10))
            col.plotly_chart(f, key=f"ov_{column}")
        if ds.has_persons:
            p1, p2 = st.columns(2)
            p1.dataframe(stats.person_counts(df, "gender_name"), hide_index=True)
            p2.dataframe(stats.person_counts(df, "age_name"), hide_index=True)
            ages_by_person(df)
        t = stats.group_counts(df, ["mask_name", "gender_name", "age_name"])
        f = px.sunburst(t, path=["mask_name", "gender_name", "age_name"], values="images",
                        title="Mask → gender → age (images)")
        f.update_layout(height=480, margin=dict(t=40, b=10))
        st.plotly_chart(f, key="ov_sunburst")

    fixed = stats.corrected_rows(df)
    if len(fixed):
        st.subheader("Rows changed by label corrections")
        st.dataframe(fixed, hide_index=True)

# --- sizes ---------------------------------------------------------------------------------
st.subheader("Image sizes")
sizes = stats.size_table(df)
if len(sizes) == 1:
    w, h, aspect, n = sizes.iloc[0]
    st.write(f"All {int(n):,} images are {int(w)}x{int(h)} pixels (width x height, aspect {aspect:.3f}).")
else:
    s1, s2 = st.columns(2)
    s1.dataframe(sizes, hide_index=True)
    f = px.histogram(df.assign(aspect=df["width"] / df["height"]), x="aspect", nbins=30,
                     title="Aspect ratio (width / height)")
    f.update_layout(height=300, margin=dict(t=40, b=10))
    s2.plotly_chart(f, key="ov_aspect")

# --- image properties ----------------------------------------------------------------------
if ds.has_labels:  # by class: a set without answers has none
    st.subheader("Image properties by class")
    per_class_props = st.slider("Images measured per class", 5, 200, 30, step=5, key="ov_props_n",
                                help="A seeded random sample of each class, so the page stays quick on a large set.")
    props = properties(loaded().key, df, per_class_props)
    st.caption(f"Brightness, contrast and blur of {len(props):,} images, measured on the grey levels at "
               f"{stats.PROPERTY_HEIGHT} pixels high. A class that differs here can be learned from the lighting "
               "instead of the face; a blurry class from the blur.")
    for column, title in stats.PROPERTIES.items():
        st.plotly_chart(charts.property_boxes(props, column, title), key=f"ov_prop_{column}")

# --- samples -------------------------------------------------------------------------------
st.subheader("Sample images")
k1, k2 = st.columns(2)
per_class = k1.slider("Images per class", 1, 8, 4, key="ov_per_class")
seed = k2.number_input("Seed", 0, 10_000, 0, key="ov_seed")
picks = compute.samples(loaded().key, df, per_class, int(seed))
groups = list(picks.groupby("label", sort=True)) if ds.has_labels else [(-1, picks)]
grid = st.columns(3)
for i, (label, rows) in enumerate(groups):
    with grid[i % 3]:
        name = ds.class_names[label] if label >= 0 else "no label"
        st.markdown(f"**{name}** · {int((df['label'] == label).sum()):,} images")
        st.image([compute.thumbnail(p, 96) for p in rows["path"]])
