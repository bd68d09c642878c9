"""Sweep: let the validation score choose the recipe and the training settings (Optuna).

The page builds a search space from the rule book (each field's pickers come from its Param),
starts ``python -m core sweep`` in the background (core.sweep_workers.start_in_background, as
the Train page starts a training), follows its study live and draws Optuna's own figures.
"Use the best" puts the best trial's recipe in the sidebar and its settings on the Train page.
"""

import json
import sys
from pathlib import Path

import pandas as pd
import streamlit as st

from core import rulebook as rb
from core.devices import resolve_device
from core.errors import UserError
from core.recipe import Recipe
from core.rules import Boolean, ListOf, Options
from core.sweep import read_best, read_sweep, request_stop, stop_requested, study_from_folder, trial_rows
from core.sweep_space import DEFAULT_SPACE, Field, dim, parse_space, searchable_fields
from core.sweep_workers import background, start_in_background
from core.training.config import PARAMS, device_defaults
from explorer.data import loaded, runs_dir
from explorer.guard import PageStop
from explorer.recipe_state import get_recipe, init_widget, set_recipe
from explorer.train_fields import TRAIN_PAGE
from explorer.widgets import param_widget

REFRESH_S = 2.0
FIELDS = searchable_fields()
EPOCHS = device_defaults(resolve_device("auto").type)["epochs"]


def recipe_value(f: Field):
    """The sidebar recipe's value of recipe field ``f`` (a list as a list)."""
    node = get_recipe().to_dict()
    for key in f.path:
        node = node[key]
    return node


def default_dim(name: str):
    """The field's default-space range, or its whole declared range (choices: all of them). A
    list field (a box, a size) starts from the sidebar recipe's value as its one choice; a field
    of choices that the default space fixes (the loss) starts with that value as its one choice."""
    f = FIELDS[name]
    spec = {k: v for k, v in DEFAULT_SPACE.get(name, {}).items() if k != "why"}
    if isinstance(f.rule, ListOf) and "choices" not in spec:
        spec = {"choices": [recipe_value(f)]}
    elif isinstance(f.rule, (Options, Boolean)) and "value" in spec:
        spec = {"choices": [spec["value"]]}
    try:
        return dim(f, spec, "the default space")
    except UserError:  # an open bound (the learning rate's 0): the default space's, or the widget's edge
        low, high = f.rule.bounds(f.param.step)
        return dim(f, {"low": f.rule.kind(low), "high": f.rule.kind(high)}, "the page")


def picker(name: str) -> dict:
    """The widgets of one field's range, from its rule; the space file's entry they make."""
    f: Field = FIELDS[name]
    d = default_dim(name)
    st.markdown(f"**{f.label}** `{name}`" + (f" — {DEFAULT_SPACE[name]['why']}" if name in DEFAULT_SPACE else ""))
    if isinstance(f.rule, ListOf):  # whole lists as choices; another is typed in: "96x96", "0, 0, 1, 0.72"
        key = init_widget(f"s.choices.{name}", list(d.choices))
        picked = st.multiselect("Choices", list(dict.fromkeys([*d.choices, *st.session_state[key]])), key=key,
                                accept_new_options=True, help=f"{f.param.help}; type another as "
                                f"{', '.join(['0.5'] * f.rule.length)} and press Enter")
        return {"choices": [list(f.rule.parse(c, f"{name} choice")) for c in picked]}
    if isinstance(f.rule, (Options, Boolean)):  # every value the rule allows is offered
        label = f.rule.label if isinstance(f.rule, Options) else str
        options = list(f.rule.values) if isinstance(f.rule, Options) else [False, True]
        picked = st.multiselect("Choices", options, format_func=label,
                                key=init_widget(f"s.choices.{name}", list(d.choices)), help=f.param.help)
        return {"choices": picked}
    c1, c2, c3 = st.columns([2, 2, 1])
    low = param_widget(f.param, f"s.low.{name}", d.low, where=c1, label="From")
    high = param_widget(f.param, f"s.high.{name}", d.high, where=c2, label="To")
    log = c3.checkbox("Log scale", key=init_widget(f"s.log.{name}", d.log), help="search in log space (learning "
                      "rates: a decade counts as much as the next)")
    return {"low": low, "high": high, "log": log}


def space_from_widgets() -> dict:
    names = st.multiselect("Fields to search", list(FIELDS), format_func=lambda n: f"{FIELDS[n].label} ({n})",
                           key=init_widget("s.fields", [n for n, s in DEFAULT_SPACE.items() if "value" not in s]),
                           help="Any recipe field, or a training setting that changes what is learned. The default "
                                "is the default space of `python -m core sweep` (docs/sweep.md).")
    space = {}
    for name in names:
        with st.container(border=True):
            space[name] = picker(name)
    if "train.smoothing" in space and "train.loss" not in space:
        space["train.loss"] = dict(DEFAULT_SPACE["train.loss"])  # so that smoothing acts
        st.caption("Label smoothing is searched with the label_smoothing loss (smoothing 0 is plain cross-entropy); "
                   "add the loss to the fields to choose it yourself.")
    return space


def sweep_command(folder: Path, space: dict, data: str, trials: int, epochs: int, pruner: str,
                  workers: int) -> list[str]:
    app = folder / ".app"
    app.mkdir(parents=True, exist_ok=True)
    (app / "space.json").write_text(json.dumps(space, indent=2) + "\n")
    get_recipe().save(app / "recipe.json")
    return [sys.executable, "-m", "core", "sweep", "--data", data, "--out", str(folder), "--recipe",
            str(app / "recipe.json"), "--space", str(app / "space.json"), "--trials", str(trials), "--epochs",
            str(epochs), "--pruner", pruner, "--workers", str(workers)]


def use_best(folder: Path) -> None:
    """Callback: the best trial's recipe to the sidebar, its settings to the Train page."""
    best = read_best(folder)
    if best is None:
        return
    set_recipe(Recipe.from_dict(best["recipe"]))
    shown = {k: v for k, v in best.get("train", {}).items() if k in TRAIN_PAGE and v is not None}
    for name, value in shown.items():
        st.session_state[f"t.{name}"] = value
    searched = {k.removeprefix("train.") for k in best.get("params", {}) if k.startswith("train.")}
    hidden = sorted(searched - set(shown))
    st.session_state["s.used"] = (
        f"Trial {best['trial']}'s recipe is the sidebar's now" + ("; the Train page has its settings" if shown else "")
        + (f". Searched but not on the Train page ({', '.join(hidden)}): they are in best.json's command" if hidden
           else "."))


def trials_table(study) -> None:
    rows = trial_rows(study)
    if not rows:
        st.caption("No trial yet.")
        return
    table = pd.DataFrame(rows).drop(columns=["run_dir"]).set_index("trial")
    st.dataframe(table, key="s.table", column_config={"value": st.column_config.NumberColumn(format="%.4f")})


def figures(study) -> None:
    """Optuna's own plotly figures of the study."""
    import optuna.visualization as vis

    complete = [t for t in study.get_trials(deepcopy=False) if t.state.name == "COMPLETE"]
    if not complete:
        st.caption("Optuna's figures appear once a trial is complete.")
        return
    c1, c2 = st.columns(2)
    c1.plotly_chart(vis.plot_optimization_history(study), key="s.history")
    if len(complete) < 2:
        c2.info("Parameter importances need at least 2 complete trials.")
    else:
        try:
            c2.plotly_chart(vis.plot_param_importances(study), key="s.importance")
        except (ValueError, RuntimeError) as exc:  # e.g. every complete trial has the same values
            c2.info(f"No parameter importances yet: {exc}")
    c3, c4 = st.columns(2)
    c3.plotly_chart(vis.plot_parallel_coordinate(study), key="s.parallel")
    c4.plotly_chart(vis.plot_slice(study), key="s.slice")


def follow(folder: Path) -> None:
    now = background(folder)
    study = study_from_folder(folder)
    if now is not None and now["live"]:
        st.info("Stop requested: each worker stops after its current batch." if stop_requested(folder)
                else "A sweep is running in the background; a page reload does not stop it.")
    elif now is not None and study is None:
        st.error(f"The sweep ended without a study: see {now['log']}")
    if study is None:
        return
    trials_table(study)
    best = read_best(folder)
    if best is not None:
        st.success(f"Best so far: trial {best['trial']}, validation macro F1 {best['value']:.4f}")
        st.code(best["command"], language="bash", wrap_lines=True)


st.title("Sweep")
st.caption("Optuna searches the recipe and the training settings; each trial is one training run, scored by its "
           "validation macro F1, and the median pruner stops the runs that fall behind. The command line's "
           "`python -m core sweep` does the same (docs/sweep.md).")
# Checked by the rule book's rule and made absolute by the project's path rule (a relative folder
# starts at $MASKLAB_HOME, else where the app was started): the background sweep gets that path.
folder = rb.SWEEP_DIR.check(st.text_input(rb.SWEEP_DIR.label, key=init_widget("s.dir", str(runs_dir() / "sweep")),
                                          help=rb.SWEEP_DIR.help), rb.SWEEP_DIR.label)
info = loaded()
if info.dataset is None or info.dataset.layout == "eval":
    st.error("Choose a train folder (or one folder per class) in the sidebar: a sweep trains on it.")
    raise PageStop
st.subheader("Search space")
space = space_from_widgets()
st.subheader("Budget")
c = st.columns(4)
trials = param_widget(rb.SWEEP_TRIALS, "s.trials", rb.SWEEP_TRIALS.default, where=c[0])
epochs = param_widget(PARAMS["epochs"], "s.epochs", EPOCHS, where=c[1], label="Epochs per trial")
pruner = param_widget(rb.SWEEP_PRUNER, "s.pruner", rb.SWEEP_PRUNER.default, where=c[2])
workers = param_widget(rb.SWEEP_WORKERS, "s.workers", rb.SWEEP_WORKERS.default, where=c[3])
parse_space(space, "the page's space") if space else None  # a bad range: one line (guard), before a start
running = (background(folder) or {}).get("live", False)
b1, b2, b3 = st.columns(3)
if b1.button("Start", key="s.start", type="primary", disabled=running or not space, icon=":material/play_arrow:"):
    start_in_background(sweep_command(folder, space, str(info.path), trials, epochs, pruner, workers), folder)
    st.toast("Sweep started in the background.", icon=":material/tune:")
    running = True
b2.button("Stop", key="s.stop", disabled=not running, on_click=request_stop, args=(folder,),
          icon=":material/stop_circle:", help="Each worker stops after its current batch; the trial ends as failed.")
b3.button("Use the best", key="s.use", disabled=read_best(folder) is None, on_click=use_best, args=(folder,),
          icon=":material/done_all:", help="The best trial's recipe to the sidebar, its settings to the Train page.")
if "s.used" in st.session_state:
    st.success(st.session_state.pop("s.used"))
st.divider()
st.subheader("Trials")
if read_sweep(folder) is None:
    st.info("No sweep in this folder yet. Press **Start**, or from the command line: `python -m core sweep --data "
            f"DATASET --out {folder} --trials 20`.")
    raise PageStop
if running:
    st.fragment(follow, run_every=REFRESH_S)(folder)
else:
    follow(folder)
study = study_from_folder(folder)
if study is not None:
    figures(study)
elif read_sweep(folder).get("journal") is False:
    st.info(f"This sweep's study is in {read_sweep(folder)['storage']}: open it there (e.g. optuna-dashboard).")
