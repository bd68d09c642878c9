"""The Label issues page's parts: which runs can be searched, the cached suspects, one suspect
with the person's photos and its Accept / Dismiss / Undo buttons, and the corrections file.

Decisions go to disk through core.label_issues (the corrections CSV in core.dataset's form, and
its ``.dismissed.csv`` beside it), so they outlive the session and the next scan or training
with that CSV applies them.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import streamlit as st

from core import label_issues as li
from core import rulebook as rb
from core.errors import UserError
from core.runs import list_runs, read_config, read_status
from explorer.compute import thumbnail

CORRECTIONS_NAME = "label_corrections.csv"
TRUTH_NAME = "label_noise.csv"  # what `python -m core demo --label-noise` writes beside train/
SIDEBAR_CORRECTIONS = "corrections_path"  # the sidebar's corrections CSV input (explorer/sidebar.py)


def kfold_runs(runs: Path, data: Path) -> list[Path]:
    """Finished runs in ``runs`` trained with --folds K >= 2 on ``data``, newest first."""
    found = []
    for run in list_runs(runs):
        try:
            cfg = read_config(run).get("config", {})
        except UserError:
            continue
        same = Path(cfg.get("data") or "/nonexistent").resolve() == Path(data).resolve()
        if same and int(cfg.get("folds") or 0) >= 2 and read_status(run).get("state") == "done":
            found.append(run)
    return found


@st.cache_data(show_spinner="Ranking suspects with cleanlab…", max_entries=8)
def suspects(run: str, stamp: float) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(persons, images) ranked by core.label_issues, cached per run (``stamp``: its predictions' mtime)."""
    return li.suspects_of(run)


def default_corrections(data: Path, sidebar: str | None) -> str:
    """The sidebar's own corrections CSV when one is typed there, else label_corrections.csv beside
    the dataset folder (demo_data/train -> demo_data/label_corrections.csv)."""
    typed = (st.session_state.get(SIDEBAR_CORRECTIONS) or "").strip()
    return str(sidebar) if typed and sidebar else str(Path(data).parent / CORRECTIONS_NAME)


def corrections_file(text: str) -> Path:
    return rb.CORRECTIONS_SAVE.check(text, "Corrections CSV")


def planted_caption(data: Path, persons: pd.DataFrame, run: Path) -> str | None:
    """For a demo with planted errors: how many of them the ranking puts in its top 3x."""
    truth = Path(data).parent / TRUTH_NAME
    if not truth.is_file():
        return None
    r = li.planted_recall(persons, truth)
    text = (f"This demo has {r['planted']} planted label error(s) ({truth.name}): {r['found']} of them are among "
            f"the top {r['top']} suspects (recall {r['recall']:.2f}).")
    fixed = read_config(run).get("config", {}).get("corrections")
    if fixed:
        text += (f" This run trained on labels corrected by `{Path(str(fixed)).name}`: the errors those "
                 "corrections fix are no longer suspects.")
    return text


# ----------------------------------------------------------------------------- one suspect

def _decide(action: str, csv: str, person: str, field: str, value: str) -> None:
    """Button callback: write the decision, then the page redraws with it."""
    try:
        if action == "accept":
            li.accept(csv, person, field, value)
        elif action == "undo":
            li.withdraw(csv, person, field)
        else:
            li.dismiss(csv, person, field, value)
    except (UserError, OSError) as exc:
        st.session_state["li.message"] = f"Could not write {csv}: {exc}"


def photos(index: pd.DataFrame, person: str) -> pd.DataFrame:
    """The person's photos in the dataset index, in stem order (mask1..mask5, incorrect_mask, normal)."""
    rows = index[index["person"].astype(str) == str(person)]
    order = {s: i for i, s in enumerate(("mask1", "mask2", "mask3", "mask4", "mask5", *li.SWAP))}
    return rows.assign(order=rows["stem"].map(order)).sort_values(["order", "path"])


def show_suspect(row, state: str, index: pd.DataFrame, csv: str, can_correct: bool) -> None:
    """One suspect: what is wrong and what to do, the person's photos, and the buttons."""
    mark = {"accepted": " · :green[accepted]", "dismissed": " · :gray[dismissed]"}.get(state, "")
    flag = " · flagged by cleanlab" if row.flagged else ""
    with st.container(border=True):
        st.markdown(f"**#{row.rank} · {row.person}** · {row.field}: **{row.given}** → **{row.suggested}** "
                    f"· score {row.score:.3f}{flag}{mark}")
        shots = photos(index, row.person)
        if len(shots):
            cols = st.columns(7)
            for i, shot in enumerate(shots.head(7).itertuples()):
                hit = row.stems == "all" or shot.stem in str(row.stems).split(";")
                cols[i].image(thumbnail(shot.path, 120), caption=f"{shot.stem}: {shot.label_name}" + (" ⚠" if hit else ""))
        args = (csv, str(row.person), row.field, str(row.value))
        key = f"li.{row.person}.{row.field}"
        b = st.columns([1, 1, 4])
        if not can_correct:
            b[2].caption("Corrections apply to the competition train layout only.")
        elif state == "accepted":
            b[0].button("Undo", key=f"{key}.undo", on_click=_decide, args=("undo", *args[:3]))
        else:
            b[0].button("Accept", key=f"{key}.accept", type="primary", on_click=_decide, args=("accept", *args),
                        help=f"Writes {row.person},{row.field},{row.value} to the corrections CSV.")
            if state != "dismissed":
                b[1].button("Dismiss", key=f"{key}.dismiss", on_click=_decide, args=("dismiss", *args),
                            help="Not an error: hide this suggestion for this dataset.")


def use_in_sidebar(csv: str) -> None:
    """Button callback: the sidebar applies this corrections CSV from now on (every page, training)."""
    st.session_state[SIDEBAR_CORRECTIONS] = csv
