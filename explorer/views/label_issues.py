"""Label issues: find the training labels a K-fold run keeps contradicting, look at the person's
photos, accept or dismiss each suggestion, retrain with the corrections, compare on the Runs page.

Ranking is core.label_issues (cleanlab on the run's out-of-fold probabilities); trainings start
in the background through core.launch, like the Train page's.
"""

from pathlib import Path

import pandas as pd
import streamlit as st

from core import label_issues as li
from core import launch
from core import rulebook as rb
from core.devices import resolve_device
from core.errors import UserError
from core.training.config import TrainConfig, with_device_defaults
from explorer import label_review as review
from explorer import report
from explorer.data import loaded, runs_dir
from explorer.guard import PageStop, require_dataset
from explorer.recipe_state import get_recipe, init_widget
from explorer.widgets import param_widget

REFRESH_S = 2.0
STATES = ("open", "accepted", "dismissed")


def start(cfg: TrainConfig, recipe, what: str) -> None:
    try:
        launch.start(cfg, recipe, cfg.out)
    except launch.AlreadyRunning as exc:
        st.warning(str(exc))
    except (OSError, UserError) as exc:
        st.error(f"Could not start the training: {exc}")
    else:
        st.toast(f"{what} started in the background.", icon=":material/model_training:")


@st.fragment(run_every=REFRESH_S)
def follow(record: launch.Launch) -> None:
    """Progress of the training started from the app; the page redraws when it ends."""
    now = launch.poll(record)
    if not now.live:
        st.rerun()
    report.show_progress(now)
    st.caption(f"`{record.command}`")


st.title("Label issues")
ds = require_dataset()
info = loaded()
runs = runs_dir()
st.caption("Suspects are the labels that a K-fold run's models contradict on persons they never trained on, "
           "ranked by cleanlab's label quality score (0: surely wrong). A wrong gender or age shows on all seven "
           "photos of a person, a swapped normal / incorrect_mask pair on two.")

# --- 1 · a K-fold run ---------------------------------------------------------------------
st.subheader("1 · Out-of-fold predictions")
record = launch.current(runs)
if record is not None and launch.poll(record).live:
    follow(record)
found = review.kfold_runs(runs, info.path)
c = st.columns([3, 1, 1])
defaults = with_device_defaults(TrainConfig(), resolve_device("auto").type)
folds = param_widget(rb.FINDER_FOLDS, "li.folds", rb.FINDER_FOLDS.default, where=c[1])
epochs = param_widget(rb.EPOCHS, "li.epochs", defaults.epochs, where=c[2])
if st.button(f"Train a {folds}-fold run on this dataset", key="li.train", disabled=ds.layout == "eval",
             help="The Train page's defaults and the sidebar's recipe and corrections, with K folds: every image "
                  "gets a prediction from the model that did not train on its person."):
    start(li.finder_config(info.path, int(folds), epochs=int(epochs), corrections=info.corrections, out=str(runs)),
          get_recipe(), f"A {folds}-fold training")
if not found:
    st.info(f"No finished K-fold run of `{info.path}` in `{runs}` yet. Train one above, or from the command line: "
            f"`python -m core label-issues --data {info.path} --runs {runs}`.")
    raise PageStop
run = found[c[0].selectbox("Suspects from the run", range(len(found)), key="li.run",
                           format_func=lambda i: found[i].name)]
persons, images = review.suspects(str(run), (run / "val_predictions.csv").stat().st_mtime)

# --- 2 · suspects -------------------------------------------------------------------------
st.subheader("2 · Suspects")
csv_text = st.text_input("Corrections CSV (person,field,value)", key=init_widget(
    "li.corrections", review.default_corrections(info.path, info.corrections)),
    help="Accept writes here, in the form the sidebar and `--corrections` read; dismissed suggestions are kept "
         "beside it (.dismissed.csv).")
try:
    csv = str(review.corrections_file(csv_text))
except UserError as exc:
    st.error(str(exc))
    raise PageStop
message = st.session_state.pop("li.message", None)
if message:
    st.error(message)
state = li.review_state(persons, csv)
caption = review.planted_caption(info.path, persons, run)
if caption:
    st.info(caption)
c = st.columns([2, 1])
shown_states = c[0].multiselect("Show", STATES, default=["open", "accepted"], key="li.show")
count = c[1].number_input("Suspects shown", 1, max(1, len(persons)), key=init_widget("li.n", min(15, len(persons))))
visible = persons[state.isin(shown_states)].head(int(count))
st.caption(f"{int(persons['flagged'].sum())} of {len(persons)} persons flagged by cleanlab; "
           f"{int((state == 'accepted').sum())} accepted, {int((state == 'dismissed').sum())} dismissed.")
for row in visible.itertuples():
    review.show_suspect(row, state[row.Index], ds.df, csv, can_correct=ds.layout == "train")
with st.expander(f"Every image, ranked ({len(images):,})"):
    st.dataframe(images, hide_index=True, key="li.images",
                 column_config={"score": st.column_config.NumberColumn(format="%.4f")})

# --- 3 · retrain --------------------------------------------------------------------------
st.subheader("3 · Retrain with the corrections")
lines = pd.read_csv(csv, dtype=str, keep_default_na=False) if Path(csv).is_file() else pd.DataFrame()
if lines.empty:
    st.caption("No corrections accepted yet.")
    raise PageStop
st.dataframe(lines, hide_index=True, key="li.lines")
c = st.columns(2)
c[0].button("Apply them in the sidebar", key="li.sidebar", on_click=review.use_in_sidebar, args=(csv,),
            help="Every page and the Train page then use the corrected labels.")
if c[1].button("Retrain with the corrections", key="li.retrain", type="primary",
               help=f"Repeats {run.name} (same data, recipe, folds, seed and settings) with this corrections CSV."):
    cfg, recipe = li.retrain_config(run, csv, runs)
    start(cfg, recipe, "The retraining")
st.caption(f"When the retraining is done, the Runs page compares it with `{run.name}`, and this page ranks its own "
           "suspects.")
