"""Data health: duplicates, one person under two ids, eval photos that are also training photos,
and dark, bright, blurred, blank or odd-sized photos, found before training (core.health);
what to do about them: keep duplicated persons in one fold, leave flagged photos out."""

from pathlib import Path

import pandas as pd
import streamlit as st

from core import rulebook as rb
from core.errors import UserError
from core.health import ISSUES, check_health, is_cached, leave_out_rows, write_health_csv, write_leave_out
from core.paths import eval_dir_beside
from explorer.compute import thumbnail
from explorer.data import load_dataset, loaded
from explorer.guard import PageStop, require_dataset
from explorer.recipe_state import init_widget
from explorer.train_fields import HEALTH_FILES

AUTO_LIMIT = 3000  # check without a click up to this many images (or when the result is on disk)
DUPLICATES, QUALITY = rb.HEALTH_DUPLICATES, rb.HEALTH_QUALITY
THUMB = 120
LABEL = rb.HEALTH_ISSUE.label


@st.cache_data(show_spinner="Reading the health check…", max_entries=4)
def findings(files_key: str, eval_key: str, data: str, eval_dir: str | None):
    """The health check of ``data`` (and ``eval_dir``), read from its disk cache once computed;
    ``files_key`` and ``eval_key`` change with the training and the eval files."""
    return check_health(data, eval_dir)


@st.cache_data(show_spinner=False, max_entries=8)
def on_disk(files_key: str, eval_key: str, data: str, eval_dir: str | None) -> bool:
    return is_cached(data, eval_dir)


def short(path: str, root: Path) -> str:
    """A photo's caption: its folder's first part (a person id, a class) and its name, cut short."""
    p = Path(path)
    folder = p.parent.name.split("_")[0]
    return f"{folder}/{p.stem[:12]}" if p.parent != root else p.stem[:12]


def show_pairs(pairs: pd.DataFrame, root: Path, limit: int) -> None:
    """Matched pairs side by side, one pair per column: the photo above, its copy below."""
    shown = pairs.head(limit)
    cols = st.columns(max(4, len(shown)))
    for col, row in zip(cols, shown.itertuples()):
        col.image(thumbnail(row.a, THUMB), caption=short(row.a, root))
        col.image(thumbnail(row.b, THUMB), caption=short(row.b, root))
        col.caption(f"aligned match {row.score:.3f}")


def show_group(issue: str, group: str, members: pd.DataFrame, pairs: pd.DataFrame, root: Path) -> None:
    with st.container(border=True):
        if issue == "duplicate_person":
            st.markdown(f"**{group}** · persons {', '.join(members['person'])} · match {members['score'].max():.3f}")
            show_pairs(pairs[pairs["group"] == group], root, 7)
        elif issue == "train_eval_overlap":
            st.markdown(f"**{group}** · training person {members['person'].iloc[0]}")
            show_pairs(pairs[pairs["group"] == group], root, 4)
        else:
            st.markdown(f"**{group}** · {len(members)} photos · persons {', '.join(sorted(set(members['person'])))}")
            cols = st.columns(max(2, min(6, len(members))))
            for col, row in zip(cols, members.itertuples()):
                col.image(thumbnail(row.path, THUMB), caption=f"{short(row.path, root)} · {row.score:.3f}")


st.title("Data health")
ds = require_dataset()
info = loaded()
st.caption("Faults that spoil a validation score without a wrong label: the same photo twice, one person under two "
           "ids (a leak through the person split), eval photos that are also training photos, and photos too dark, "
           "too bright, blurred, nearly blank or of an odd size. cleanvision's checks, plus each photo judged "
           "against the same person's other photos; see docs/health.md.")
beside = eval_dir_beside(info.path) if ds.layout == "train" else None
eval_text = st.text_input("Eval folder (its photos are checked against the training photos)", key=init_widget(
    "health.eval", str(beside) if beside else ""), placeholder="optional: a competition eval folder")
eval_dir, eval_key = None, ""
if eval_text.strip():
    try:
        eval_dir = str(rb.EVAL_DIR.check(eval_text, "Eval folder"))
    except UserError as exc:
        st.error(str(exc))
        raise PageStop
    evals = load_dataset(eval_dir)  # scanned once per state of its files, like the sidebar's dataset
    if evals.error:
        st.error(f"Eval folder: {evals.error}")
        raise PageStop
    eval_key = evals.files_key
done = on_disk(info.files_key, eval_key, str(info.path), eval_dir)
if not done and len(ds.df) > AUTO_LIMIT and not st.button(f"Check {len(ds.df):,} images", key="health.run", type="primary",
                              help="About 3 ms an image on two cores; the result is cached on disk, so it runs "
                                   "once per dataset."):
    st.info("The check has not run on this dataset yet: press the button above.")
    raise PageStop
if not done:  # the first time: with a progress bar (the result then comes from the disk cache)
    bar = st.progress(0.0, text="Checking the images…")
    check_health(info.path, eval_dir, progress=lambda n, total: bar.progress(min(1.0, n / max(total, 1)),
                                                                             text="Checking the images…"))
    bar.empty()
    on_disk.clear()
result = findings(info.files_key, eval_key, str(info.path), eval_dir)
table = result.findings

# --- counts ------------------------------------------------------------------------------
counts = result.counts()
st.subheader("What was found")
looked = f"{result.images:,} images" + (f" and {result.eval_images:,} eval images" if eval_dir else "")
st.caption(f"{len(table):,} findings on {looked}."
           + (f" {len(result.unreadable)} file(s) could not be decoded and were skipped." if result.unreadable else ""))
for chunk in (DUPLICATES, QUALITY):
    cols = st.columns(len(chunk))
    for col, issue in zip(cols, chunk):
        col.metric(LABEL(issue), counts[issue], help=f"issue `{issue}` in health.csv")
with st.expander(f"Every finding ({len(table):,})"):
    st.dataframe(table, hide_index=True, key="health.table",
                 column_config={"score": st.column_config.NumberColumn(format="%.3f")})

# --- duplicate groups --------------------------------------------------------------------
root = Path(info.path)
shown = st.number_input("Groups and photos shown per issue", 1, 200, key=init_widget("health.shown", 5))
st.subheader("Duplicates, side by side")
any_group = False
for issue in DUPLICATES:
    part = table[table["issue"] == issue]
    if part.empty:
        continue
    any_group = True
    groups = list(dict.fromkeys(part["group"]))
    st.markdown(f"#### {LABEL(issue)} · {len(groups)} group(s)")
    for group in groups[: int(shown)]:
        show_group(issue, group, part[part["group"] == group], result.pairs, root)
if not any_group:
    st.caption("No duplicates found.")

# --- worst photos per quality issue ------------------------------------------------------
st.subheader("The worst photos per issue")
any_photo = False
for issue in QUALITY:
    part = table[table["issue"] == issue].sort_values("score", ascending=False)
    if part.empty:
        continue
    any_photo = True
    st.markdown(f"#### {LABEL(issue)} · {len(part)} photo(s)")
    cols = st.columns(6)
    for col, row in zip(cols, part.head(min(int(shown), 6)).itertuples()):
        col.image(thumbnail(row.path, THUMB), caption=f"{short(row.path, root)} · {row.score:.2f}")
if not any_photo:
    st.caption("No photo flagged for its quality.")

def save_file(label: str, key: str, default: Path, button: str, button_key: str, write, what: str, flag: str,
              disabled: bool = False) -> None:
    """A path input and a button that writes a file there, then says how training uses it."""
    typed = st.text_input(label, key=init_widget(key, str(default)))
    if st.button(button, key=button_key, disabled=disabled):
        try:
            out = write(rb.OUT_CSV.check(typed, label))
        except UserError as exc:
            st.error(str(exc))
        else:
            st.success(f"Wrote {what} to `{out}`. Train with it: `python -m core train --data {info.path} "
                       f"{flag} {out}` (or tick it on the Train page)")


# --- what to do --------------------------------------------------------------------------
st.subheader("Before training")
folder = root.parent
c = st.columns(2)
with c[0]:
    st.markdown("**Keep duplicated persons in one fold**")
    persons = int((table["issue"] == "duplicate_person").sum())
    st.caption(f"{persons} person id(s) are copies of another; with `--health FILE` the person split puts every "
               "such set, and persons sharing a copied photo, in one fold, so no validation score counts a person "
               "it trained on. The run records it in config.json.")
    key, name = HEALTH_FILES["health"]
    save_file("Health CSV", key, folder / name, "Save health.csv for training", "health.save",
              lambda path: write_health_csv(table, path), f"{len(table)} findings", "--health")
with c[1]:
    st.markdown("**Leave flagged photos out of training**")
    chosen = st.multiselect("Leave out the photos of", ISSUES, format_func=LABEL, key=init_widget(
        "health.leave", [i for i in ISSUES if counts[i]]),
        help="Duplicates keep one copy; a duplicated person keeps one id; for an eval photo also in training, "
             "the training copy goes. Nothing is deleted: the dataset layer skips the listed files.")
    rows = leave_out_rows(result, chosen)
    st.caption(f"{len(rows)} photo(s) or person folder(s) would be left out.")
    key, name = HEALTH_FILES["leave_out"]
    save_file("Leave-out CSV", key, folder / name, "Write the leave-out file",
              "health.leave_write", lambda path: write_leave_out(rows, path), f"{len(rows)} row(s)", "--leave-out",
              disabled=rows.empty)
