"""The rule book's shared entries: every choice list, bound and CSV schema that more than one
place reads, declared once in the vocabulary of :mod:`core.rules`.

Fields of the recipe and of TrainConfig declare their own rules where they are defined
(core/recipe.py, core/training/config.py) and take the shared ones from here. The command
line, the CSV readers, the app's widgets and the sweep's search space all read these objects;
nothing restates a bound or a list of choices. This module imports no torch, so the choices
can be read (``python -m core --help``, the app's first page) without loading it.
"""

from __future__ import annotations

from core import labels
from core.rules import NAME, Boolean, CsvSchema, Depends, Interval, Options, Param, PathRule, Text

# ----------------------------------------------------------------------------- choices

TORCHVISION_MODELS = ("resnet18", "resnet50", "resnext50_32x4d", "densenet121", "vgg16_bn", "efficientnet_b0")
TIMM_PREFIX = "timm/"
MODEL = Options(("smallcnn", *TORCHVISION_MODELS),
                also=Text(max_len=120, pattern=r"timm/[A-Za-z0-9_.\-]+", what="timm/NAME for any timm model"))
HEAD = Options(("auto", "flat", "factorized"), labels={
    "auto": "auto (factorized for the 18 competition classes, else flat)", "flat": "flat (one 18-way layer)",
    "factorized": "factorized (mask + gender + age logits)"})
LOSS = Options(("ce", "focal", "label_smoothing", "f1"), labels={
    "ce": "Cross-entropy", "focal": "Focal", "label_smoothing": "Label smoothing", "f1": "Soft F1"})
OPTIMIZER = Options(("sgd", "adam", "adamw"), labels={"sgd": "SGD (momentum 0.9)", "adam": "Adam", "adamw": "AdamW"})
SCHEDULER = Options(("none", "step", "cosine", "plateau"), labels={
    "none": "Constant", "step": "Step (÷10 every third of the epochs)", "cosine": "Cosine with warm-up",
    "plateau": "Reduce on plateau (val macro F1)"})
MIX = Options(("none", "mixup", "cutmix", "cutmix-vertical"), labels={
    "none": "None", "mixup": "Mixup (blend two images)", "cutmix": "CutMix (a box from another image)",
    "cutmix-vertical": "CutMix vertical (left or right half from another image)"})
DEVICE = Options(("auto", "cpu", "cuda"))
WEIGHTS = Options(("auto", "imagenet", "none"), also=PathRule(kind="file", what="weights"))
TTA = Options(("auto", "none", "flip"), labels={
    "auto": "auto (flip when the run's recipe flips)", "none": "none", "flip": "flip (mirror average)"})
EMBED = Options(("pca", "tsne"), labels={"pca": "PCA", "tsne": "t-SNE"})

CROP_MODE = Options(("none", "fixed", "face"), labels={
    "none": "Whole frame", "fixed": "Fixed box", "face": "Each image's face"})
# The face detector: the detectors (core.detectors.RUNNERS) each choice runs, in order, a later one
# only where the earlier found no face; both = MTCNN, then Haar where MTCNN found nothing.
DETECTOR_CHAINS = {"haar": ("haar",), "mtcnn": ("mtcnn",), "both": ("mtcnn", "haar")}
DETECTOR = Options(tuple(DETECTOR_CHAINS), labels={
    "haar": "Haar cascade (OpenCV)", "mtcnn": "MTCNN (sees masked faces)",
    "both": "MTCNN, then Haar where it finds none"})
DEFAULT_DETECTOR = "both"  # the most faces found at the scan's cost target (docs/faces.md)
EQUALIZE = Options(("none", "hist", "clahe"), labels={
    "none": "None", "hist": "Histogram equalisation", "clahe": "CLAHE (adaptive)"})
SAMPLING = Options(("none", "random", "smote", "weighted"), labels={
    "none": "None", "random": "Random oversampling", "smote": "SMOTE",
    "weighted": "Weighted epochs (class-weighted draws)"})

# ----------------------------------------------------------------------------- shared params

SEED = Param(Interval(int, 0, 2**32 - 1), "seeds splits, initialisation, epoch order and augmentation",
             "Seed", 0)
WORKERS = Param(Interval(int, 0, 1024), "processes preparing images (0: every usable core)", "Workers", 0)
BATCH_SIZE = Param(Interval(int, 1, 4096), "images per batch and per process", "Batch size", None, optional=True)
FOLDS = Param(Interval(int, 0, 20), "K >= 2: train K models on person-level folds (0 or 1: one split)", "Folds", 0)
EPOCHS = Param(Interval(int, 1, 1000), "epochs", "Epochs", None, optional=True)
DATA_DIR = PathRule(kind="dir", what="dataset", hint="python -m core demo --out demo_data writes a demo")
RUN_DIR = PathRule(kind="dir", what="run")
OUT_DIR = PathRule(kind="dir", exists=False, create=True, what="output")
OUT_CSV = PathRule(kind="file", exists=False, create=True, suffixes=(".csv",), what="CSV")
CSV_FILE = PathRule(kind="file", suffixes=(".csv",), what="CSV")
RECIPE_FILE = PathRule(kind="file", suffixes=(".json",), what="recipe")
RECIPE_SAVE = PathRule(kind="file", exists=False, suffixes=(".json",), what="recipe")
CORRECTIONS_FILE = PathRule(kind="file", suffixes=(".csv",), what="corrections CSV")
CORRECTIONS_SAVE = PathRule(kind="file", exists=False, suffixes=(".csv",), what="corrections CSV")
EVAL_DIR = PathRule(kind="dir", what="eval")
CORRECTIONS = Options(("reported",), also=CORRECTIONS_FILE)
CORRECTIONS_HELP = "label-corrections CSV (person,field,value), or 'reported' for the shipped list"

# The suggested crop (core.faces.suggest_crop): the mean face box grown by k standard deviations.
CROP_SPREAD = Param(Interval(float, 0.0, 3.0), "each edge of the mean face box moves out by k times its own spread "
                    "over the dataset", "Suggested crop: mean face box ± k standard deviations", 1.0, step=0.1)
# The Faces page: MTCNN's five points drawn over the photos.
FACE_LANDMARKS = Param(Boolean(), "draw MTCNN's five landmarks (eyes, nose, mouth corners) over the photos",
                       "Show landmarks", True)

# The demo dataset (python -m core demo, and the app's "create the demo" button).
DEMO_PEOPLE = Param(Interval(int, 1, 100_000), "train persons (270 = a tenth of the real data; 2700 = full "
                    "scale)", "People (7 photos each)", 270)
DEMO_EVAL_PEOPLE = Param(Interval(int, 0, 100_000), "eval persons (default: 30% of --people)", "Eval people",
                         None, optional=True)
LABEL_NOISE = Param(Interval(float, 0.0, 0.5), "share of train persons given a wrong label on purpose: swapped "
                    "normal/incorrect_mask photos, wrong gender or age group; the truth goes to OUT/label_noise.csv "
                    "and OUT/label_noise_corrections.csv (a --corrections file)", "Label noise", 0.0)
DEFECTS = Param(Interval(float, 0.0, 0.5), "share of train persons given a data fault on purpose, the kinds in "
                "turn: exact and near duplicates, a duplicated person, a train photo in the eval set, dark, light, "
                "blurred, nearly blank, odd-sized and odd-shaped photos; the truth goes to OUT/defects.csv",
                "Data faults", 0.0)

# predict and the label-issue finder
TTA_PARAM = Param(TTA, "test-time augmentation: flip averages each image's softmax with its mirror's; none uses "
                  "the image alone; auto is flip for a run whose recipe flips in training (its labels do not change "
                  "in a mirror) and none otherwise", "Test-time augmentation", "auto")
PREDICT_BATCH = Param(Interval(int, 1, 4096), "images per forward pass", "Batch size", 128)
FINDER_FOLDS = Param(Interval(int, 2, 20), "folds of the run the finder trains (out-of-fold predictions of every "
                     "image)", "Folds", 3)
SHOW = Param(Interval(int, 0, 100_000), "rows printed", "Shown", 10)
LR_STEPS = Param(Interval(int, 5, 100_000), "optimiser steps in the sweep (default: 5 epochs' worth, between 20 "
                 "and 300)", "Steps", None, optional=True)
LR_START = Param(Interval(float, 0.0, 10.0, closed="right", log=True), "first learning rate of the sweep",
                 "From", 1e-7)
LR_END = Param(Interval(float, 0.0, 100.0, closed="right", log=True), "last learning rate of the sweep", "To", 10.0)

# python -m core sweep (core.sweep): one Optuna study, one training run per trial
SWEEP_DIR = Param(OUT_DIR, "sweep folder: study.log (the study), best.json, runs/ (one run per trial)",
                  "Sweep folder")
SWEEP_TRIALS = Param(Interval(int, 1, 100_000), "trials this command adds to the study, across all its workers "
                     "(running it again adds as many more)", "Trials", 20)
SWEEP_WORKERS = Param(Interval(int, 1, 1024), "worker processes on this machine, each running trials (one per GPU "
                      "where there are several; the CPU cores are shared out)", "Worker processes", 1)
SWEEP_SPACE = Param(PathRule(kind="file", suffixes=(".json",), what="search space"), "search space JSON (field -> "
                    "low/high/log/step, choices or value; replaces the default space; see docs/sweep.md)",
                    "Search space")
SWEEP_STORAGE = Param(Text(max_len=1000, pattern=r"(postgresql|mysql|sqlite)(\+[A-Za-z0-9_]+)?://\S*",
                           what="a database URL (postgresql://USER:PASSWORD@HOST/DB, mysql://..., sqlite:///FILE)"),
                      "the study's database for several machines (default: the journal file SWEEP_DIR/study.log)",
                      "Storage")
SWEEP_STUDY = Param(Text(max_len=120, pattern=r"[A-Za-z0-9_.\-]+", what="a study name (letters, digits, _ . -)"),
                    "study name: commands with the same storage and name add to one study", "Study", "sweep")
SWEEP_PRUNER = Param(Options(("median", "none"), labels={
    "median": "Median (stop a trial whose epoch score is below the median of earlier trials at that epoch)",
    "none": "None (every trial runs all its epochs)"}), "stop unpromising trials early", "Pruner", "median")
PRUNE_STARTUP = Param(Interval(int, 0, 10_000), "median pruner: complete trials before any trial is pruned",
                      "Trials before pruning", 4)
PRUNE_WARMUP = Param(Interval(int, 0, 10_000), "median pruner: epochs each trial runs before it may be pruned",
                     "Epochs before pruning", 3)

# ----------------------------------------------------------------------------- CSV schemas

AGE = Interval(int, 0, 120)
PERSON_ID = Text(max_len=64, pattern=r"[^_/\\\s]+", what="a person id (no _, /, \\ or spaces)")
GENDER = Options(tuple(labels.GENDER_CODES))
CLASS = Interval(int, 0, labels.NUM_CLASSES - 1)
SWAP = Options(tuple(f"{a}:{b}" for a in labels.STEM_TO_MASK for b in labels.STEM_TO_MASK
                     if labels.STEM_TO_MASK[a] != labels.STEM_TO_MASK[b]))
CORRECTION_FIELD = Options(("gender", "age", "race", "swap"))
DATASETS_FIX = "see the README's Datasets section for the layout"

TRAIN_CSV = CsvSchema("train.csv", {"id": PERSON_ID, "gender": GENDER, "race": Text(max_len=64), "age": AGE,
                                    "path": NAME}, fix=DATASETS_FIX)
INFO_CSV = CsvSchema("info.csv", {"ImageID": NAME, "ans": Text(max_len=64, nonempty=False)}, fix=DATASETS_FIX)
ANSWERS_CSV = CsvSchema("answers", {"ImageID": NAME, "ans": CLASS},
                        fix="a submission and gt.csv have the columns ImageID,ans with ans a class 0-17")
CORRECTIONS_CSV = CsvSchema("corrections", {
    "person": PERSON_ID, "field": CORRECTION_FIELD,
    "value": Depends("field", {"gender": GENDER, "age": AGE, "race": Text(max_len=64), "swap": SWAP})},
    rows_required=False, fix="see the README's Datasets section for corrections")

# python -m core health (core.health): the findings and the photos left out of training. The
# issues by family, in the order health.csv, the command and the page list them: duplicates (their
# `group` ties photos together; a duplicated person first, then eval photos also in training, then
# copies) and photo quality (cleanvision's checks, core.health.quality).
HEALTH_DUPLICATES = ("duplicate_person", "train_eval_overlap", "exact_duplicate", "near_duplicate")
HEALTH_QUALITY = ("dark", "light", "blurry", "low_information", "odd_size", "odd_aspect_ratio")
HEALTH_ISSUE = Options((*HEALTH_DUPLICATES, *HEALTH_QUALITY), labels={
    "exact_duplicate": "Exact duplicates", "near_duplicate": "Near duplicates",
    "duplicate_person": "One person under two ids", "train_eval_overlap": "Eval photos also in training",
    "dark": "Too dark", "light": "Too bright", "blurry": "Blurred", "low_information": "Nearly blank",
    "odd_size": "Odd size", "odd_aspect_ratio": "Odd aspect ratio"})
IMAGE_PATH = Text(max_len=4096, what="an image or folder path")
HEALTH_CSV = CsvSchema("health", {"issue": HEALTH_ISSUE, "path": IMAGE_PATH,
                                  "person": Text(max_len=300, nonempty=False), "score": Interval(float, 0.0, 1.0),
                                  "group": Text(max_len=64, nonempty=False)},
                       rows_required=False, fix="a health CSV is written by python -m core health (see docs/health.md)")
# The photos the dataset layer leaves out (core.dataset.scan(leave_out=...)): a path (an image,
# or a folder inside the dataset for every image under it), absolute or relative to the dataset
# folder, and why.
LEAVE_OUT_CSV = CsvSchema("leave-out", {"path": IMAGE_PATH, "issue": Text(max_len=64, nonempty=False)},
                          rows_required=False, fix="the Data health page writes one (see docs/health.md)")
# Training's --health and --leave-out: existing files; their rows are checked when the run starts.
HEALTH_FILE = PathRule(kind="file", suffixes=(".csv",), what="health CSV", hint="python -m core health writes one")
LEAVE_OUT_FILE = PathRule(kind="file", suffixes=(".csv",), what="leave-out CSV",
                          hint="the Data health page writes one")
HEALTH_HELP = ("a health.csv (python -m core health): persons whose photos are copies of each other are kept in "
               "one fold")
LEAVE_OUT_HELP = "a leave-out CSV (path,issue; written by the Data health page): these photos are left out"
