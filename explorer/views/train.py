"""Train & evaluate: the recipe plus training settings -> one background CLI run -> its results.

The run is ``python -m core train`` in its own process (core.launch), so a reload never stops
it; this page follows its run directory (status.json, metrics.jsonl) and, once it is done,
shows what the trainer wrote there (explorer/report.py).
"""

import dataclasses

import streamlit as st
import torch

from core import launch
from core.dataset import REPORTED_CORRECTIONS
from core.losses import LOSSES
from core.mixing import MIXES
from core.models import MODELS
from core.paths import eval_dir_beside
from core.runs import metrics_frame
from core.training import OPTIMIZERS, SCHEDULERS, TrainConfig, resolve_device
from core.training.config import device_defaults, with_device_defaults
from explorer import report
from explorer.data import loaded, runs_dir
from explorer.lr_finder import show_lr_finder
from explorer.recipe_state import get_recipe, init_widget, recipe_json

# The CLI's defaults are the page's, with the device's model, epochs, batch size and lr filled in
# as the trainer would (smallcnn on a CPU, a pretrained resnet18 on a GPU).
DEFAULTS = with_device_defaults(TrainConfig(), resolve_device("auto"))
DEVICE_DEFAULTS = device_defaults(resolve_device("auto"))  # what applies here, and why
GPUS = torch.cuda.device_count()
LOSS_NAMES = {"ce": "Cross-entropy", "focal": "Focal", "label_smoothing": "Label smoothing", "f1": "Soft F1"}
OPTIMIZER_NAMES = {"sgd": "SGD (momentum 0.9)", "adam": "Adam", "adamw": "AdamW"}
MIX_NAMES = {"none": "None", "mixup": "Mixup (blend two images)", "cutmix": "CutMix (a box from another image)",
             "cutmix-vertical": "CutMix vertical (left or right half from another image)"}
SCHEDULER_NAMES = {"none": "Constant", "step": "Step (÷10 every third of the epochs)",
                   "cosine": "Cosine with warm-up", "plateau": "Reduce on plateau (val macro F1)"}
REFRESH_S = 1.5  # seconds between progress refreshes while a run is live


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
    """The training settings widgets; defaults from TrainConfig."""
    def choice(col, label: str, options, names: dict, field: str, **kwargs):
        return col.selectbox(label, options, format_func=lambda k: names.get(k, k),
                             key=init_widget(f"t.{field}", getattr(DEFAULTS, field)), **kwargs)

    st.caption(f"Defaults for this machine: **{DEFAULTS.model}**, {DEFAULTS.epochs} epochs, batch "
               f"{DEFAULTS.batch_size}, learning rate {DEFAULTS.lr:g}. Why: {DEVICE_DEFAULTS['why']}.")
    c = st.columns(4)
    values = {
        "model": choice(c[0], "Model", MODELS, {}, "model",
                        help="smallcnn trains from scratch in minutes on a CPU; torchvision backbones start "
                             "from ImageNet weights (the torch hub cache or a download), else from scratch, "
                             "and the run's log says which. From the command line: --model timm/NAME too."),
        "loss": choice(c[1], "Loss", LOSSES, LOSS_NAMES, "loss"),
        "optimizer": choice(c[2], "Optimizer", OPTIMIZERS, OPTIMIZER_NAMES, "optimizer"),
        "scheduler": choice(c[3], "Scheduler", SCHEDULERS, SCHEDULER_NAMES, "scheduler"),
    }
    c = st.columns(5)
    values["lr"] = c[0].number_input("Learning rate", min_value=1e-6, max_value=1.0, step=1e-4, format="%.5f",
                                     key=init_widget("t.lr", float(DEFAULTS.lr)))
    values["epochs"] = c[1].number_input("Epochs", 1, 500, key=init_widget("t.epochs", DEFAULTS.epochs))
    values["batch_size"] = c[2].number_input("Batch size", 1, 1024,
                                             key=init_widget("t.batch_size", DEFAULTS.batch_size))
    values["accum_steps"] = c[3].number_input("Accumulation steps", 1, 64,
                                              key=init_widget("t.accum_steps", DEFAULTS.accum_steps),
                                              help="One optimiser step per this many batches (a larger "
                                                   "effective batch without more memory).")
    values["folds"] = c[4].number_input("Folds", 0, 10, key=init_widget("t.folds", DEFAULTS.folds),
                                        help=f"0: one person-level split ({DEFAULTS.val_ratio:.0%} of the persons "
                                             "held out). K >= 2: K models on person-level folds, scored out of fold.")
    values.update(tricks(choice))
    if GPUS > 1:  # several GPUs: one DDP process per GPU (torchrun), the batch size is per process
        values["nproc"] = st.number_input(
            "Processes (GPUs)", 1, GPUS, key=init_widget("t.nproc", 1),
            help=f"{GPUS} GPUs are visible. N > 1 trains one model with DistributedDataParallel on N GPUs "
                 "(torchrun); each takes the batch size above, so one step sees N x batch x accumulation images.")
    return values


def tricks(choice) -> dict:
    """Competition tricks, each off by default (README "Competition tricks, measured": what each gave on the demo)."""
    values = {}
    with st.expander("Competition tricks: age boundary, batch mixing, TensorBoard (off by default)"):
        c = st.columns(4)
        values["old_age"] = c[0].number_input(
            "Train 60+ from age", 1, 120, key=init_widget("t.old_age", DEFAULTS.old_age),
            help="Persons aged N or older are trained as the 60+ group (the top teams used 58); validation and "
                 "every score keep the true labels. Competition classes only.")
        values["mix"] = choice(c[1], "Batch mixing", MIXES, MIX_NAMES, "mix",
                               help="Mixes images within a batch; the loss takes the mixed targets.")
        values["mix_prob"] = c[2].slider("Share of batches mixed", 0.0, 1.0, step=0.05,
                                         key=init_widget("t.mix_prob", float(DEFAULTS.mix_prob)),
                                         disabled=values["mix"] == "none")
        values["tensorboard"] = c[3].checkbox(
            "TensorBoard log", key=init_widget("t.tensorboard", DEFAULTS.tensorboard),
            help="Also logs loss, macro F1, learning rate and the confusion matrix per epoch to RUN/tb: "
                 "`tensorboard --logdir runs`.")
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


def config(values: dict, data_root: str | None, runs) -> TrainConfig:
    corrections = loaded().corrections
    if corrections == str(REPORTED_CORRECTIONS):
        corrections = "reported"
    return TrainConfig(data=data_root or "", out=str(runs), corrections=corrections,
                       **{k: (float(v) if k == "lr" else v) for k, v in values.items()})


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
eval_dir = eval_folder(data_root or loaded().root)
cfg = config(values, data_root, runs)
show_lr_finder(cfg, get_recipe(), runs, disabled=data_root is None)
if st.button("Train & evaluate", key="t.start", type="primary", disabled=data_root is None,
             icon=":material/play_arrow:"):
    start(cfg, runs)
st.caption(f"Runs go to `{runs}` (set MASKLAB_RUNS for another folder). The button runs the command below in "
           "the background; a page reload does not stop it.")
with st.expander("Command for these settings (with the recipe saved as recipe.json)"):
    st.code(launch.command_line(launch.train_argv(dataclasses.replace(cfg, recipe="recipe.json"))),
            language="bash", wrap_lines=True)

st.divider()
record = launch.current(runs)
if record is None:
    st.info("No training started from the app in this runs folder yet. Press **Train & evaluate**; past runs "
            "are on the *Runs* page.")
else:
    follow(record, eval_dir)
