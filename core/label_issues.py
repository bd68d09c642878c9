"""Label issues: the training labels that a K-fold run's out-of-fold predictions contradict.

Top teams found the competition's wrong labels from repeated out-of-fold mistakes. This module
does the same with cleanlab (confident learning) on the probabilities a ``--folds K`` run wrote
for every training image (val_predictions.csv, p0..p{C-1}), each predicted by the one model
that never trained on that person:

* :func:`rank_images` - every image by cleanlab's label quality score
  (``cleanlab.rank.get_label_quality_scores``), flagged where ``cleanlab.filter.find_label_issues``
  finds an issue; the suggestion is the predicted class.
* :func:`rank_persons` - the competition's errors are per person: a wrong gender or age shows on
  all seven photos, a swapped ``normal``/``incorrect_mask`` pair on two. So the 18-way
  probabilities are split into mask, gender and age (the competition's class = mask*6 +
  gender*3 + age, core.labels), gender and age are averaged over a person's photos and scored
  by cleanlab per person, and the swap is scored on the two photos as a two-way choice between
  the labels as given and the labels swapped. A person's suspect is the field with the lowest
  score. Its suggestion is written in core.dataset's corrections form (person, field, value),
  so accepting it is one line in a corrections CSV (:func:`accept`).

Scores are cleanlab's: from 0 (the label is surely wrong) to 1; lower ranks first.
"""

from __future__ import annotations

import re
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from core import labels as L
from core.errors import UserError
from core.runs import read_config, read_table, run_path

# The photos a swap exchanges, in the order of core.dataset's swap value.
SWAP = ("incorrect_mask", "normal")
SWAP_VALUE = ":".join(SWAP)
PERSON_COLUMNS = ["rank", "path", "person", "field", "given", "suggested", "value", "score", "flagged", "stems"]
IMAGE_COLUMNS = ["rank", "path", "person", "given", "suggested", "score", "flagged"]


@dataclass
class OutOfFold:
    """A run's out-of-fold predictions joined with its dataset index (row i = image i)."""

    table: pd.DataFrame  # path, person, stem, gender, age, age_group, mask, label (given), fold
    probs: np.ndarray  # (N, C) predicted probabilities, each from the model that held the image out
    class_names: list[str]
    layout: str
    run: Path

    @property
    def labels(self) -> np.ndarray:
        return self.table["label"].to_numpy(np.int64)

    @property
    def competition(self) -> bool:
        """Competition train labels: person fields (gender, age) and the mask swap can be scored."""
        return self.layout == "train" and list(self.class_names) == list(L.CLASS_NAMES)


# ----------------------------------------------------------------------------- reading a run

def out_of_fold(run: str | Path, data: str | Path | None = None) -> OutOfFold:
    """The run's predicted probabilities for every training image, with person and photo.

    Raises UserError when the run has not finished, predicted only a validation split
    (every image needs a prediction from a model that did not train on it: ``--folds K``),
    or was trained on another folder than ``data``.
    """
    from core.training import scan_labelled

    run = run_path(run)
    config = read_config(run)
    cfg = config.get("config", {})
    if data is not None and Path(data).expanduser().resolve() != Path(cfg.get("data", "")).resolve():
        raise UserError(f"{run}: was trained on {cfg.get('data')}, not {data}; pass a run of this dataset, "
                        "or leave out --run to train one")
    table = read_table(run, "val_predictions.csv")
    if table is None:
        raise UserError(f"{run}: has no val_predictions.csv yet; wait until the run is done")
    prob_cols = [c for c in table.columns if re.fullmatch(r"p\d+", c)]
    if not prob_cols:
        raise UserError(f"{run}/val_predictions.csv has no p0..p{{C-1}} columns (written by an older version); "
                        "train the run again")
    ds, df = scan_labelled(cfg["data"], cfg.get("corrections"), cfg.get("leave_out"))  # the rows the run saw
    if int(cfg.get("folds") or 0) < 2:
        raise UserError(f"{run}: has held-out predictions for {len(table)} of its {len(df)} images (one "
                        "validation split); the finder needs an out-of-fold prediction of every image: "
                        "a run with --folds 3 (or leave out --run to train one)")
    index = df.set_index("path")
    missing = table.loc[~table["path"].isin(index.index), "path"]
    if len(missing) or len(table) != len(df):
        raise UserError(f"{run}: predicted {len(table)} images but {cfg['data']} now has {len(df)} labelled "
                        "ones" + (f" ({missing.iloc[0]} is gone)" if len(missing) else "") + "; the dataset "
                        "changed since the run: train a new one")
    joined = index.loc[table["path"], ["person", "stem", "gender", "age", "age_group", "mask"]].reset_index()
    joined["label"] = table["true"].to_numpy(np.int64)
    joined["fold"] = table["fold"].to_numpy() if "fold" in table else 0
    probs = table[sorted(prob_cols, key=lambda c: int(c[1:]))].to_numpy(np.float64)
    probs /= probs.sum(axis=1, keepdims=True)  # the CSV rounds to 6 decimals
    names = list(config.get("class_names") or ds.class_names)
    return OutOfFold(joined, probs, names, ds.layout, run)


# ----------------------------------------------------------------------------- cleanlab

def _cleanlab(labels: np.ndarray, probs: np.ndarray, flag: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """(label quality score per row, issue flag per row) from cleanlab.

    cleanlab warns about classes with few examples (an 18-class set has rare ones); its
    verdict for them is still the best there is, so the warning is not passed on. One job:
    the app calls this from a server thread, where cleanlab's process pool must not start.
    """
    from cleanlab.filter import find_label_issues
    from cleanlab.rank import get_label_quality_scores

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        quality = get_label_quality_scores(labels, probs)
        if not flag or len(np.unique(labels)) < 2:
            return quality, probs.argmax(1) != labels
        flagged = find_label_issues(labels, probs, n_jobs=1)
    return quality, np.asarray(flagged, dtype=bool)


def rank_images(oof: OutOfFold) -> pd.DataFrame:
    """Every image, most suspect first (IMAGE_COLUMNS): given and suggested class names, score."""
    quality, flagged = _cleanlab(oof.labels, oof.probs)
    names = np.asarray(oof.class_names, dtype=object)
    t = pd.DataFrame({"path": oof.table["path"], "person": oof.table["person"], "given": names[oof.labels],
                      "suggested": names[oof.probs.argmax(1)], "score": quality, "flagged": flagged})
    t = t.sort_values("score", kind="stable", ignore_index=True)
    t.insert(0, "rank", np.arange(1, len(t) + 1))
    return t[IMAGE_COLUMNS]


def attribute_probs(probs: np.ndarray) -> dict[str, np.ndarray]:
    """The 18-way probabilities split into mask (3), gender (2) and age group (3) marginals."""
    p = probs.reshape(len(probs), len(L.MASK_NAMES), len(L.GENDER_NAMES), len(L.AGE_NAMES))
    return {"mask": p.sum(axis=(2, 3)), "gender": p.sum(axis=(1, 3)), "age": p.sum(axis=(1, 2))}


def _person_field(oof: OutOfFold, persons: pd.Index, field: str, column: str, probs: np.ndarray) -> pd.DataFrame:
    """One candidate per person for a person-wide field (gender or age group): the field's
    probabilities averaged over the person's photos, scored by cleanlab."""
    t = oof.table
    mean = pd.DataFrame(probs).groupby(t["person"].to_numpy()).mean().reindex(persons).to_numpy()
    given = t.groupby("person")[column].first().reindex(persons).to_numpy(np.int64)
    quality, flagged = _cleanlab(given, mean / mean.sum(axis=1, keepdims=True))
    return pd.DataFrame({"person": persons, "field": field, "given_code": given, "suggested_code": mean.argmax(1),
                         "score": quality, "flagged": flagged & (mean.argmax(1) != given)})


def _swap_candidates(oof: OutOfFold, mask: np.ndarray) -> pd.DataFrame:
    """One candidate per person with both photos: their mask labels as given vs. exchanged.

    With given labels g_a (photo incorrect_mask) and g_b (photo normal), P(as given) is
    proportional to p_a(g_a) * p_b(g_b) and P(exchanged) to p_a(g_b) * p_b(g_a); cleanlab scores
    the given side of that two-way choice. The given labels are the run's, so a pair a
    correction already swapped is judged as swapped (and exchanging it back is one more swap line).
    """
    t = oof.table.assign(row=np.arange(len(oof.table)))
    pairs = t[t["stem"].isin(SWAP)].pivot_table(index="person", columns="stem", values="row", aggfunc="first")
    pairs = pairs.dropna(subset=[s for s in SWAP if s in pairs.columns])
    if not set(SWAP) <= set(pairs.columns) or pairs.empty:
        return pd.DataFrame(columns=["person", "field", "given_code", "suggested_code", "score", "flagged"])
    ra, rb = (pairs[s].to_numpy(np.int64) for s in SWAP)
    ga, gb = t["mask"].to_numpy(np.int64)[ra], t["mask"].to_numpy(np.int64)[rb]  # the labels as given
    given, exchanged = mask[ra, ga] * mask[rb, gb], mask[ra, gb] * mask[rb, ga]
    two = np.stack([given, exchanged], axis=1) + 1e-12
    quality, _ = _cleanlab(np.zeros(len(two), np.int64), two / two.sum(axis=1, keepdims=True), flag=False)
    return pd.DataFrame({"person": pairs.index, "field": "swap", "given_code": ga * 3 + gb,
                         "suggested_code": gb * 3 + ga, "score": quality,
                         "flagged": (exchanged > given) & (ga != gb)})


def _describe(row, ages: dict[str, int]) -> tuple[str, str, str]:
    """(given, suggested, correction value) of one candidate, as people read them."""
    if row.field == "gender":
        return (L.GENDER_NAMES[row.given_code], L.GENDER_NAMES[row.suggested_code],
                [k for k, v in L.GENDER_CODES.items() if v == row.suggested_code][0])
    if row.field == "age":
        age = ages[row.person]
        return (f"{age} ({L.AGE_NAMES[row.given_code]})", L.AGE_NAMES[row.suggested_code],
                str(nearest_age(age, int(row.suggested_code))))
    pair = lambda code: ", ".join(f"{s}: {L.MASK_NAMES[m]}" for s, m in zip(SWAP, divmod(int(code), 3)))  # noqa: E731
    return pair(row.given_code), pair(row.suggested_code), SWAP_VALUE


def nearest_age(age: int, group: int) -> int:
    """The age in ``group`` closest to ``age``: the smallest change that moves a person into the
    suggested group (the model predicts a group, never a number of years)."""
    low, high = {0: (0, 29), 1: (30, 59), 2: (60, 120)}[group]
    return int(min(max(age, low), high))


def rank_persons(oof: OutOfFold) -> pd.DataFrame:
    """Persons, most suspect first (PERSON_COLUMNS): the field, given and suggested labels, the
    correction value and cleanlab's score. Non-competition datasets have no person fields: their
    suspects are the images (field ``label``), which a corrections file cannot change."""
    if not oof.competition:
        images = rank_images(oof)
        return images.assign(field="label", value=images["suggested"], stems="")[PERSON_COLUMNS]
    t = oof.table
    persons = pd.Index(t["person"].drop_duplicates())
    parts = attribute_probs(oof.probs)
    candidates = pd.concat([_person_field(oof, persons, "gender", "gender", parts["gender"]),
                            _person_field(oof, persons, "age", "age_group", parts["age"]),
                            _swap_candidates(oof, parts["mask"])], ignore_index=True)
    candidates["score"] = candidates["score"].astype(float)
    worst = candidates.sort_values("score", kind="stable").drop_duplicates("person")
    ages = t.groupby("person")["age"].first().to_dict()
    described = [_describe(r, ages) for r in worst.itertuples()]
    folders = t.groupby("person")["path"].first().map(lambda p: str(Path(p).parent))
    out = pd.DataFrame({"path": worst["person"].map(folders).to_numpy(), "person": worst["person"].to_numpy(),
                        "field": worst["field"].to_numpy(), "given": [d[0] for d in described],
                        "suggested": [d[1] for d in described], "value": [d[2] for d in described],
                        "score": worst["score"].to_numpy(), "flagged": worst["flagged"].to_numpy(bool),
                        "stems": np.where(worst["field"] == "swap", ";".join(SWAP), "all")})
    out.insert(0, "rank", np.arange(1, len(out) + 1))
    return out[PERSON_COLUMNS]


# ----------------------------------------------------------------------------- measuring

def planted_recall(suspects: pd.DataFrame, truth_csv: str | Path, times: int = 3) -> dict:
    """How many of a demo's planted persons (``label_noise.csv``) are among the top ``times`` x
    (number planted) suspects, and how many of those got the right field."""
    path = Path(truth_csv)
    if not path.is_file():
        raise UserError(f"{path}: truth file does not exist (the demo writes label_noise.csv with --label-noise)")
    truth = pd.read_csv(path, dtype=str, keep_default_na=False)
    if not {"person", "kind"} <= set(truth.columns):
        raise UserError(f"{path}: not a label_noise.csv (needs the columns person, kind)")
    planted = dict(zip(truth["person"].str.split("_").str[0], truth["kind"]))
    top = suspects.head(times * len(planted))
    found = top[top["person"].astype(str).isin(planted)]
    right = sum(planted[p] == f for p, f in zip(found["person"].astype(str), found["field"]))
    return {"planted": len(planted), "top": len(top), "found": len(found), "field_right": int(right),
            "recall": len(found) / len(planted) if planted else float("nan"),
            "missed": sorted(set(planted) - set(found["person"].astype(str)))}


# ----------------------------------------------------------------------------- finding

def finder_config(data: str | Path, folds: int = 3, **settings):
    """The K-fold TrainConfig the finder trains when it is given no run (``settings``: any other
    TrainConfig field, e.g. epochs, seed, corrections, out)."""
    from core.rulebook import FINDER_FOLDS
    from core.training.config import TrainConfig

    FINDER_FOLDS.check(folds, "--folds")  # out-of-fold predictions of every image need K >= 2
    return TrainConfig(data=str(data), folds=folds, **{k: v for k, v in settings.items() if v is not None})


def suspects_of(run: str | Path, data: str | Path | None = None) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(persons, images) of :func:`rank_persons` and :func:`rank_images` for a finished K-fold run."""
    oof = out_of_fold(run, data)
    return rank_persons(oof), rank_images(oof)


# ----------------------------------------------------------------------------- reviewing

def _read(path: Path, columns: list[str]) -> pd.DataFrame:
    """The corrections (or dismissed) CSV's rows, read under the corrections schema's column
    rules; a missing file is an empty table, a foreign or damaged one a UserError naming it."""
    from core.rulebook import CORRECTIONS_CSV
    from core.rules import CsvSchema

    if not path.exists():
        return pd.DataFrame(columns=columns)
    schema = CsvSchema(CORRECTIONS_CSV.what, {c: CORRECTIONS_CSV.columns[c] for c in columns}, rows_required=False,
                       fix="choose another corrections file")
    return schema.read(path)[columns]


def accept(corrections_csv: str | Path, person: str, field: str, value: str) -> Path:
    """Write the correction ``person,field,value`` into a corrections CSV (core.dataset's form),
    creating it with its header when missing, so the next scan with it applies the fix.

    A gender, age or race line replaces an earlier one for the same person and field. A swap
    exchanges two photos' labels and a second swap exchanges them back, so accepting a swap the
    file already holds removes it instead of adding a second one. The file is checked with
    core.dataset.load_corrections before it replaces the old one.
    """
    from core.dataset import CORRECTION_COLUMNS, load_corrections
    from core.fileio import atomic_path

    path = Path(corrections_csv)
    table = _read(path, list(CORRECTION_COLUMNS))
    same = (table["person"] == str(person)) & (table["field"] == field)
    table = table[~same]
    if not (field == "swap" and same.any()):
        table = pd.concat([table, pd.DataFrame([[str(person), field, str(value)]], columns=table.columns)])
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        table.to_csv(tmp, index=False)
        load_corrections(tmp)  # a value the dataset layer would refuse never reaches the file
    return path


def withdraw(corrections_csv: str | Path, person: str, field: str) -> Path:
    """Remove the corrections CSV's line(s) for ``person`` and ``field`` (undo an accept)."""
    from core.dataset import CORRECTION_COLUMNS
    from core.fileio import atomic_path

    path = Path(corrections_csv)
    table = _read(path, list(CORRECTION_COLUMNS))
    with atomic_path(path) as tmp:
        table[~((table["person"] == str(person)) & (table["field"] == field))].to_csv(tmp, index=False)
    return path


def dismissed_path(corrections_csv: str | Path) -> Path:
    """Where dismissed suggestions are kept: beside the dataset's corrections CSV."""
    path = Path(corrections_csv)
    return path.with_name(f"{path.stem}.dismissed.csv")


def dismiss(corrections_csv: str | Path, person: str, field: str, value: str) -> Path:
    """Remember that the suggestion (person, field, value) is not an error, so it stays hidden."""
    from core.fileio import atomic_path

    path = dismissed_path(corrections_csv)
    table = _read(path, ["person", "field", "value"])
    table = pd.concat([table, pd.DataFrame([[str(person), field, str(value)]], columns=table.columns)])
    with atomic_path(path) as tmp:
        table.drop_duplicates().to_csv(tmp, index=False)
    return path


def review_state(suspects: pd.DataFrame, corrections_csv: str | Path) -> pd.Series:
    """Per suspect: "accepted" (its line is in the corrections CSV), "dismissed" or "open"."""
    from core.dataset import CORRECTION_COLUMNS

    keys = list(zip(suspects["person"].astype(str), suspects["field"], suspects["value"].astype(str)))
    accepted = set(map(tuple, _read(Path(corrections_csv), list(CORRECTION_COLUMNS)).to_numpy().tolist()))
    dismissed = set(map(tuple, _read(dismissed_path(corrections_csv), ["person", "field", "value"])
                        .to_numpy().tolist()))
    return pd.Series(["accepted" if k in accepted else "dismissed" if k in dismissed else "open" for k in keys],
                     index=suspects.index)


# ----------------------------------------------------------------------------- retraining

# What must be equal for two runs' scores to compare ("the same settings"); the resolved recipe is
# compared too. Paths of recipe files, output folders, devices and worker counts may differ.
COMPARED = ("data", "model", "head", "epochs", "batch_size", "lr", "optimizer", "weight_decay", "scheduler", "loss",
            "focal_gamma", "smoothing", "accum_steps", "folds", "val_ratio", "seed", "weights", "warmup_epochs",
            "ema_epochs")


def retrain_config(run: str | Path, corrections_csv: str | Path, out: str | Path):
    """(TrainConfig, recipe) that repeat ``run`` with the corrections CSV applied: same data,
    recipe, folds, seed and settings, so its scores compare with the run's."""
    import dataclasses

    from core.runs import read_json
    from core.training.config import resume_config

    kept = read_config(run)["config"]
    stored = resume_config(run, kept.get("device", "auto"), kept.get("workers", 0))  # the run's own settings
    cfg = dataclasses.replace(stored, corrections=str(Path(corrections_csv).resolve()), out=str(out), resume=None,
                              recipe=None)
    return cfg, read_json(run_path(run) / "recipe.json")


def baseline_run(run: str | Path, candidates: list[Path]) -> Path | None:
    """The newest run created before ``run`` with the same data, recipe and settings but other
    label corrections: what a retraining with corrections is compared against."""
    def settings(path: Path) -> tuple[dict, str, str] | None:
        try:
            c = read_config(path)
        except UserError:
            return None
        cfg = c.get("config", {})
        return ({k: cfg.get(k) for k in COMPARED} | {"recipe": c.get("recipe")}, str(cfg.get("corrections")),
                c.get("created", ""))

    mine = settings(Path(run))
    if mine is None:
        return None
    earlier = []
    for path in candidates:
        other = settings(path)
        if other and Path(path) != Path(run) and other[0] == mine[0] and other[1] != mine[1] and other[2] <= mine[2]:
            earlier.append((other[2], path))
    return max(earlier, key=lambda e: e[0])[1] if earlier else None
