"""Train & evaluate: the recipe plus training settings -> one background CLI run -> its results.

The run is ``python -m core train`` in its own process (core.launch), so a reload never stops
it; this page follows its run directory (status.json, metrics.jsonl) and, once it is done,
shows what the trainer wrote there (explorer/report.py).
"""

import dataclasses
from pathlib import Path

import streamlit as st
import torch

from core import launch
from core.dataset import REPORTED_CORRECTIONS
from core.devices import resolve_device
from core.errors import UserError
from core.paths import eval_dir_beside, user_path
from core.runs import metrics_frame
from core.training.config import PARAMS, TrainConfig, device_defaults, train_argv, with_device_defaults
from explorer import report
from explorer.data import loaded, runs_dir
from explorer.lr_finder import show_lr_finder
from explorer.recipe_state import get_recipe, init_widget, recipe_json
from explorer.train_fields import HEALTH_FILES, MAIN, NUMBERS, TRICKS  # the rows below; the Sweep page fills them
from explorer.widgets import param_widget

# The CLI's defaults are the page's, with the device's model, epochs, batch size and lr filled in
# as the trainer would (smallcnn on a CPU, a pretrained resnet18 on a GPU).
KIND = resolve_device("auto").type
DEFAULTS = with_device_defaults(TrainConfig(), KIND)
DEVICE_DEFAULTS = device_defaults(KIND)  # what applies here, and why
GPUS = torch.cuda.device_count()
REFRESH_S = 1.5  # seconds between progress refreshes while a run is live


def field(name: str, where=st, **kwargs):
    """The widget of TrainConfig field ``name``: label, help, bounds and choices from its rule."""
    return param_widget(PARAMS[name], f"t.{name}", getattr(DEFAULTS, name), where=where, **kwargs)


def recipe_summary() -> None:
    r = get_recipe()
    crop = {"none": "whole frame", "fixed": "fixed box", "face": f"face (margin {r.crop.face_margin:g})"}.get(
        r.crop.mode, r.crop.mode)
    e = r.enhance
    enhance = [f"{n} {getattr(e, n):g}" for n in ("brightness", "contrast", "sharpness", "color")
               if getattr(e, n) != 1.0] + (["grayscale"] if e.grayscale else []) + (
        [f"equalize {e.equalize}"] if e.equalize != "none" else [])
    a = r.augment
    augment = (["flip"] if a.hflip else []) + [f"{n} {getattr(a, n):g}" for n in (
        "rotate", "translate", "scale", "brightness", "contrast", "saturation", "erasing", "noise") if getattr(a, n)]
    s = r.sampling
    st.markdown(f"**Input** {r.input_size[0]}x{r.input_size[1]} · **crop** {crop} · **enhance** "
                f"{', '.join(enhance) or 'none'} · **augment** {', '.join(augment) or 'none'} · **oversampling** "
                f"{s.method}" + (f" (target {s.target:g})" if s.method != "none" else ""))
    with st.expander("Recipe JSON (edit it on the Data and Recipe pages)"):
        st.code(recipe_json(r), language="json", wrap_lines=True)


def settings() -> dict:
    """The training settings widgets; defaults from TrainConfig (and the device's)."""
    st.caption(f"Defaults for this machine: **{DEFAULTS.model}**, {DEFAULTS.epochs} epochs, batch "
               f"{DEFAULTS.batch_size}, learning rate {DEFAULTS.lr:g}. Why: {DEVICE_DEFAULTS['why']}. "
               "From the command line: --model timm/NAME too.")
    values = {name: field(name, col) for name, col in zip(MAIN, st.columns(len(MAIN)))}
    values.update({name: field(name, col) for name, col in zip(NUMBERS, st.columns(len(NUMBERS)))})
    values.update(tricks())
    if GPUS > 1:  # several GPUs: one DDP process per GPU (torchrun), the batch size is per process
        values["nproc"] = field("nproc", max_value=GPUS,
                                help=f"{GPUS} GPUs are visible. {PARAMS['nproc'].help}; one step sees N x batch x "
                                     "accumulation images.")
    return values


def tricks() -> dict:
    """Competition tricks, each off by default (README "Competition tricks, measured": what each gave on the demo)."""
    values = {}
    with st.expander("Competition tricks: age boundary, batch mixing, TensorBoard (off by default)"):
        c = st.columns(len(TRICKS))
        values["old_age"] = field("old_age", c[0])
        values["mix"] = field("mix", c[1])
        values["mix_prob"] = field("mix_prob", c[2], slider=True, disabled=values["mix"] == "none")
        values["tensorboard"] = field("tensorboard", c[3])
    return values


def dataset_for_training() -> str | None:
    """The sidebar's dataset folder (absolute) when it can be trained on; else show why and return None."""
    info = loaded()
    if info.dataset is None:
        st.error(f"No dataset to train on: {info.error}")
        return None
    ds = info.dataset
    if ds.layout == "eval":
        st.error(f"`{info.root}` is a competition **eval** folder (info.csv + images/): its labels are unknown "
                 "(or only in gt.csv for scoring), so it cannot be trained on. Choose a train folder (images/ + "
                 "train.csv) or a folder with one sub-folder per class in the sidebar, and put this folder under "
                 "*Eval folder* below to score the model on it.")
        return None
    st.caption(f"Dataset: `{info.root}` ({ds.layout} layout, {len(ds.df):,} images) — the sidebar's folder"
               + (", with label corrections" if info.corrections else ""))
    return str(info.path)


def eval_folder(data_root: str) -> str:
    """The eval folder input; its default follows the dataset (the sibling ``eval`` folder)."""
    default = str(eval_dir_beside(data_root) or "")
    previous = st.session_state.get("t.eval_dir_default")
    if previous != default and st.session_state.get("t.eval_dir", previous) == previous:
        st.session_state["t.eval_dir"] = default  # still the old default: follow the new dataset
    st.session_state["t.eval_dir_default"] = default
    return st.text_input("Eval folder for scoring", key=init_widget("t.eval_dir", default),
                         placeholder="e.g. demo_data/eval",
                         help="Predicted with the best model after training (info.csv + images/); scored when "
                              "it has a gt.csv, as the demo's eval folder does.")


def health_files(data_root: str | None) -> dict:
    """--health and --leave-out: the Data health page's files, used when ticked (off by default)."""
    chosen = {}
    with st.expander("Data health: duplicated persons in one fold, flagged photos left out (off by default)"):
        if not data_root:
            st.caption("Choose a dataset first.")
            return chosen
        for name, (key, default) in HEALTH_FILES.items():
            try:
                path = user_path(st.session_state.get(key) or Path(data_root).parent / default)
            except UserError:
                path = Path(data_root).parent / default
            if not path.is_file():
                st.caption(f"{PARAMS[name].label}: no `{path}` yet; the Data health page writes it.")
                continue
            if st.checkbox(f"{PARAMS[name].label}: `{path}`", key=f"t.use_{name}", help=PARAMS[name].help):
                chosen[name] = str(path)
    return chosen


def config(values: dict, data_root: str | None, runs) -> TrainConfig:
    corrections = loaded().corrections
    if corrections == str(REPORTED_CORRECTIONS):
        corrections = "reported"
    return TrainConfig(data=data_root or "", out=str(runs), corrections=corrections,
                       **{k: _plain(PARAMS[k].check(v, k)) for k, v in values.items()})


def _plain(value):
    return str(value) if isinstance(value, Path) else value  # a checked path travels as text


def start(cfg: TrainConfig, runs) -> None:
    try:
        launch.start(cfg, get_recipe(), runs)
    except launch.AlreadyRunning as exc:
        st.warning(str(exc))
    except OSError as exc:
        st.error(f"Could not start the training: {exc}")
    else:
        st.toast("Training started in the background.", icon=":material/model_training:")


def request_stop(record: launch.Launch) -> None:
    launch.stop(record)


def live(record: launch.Launch) -> None:
    """Progress, live curves, Stop and the command, while the launch runs."""
    now = launch.poll(record)
    if not now.live:
        st.rerun()  # finished meanwhile: draw the whole page again with the results
    st.subheader(f"Training {now.run_dir.name if now.run_dir else ''}".strip())
    report.show_progress(now)
    if record.stop_requested:
        st.info("Stop requested: the trainer stops after its current batch and saves last.pt.")
    else:
        st.button("Stop", key="t.stop", on_click=request_stop, args=(record,), icon=":material/stop_circle:",
                  help="Stops after the current batch; the run keeps last.pt and can be resumed from the CLI.")
    if now.run_dir is not None:
        report.show_curves(metrics_frame(now.run_dir), "t.live")
    st.caption("The same training from the command line (in the repository root):")
    st.code(record.command, language="bash", wrap_lines=True)


def follow(record: launch.Launch, eval_dir: str) -> None:
    now = launch.poll(record)
    if now.live:
        st.fragment(live, run_every=REFRESH_S)(record)
        return
    if now.run_dir is None or not (now.run_dir / "config.json").is_file():  # ended before the trainer wrote one
        if now.state == "failed":
            report.show_failure(now)
        else:
            st.info(f"The last training {now.message}.")
        st.code(record.command, language="bash", wrap_lines=True)
        return
    st.subheader(f"Results: {now.run_dir.name}")
    report.show(now.run_dir, "t.res", eval_dir)


st.title("Train & evaluate")
runs = runs_dir()
st.subheader("Recipe")
recipe_summary()
st.subheader("Training")
values = settings()
data_root = dataset_for_training()
values.update(health_files(data_root))
eval_dir = eval_folder(data_root or loaded().root)
cfg = config(values, data_root, runs)
show_lr_finder(cfg, get_recipe(), runs, disabled=data_root is None)
if st.button("Train & evaluate", key="t.start", type="primary", disabled=data_root is None,
             icon=":material/play_arrow:"):
    start(cfg, runs)
st.caption(f"Runs go to `{runs}` (set MASKLAB_RUNS for another folder). The button runs the command below in "
           "the background; a page reload does not stop it.")
with st.expander("Command for these settings (with the recipe saved as recipe.json)"):
    st.code(launch.command_line(train_argv(dataclasses.replace(cfg, recipe="recipe.json"), short=True)),
            language="bash", wrap_lines=True)

st.divider()
record = launch.current(runs)
if record is None:
    st.info("No training started from the app in this runs folder yet. Press **Train & evaluate**; past runs "
            "are on the *Runs* page.")
else:
    follow(record, eval_dir)
