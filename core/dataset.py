"""Turn a dataset folder into an index: a DataFrame with one row per usable image.

Three layouts are detected automatically:

* ``train``  - the competition's train set: ``<root>/images/<id>_<gender>_<race>_<age>/<stem>.<ext>``
  (``<root>`` may also be the images folder itself), with ``<root>/train.csv`` when present;
* ``eval``   - the competition's eval set: ``<root>/info.csv`` and ``<root>/images/<ImageID>``,
  with ``<root>/gt.csv`` giving the true answers when present;
* ``folders`` - one folder per class, as in torchvision's ImageFolder.

A scan never stops at the first problem: every problem is collected as a :class:`Problem`
naming the path and the rule it breaks, and unusable files are left out of the index.
Only a dataset that cannot be read at all raises :class:`DatasetError`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from core import labels
from core import rulebook as rb
from core.errors import DatasetError, UserError
from core.images import check_image
from core.listfiles import (  # noqa: F401 - re-exported
    CORRECTION_COLUMNS,
    REPORTED_CORRECTIONS,
    apply_corrections,
    apply_leave_out,
    load_corrections,
    load_leave_out,
)
from core.rules import CsvSchema

TRAIN_CSV_COLUMNS = tuple(rb.TRAIN_CSV.columns)
EVAL_CSV_COLUMNS = tuple(rb.INFO_CSV.columns)

# Columns of the index, in order. Label fields are -1 / "" where a layout has none.
INDEX_COLUMNS = (
    "path", "rel", "person", "gender", "gender_name", "race", "age", "age_group", "age_name",
    "stem", "mask", "mask_name", "label", "label_name", "width", "height", "corrected", "correction",
)


def printable(text: str) -> str:
    """``text`` with any byte that is not UTF-8 (a lone surrogate from the filesystem) shown as U+FFFD."""
    return text.encode("utf-8", "replace").decode("utf-8") if any("\ud800" <= c <= "\udfff" for c in text) else text


@dataclass(frozen=True)
class Problem:
    """One thing wrong with one path."""

    path: str
    rule: str

    def __post_init__(self):
        # A name in another encoding reaches Python as lone surrogates, which no text file or
        # terminal can show: keep a printable form (each bad byte as U+FFFD).
        object.__setattr__(self, "path", printable(self.path))

    def __str__(self) -> str:
        return f"{self.path}: {self.rule}"


@dataclass
class Dataset:
    """The result of a scan: the index plus everything noticed on the way."""

    root: Path
    layout: str  # "train", "eval" or "folders"
    df: pd.DataFrame
    class_names: list[str]
    problems: list[Problem] = field(default_factory=list)
    skipped_hidden: int = 0  # AppleDouble and other dot files passed over on purpose
    left_out: int = 0  # images a leave-out file took out of the index (nothing is deleted)

    @property
    def has_labels(self) -> bool:
        return bool((self.df["label"] >= 0).any()) if len(self.df) else False

    @property
    def has_persons(self) -> bool:
        return self.layout == "train"

    def problems_note(self) -> str | None:
        """One line for a command's output when the scan left files out of the index (not images,
        truncated, unreadable CSV rows...), naming the first and how to list them all; else None."""
        if not self.problems:
            return None
        return (f"{len(self.problems)} file(s) left out of the index of {self.root}, e.g. {self.problems[0]}; "
                f"`python -m core info --data {self.root}` lists them all")

    def summary(self) -> dict:
        df = self.df
        return {
            "root": str(self.root),
            "layout": self.layout,
            "images": int(len(df)),
            "persons": int(df["person"].nunique()) if self.has_persons else None,
            "classes": int(df.loc[df["label"] >= 0, "label"].nunique()),
            "problems": len(self.problems),
            "hidden_files_skipped": self.skipped_hidden,
        }


# ----------------------------------------------------------------------------- files

def _is_hidden(p: Path) -> bool:
    return p.name.startswith(".")


def _odd_name(p: Path) -> str | None:
    """Why a file or folder name cannot go into the index (its path is written to CSV files and
    shown in the app, which need text), or None."""
    try:
        p.name.encode("utf-8")
    except UnicodeEncodeError:
        return "its name is not valid UTF-8 text (bytes from another encoding); rename it"
    if any(ord(c) < 32 for c in p.name):
        return "its name holds control characters (a newline, a tab...); rename it"
    return None


def _list_files(folder: Path, problems: list[Problem]) -> tuple[list[Path], int]:
    """Visible files of a folder, sorted, and how many hidden ones were passed over; files whose
    names cannot be indexed become problems."""
    files, hidden = [], 0
    for p in sorted(folder.iterdir()):
        if _is_hidden(p):
            hidden += 1
        elif p.is_file():
            why = _odd_name(p)
            if why:
                problems.append(Problem(str(p), why))
            else:
                files.append(p)
    return files, hidden


# ----------------------------------------------------------------------------- detection

_PERSON_RE = re.compile(r"^([^_]+)_([^_]+)_([^_]+)_([^_]+)$")


def _subdirs(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_dir() and not _is_hidden(p))


def detect_layout(root: Path) -> tuple[str, Path]:
    """Return (layout, images_dir). Raises DatasetError when no layout matches."""
    if not root.exists():
        raise DatasetError(f"{root}: dataset folder does not exist; check the path (try `python -m core demo --out demo_data` for a demo)")
    if not root.is_dir():
        raise DatasetError(f"{root}: is a file, not a dataset folder; pass the folder that holds the images")
    if (root / "info.csv").is_file():
        return "eval", root / "images"
    if (root / "train.csv").is_file() and (root / "images").is_dir():
        return "train", root / "images"
    if (root / "images").is_dir() and _looks_like_person_folders(root / "images"):
        return "train", root / "images"
    subdirs = _subdirs(root)
    if not subdirs and not any(not _is_hidden(p) for p in root.iterdir()):
        raise DatasetError(f"{root}: dataset folder is empty; point to a folder with images")
    if _looks_like_person_folders(root):
        return "train", root
    if subdirs and any(_has_image(d) for d in subdirs):
        return "folders", root
    raise DatasetError(
        f"{root}: matches none of the supported layouts: competition train "
        "(images/<id>_<gender>_<race>_<age>/<stem>.jpg), competition eval (info.csv + images/) "
        "or one folder per class (<class>/<image>)"
    )


def _looks_like_person_folders(folder: Path) -> bool:
    subdirs = _subdirs(folder)
    if not subdirs:
        return False
    matching = sum(bool(_PERSON_RE.match(d.name)) for d in subdirs)
    stems = set(labels.STEM_TO_MASK)
    with_stems = sum(any(p.stem in stems for p in d.iterdir()) for d in subdirs[:20])
    return matching / len(subdirs) >= 0.5 and with_stems > 0


def _has_image(folder: Path) -> bool:
    return any(p.suffix.lower() in labels.IMAGE_EXTENSIONS or p.suffix.lower() in (".bmp", ".webp")
               for p in folder.iterdir() if not _is_hidden(p))


# ----------------------------------------------------------------------------- rows

def _row(path: Path, root: Path, size: tuple[int, int], **fields) -> dict:
    row = {
        "path": str(path), "rel": str(path.relative_to(root)), "person": "", "gender": -1,
        "gender_name": "", "race": "", "age": -1, "age_group": -1, "age_name": "", "stem": path.stem,
        "mask": -1, "mask_name": "", "label": -1, "label_name": "", "width": size[0],
        "height": size[1], "corrected": False, "correction": "",
    }
    row.update(fields)
    return row


def fill_names(df: pd.DataFrame) -> pd.DataFrame:
    """Derive readable names and the 18-way class from mask/gender/age fields."""
    df["age_group"] = [labels.age_group(a) if a >= 0 else g for a, g in zip(df["age"], df["age_group"])]
    known = (df["mask"] >= 0) & (df["gender"] >= 0) & (df["age_group"] >= 0)
    df["gender_name"] = [labels.GENDER_NAMES[g] if g >= 0 else "" for g in df["gender"]]
    df["age_name"] = [labels.AGE_NAMES[a] if a >= 0 else "" for a in df["age_group"]]
    df["mask_name"] = [labels.MASK_NAMES[m] if m >= 0 else "" for m in df["mask"]]
    df["label"] = df["label"].where(~known, df["mask"] * 6 + df["gender"] * 3 + df["age_group"])
    df["label_name"] = [labels.CLASS_NAMES[c] if c >= 0 else "" for c in df["label"]]
    return df


def _parse_person(name: str) -> tuple[dict | None, str | None]:
    """Folder name -> person fields, or a problem text."""
    m = _PERSON_RE.match(name)
    if not m:
        return None, "folder name does not parse as <id>_<gender>_<race>_<age>"
    pid, gender, race, age = m.groups()
    if gender.lower() not in labels.GENDER_CODES:
        return None, f"unknown gender {gender!r} in folder name (allowed: male, female)"
    try:
        years = rb.AGE.parse(age, "age in the folder name")
    except UserError as exc:
        return None, str(exc)
    return {"person": pid, "gender": labels.GENDER_CODES[gender.lower()], "race": race, "age": years}, None


def _read_csv(path: Path, schema: CsvSchema, problems: list[Problem]) -> pd.DataFrame | None:
    """The rows of ``path`` that keep ``schema``'s rules; each bad row, or the whole file when it
    cannot be used, becomes a Problem instead of an exception."""
    try:
        table, bad = schema.read(path, on_bad="collect")
    except UserError as exc:
        problems.append(Problem(str(path), str(exc).removeprefix(f"{path}: ")))
        return None
    for message in bad:
        problems.append(Problem(str(path), message.removeprefix(f"{path} ")))
    return table


def _scan_train(root: Path, images: Path, problems: list[Problem]) -> tuple[list[dict], int]:
    folders = _subdirs(images)
    csv_path = images.parent / "train.csv" if images != root else root / "train.csv"
    listed: dict[str, dict] | None = None
    if csv_path.is_file():
        table = _read_csv(csv_path, rb.TRAIN_CSV, problems)
        if table is not None:
            listed = {r["path"]: r for r in table.to_dict("records")}
            on_disk = {d.name for d in folders}
            for name in listed:
                if name not in on_disk:
                    problems.append(Problem(str(images / name), f"listed in {csv_path.name} but the folder is missing"))
            for d in folders:
                if d.name not in listed:
                    problems.append(Problem(str(d), f"not listed in {csv_path.name}; used from its folder name"))
    rows, hidden, seen = [], 0, {}
    for d in folders:
        fields, why = _parse_person(d.name) if not _odd_name(d) else (None, _odd_name(d))
        if why:
            problems.append(Problem(str(d), why))
            continue
        if fields["person"] in seen:
            problems.append(Problem(str(d), f"duplicate person id {fields['person']} (also {seen[fields['person']]}); "
                                            "keep one folder per person"))
            continue
        seen[fields["person"]] = d.name
        files, h = _list_files(d, problems)
        hidden += h
        for f in files:
            if f.suffix.lower() not in labels.IMAGE_EXTENSIONS:
                problems.append(Problem(str(f), f"not an image file (allowed: {', '.join(labels.IMAGE_EXTENSIONS)})"))
                continue
            if f.stem not in labels.STEM_TO_MASK:
                problems.append(Problem(str(f), f"unknown file stem {f.stem!r} (allowed: {', '.join(labels.STEM_TO_MASK)})"))
                continue
            why, size = check_image(f)
            if why:
                problems.append(Problem(str(f), why))
                continue
            rows.append(_row(f, root, size, mask=labels.STEM_TO_MASK[f.stem], **fields))
    return rows, hidden


def _scan_eval(root: Path, images: Path, problems: list[Problem]) -> list[dict]:
    info = _read_csv(root / "info.csv", rb.INFO_CSV, problems)
    if info is None:
        raise DatasetError(str(problems[-1]), problems)
    truth: dict[str, int] = {}
    if (root / "gt.csv").is_file():
        gt = _read_csv(root / "gt.csv", rb.ANSWERS_CSV, problems)
        if gt is not None:
            truth = {image_id: int(ans) for image_id, ans in zip(gt["ImageID"], gt["ans"])}
    rows = []
    for order, image_id in enumerate(info["ImageID"]):
        f = images / image_id
        if not f.is_file():
            problems.append(Problem(str(f), "listed in info.csv but the file is missing"))
            continue
        why, size = check_image(f)
        if why:
            problems.append(Problem(str(f), why))
            continue
        row = _row(f, root, size, image_id=image_id, order=order)
        if image_id in truth:
            m, g, a = labels.decode(truth[image_id])
            row.update(mask=m, gender=g, age_group=a, label=truth[image_id])
        rows.append(row)
    return rows


def _scan_folders(root: Path, problems: list[Problem]) -> tuple[list[dict], list[str], int]:
    classes = []
    for d in _subdirs(root):
        if _has_image(d) and _odd_name(d):
            problems.append(Problem(str(d), f"class folder: {_odd_name(d)}"))
        elif _has_image(d):
            classes.append(d)
    rows, hidden = [], 0
    for idx, d in enumerate(classes):
        files, h = _list_files(d, problems)
        hidden += h
        for f in files:
            why, size = check_image(f)
            if why:
                problems.append(Problem(str(f), why))
                continue
            rows.append(_row(f, root, size, label=idx, label_name=d.name, person=f"{d.name}/{f.stem}"))
    for d in _subdirs(root):
        if d not in classes and not _has_image(d):
            problems.append(Problem(str(d), "class folder holds no images; "
                                                                                 "it is ignored"))
    return rows, [d.name for d in classes], hidden


# ----------------------------------------------------------------------------- entry point

def scan(root: str | Path, corrections: str | Path | None = None, leave_out: str | Path | None = None) -> Dataset:
    """Index a dataset folder. See the module docstring for layouts and problem handling.

    ``leave_out``: a leave-out CSV (:func:`load_leave_out`); the images it lists are not indexed,
    and ``Dataset.left_out`` counts them. The files themselves are untouched."""
    root = Path(root).expanduser()
    layout, images = detect_layout(root)
    problems: list[Problem] = []
    hidden = 0
    if layout == "train":
        rows, hidden = _scan_train(root, images, problems)
        class_names = list(labels.CLASS_NAMES)
    elif layout == "eval":
        if not images.is_dir():
            raise DatasetError(f"{images}: eval layout needs an images/ folder beside info.csv")
        rows = _scan_eval(root, images, problems)
        hidden = sum(1 for p in images.iterdir() if _is_hidden(p))
        class_names = list(labels.CLASS_NAMES)
    else:
        rows, class_names, hidden = _scan_folders(root, problems)
    if not rows:
        raise DatasetError(f"{root}: no usable images found ({len(problems)} problem(s)); "
                           + (str(problems[0]) if problems else "check the layout"), problems)
    df = pd.DataFrame(rows)
    if layout != "folders":
        df = fill_names(df)
    if corrections is not None:
        if layout != "train":
            raise DatasetError(f"{corrections}: label corrections apply to the competition train layout only, "
                               f"but {root} is a {layout!r} dataset")
        df = apply_corrections(df, load_corrections(corrections))
    left_out = 0
    if leave_out is not None:
        df, left_out = apply_leave_out(df, root, load_leave_out(leave_out), str(leave_out), problems)
        if df.empty:
            raise DatasetError(f"{leave_out}: leaves out every image of {root}; nothing is left to use", problems)
    return Dataset(root=root, layout=layout, df=df.reset_index(drop=True), class_names=class_names,
                   problems=problems, skipped_hidden=hidden, left_out=left_out)
