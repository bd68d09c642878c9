"""Planted data faults in the demo (``--defects RATE``), with the truth written beside train/.

Real datasets carry faults that spoil a validation score without any wrong label: a person
filed under two ids, the same photo twice, evaluation photos that also sit in the training
folder, photos too dark, too bright, blurred or nearly blank, and files of an odd size or shape.
``make_demo(defects=RATE)`` plants each kind, so that ``python -m core health`` can be measured
(recall and precision: bench/bench_health.py --score):

* ``exact_duplicate``    - one photo's file copied byte for byte over another photo (of another
  person, or of the same person);
* ``near_duplicate``     - a photo replaced by another person's photo re-encoded, resized,
  slightly cropped or brightness-shifted;
* ``duplicate_person``   - a new person id whose seven photos are copies of an existing person's
  (re-encoded, resized, cropped or brightness-shifted), listed in train.csv like anyone else;
* ``train_eval_overlap`` - a training photo (re-encoded or resized) added to the eval set;
* ``dark`` / ``light``   - a photo under- or over-exposed;
* ``blurry``             - a photo blurred (Gaussian or motion blur);
* ``low_information``    - a photo replaced by a nearly blank frame;
* ``odd_size`` / ``odd_aspect_ratio`` - a photo rescaled, or cut to a strip.

Like the label noise (core.demo.noise), the plan draws from its own generator, seeded by
(seed, DEFECTS_KEY), so a demo with RATE 0 is byte-identical to one made without the option,
and the truth goes beside ``train/`` and ``eval/``, never inside them:

``defects.csv``: issue, path (relative to the demo folder; a person's folder for
``duplicate_person``), person (the id whose folder holds the photo; for an eval photo, the
training person it copies), group (ties the members of one duplicate set), detail (what was done).
"""

from __future__ import annotations

import csv
import hashlib
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING

import cv2
import numpy as np

from core.demo.noise import planted_count
from core.demo.person import Person
from core.demo.population import STEMS
from core.labels import STEM_TO_MASK, age_group, encode

if TYPE_CHECKING:
    import pandas as pd

KINDS = ("exact_duplicate", "near_duplicate", "duplicate_person", "train_eval_overlap", "dark", "light", "blurry",
         "low_information", "odd_size", "odd_aspect_ratio")
TRUTH_FILE = "defects.csv"
TRUTH_COLUMNS = ("issue", "path", "person", "group", "detail")
DEFECTS_KEY = 0xDEF  # the planner's own seed entry; the photo and label-noise streams never use it
TWO_PERSONS = ("exact_duplicate", "near_duplicate")  # a source person and a victim person


@dataclass
class Planted:
    """What ``plant_defects`` did: the truth rows, persons added to train.csv, rows added to
    the eval set's info.csv/gt.csv, and the count per kind."""

    rows: list[tuple] = field(default_factory=list)
    people: list[Person] = field(default_factory=list)
    eval_rows: list[tuple[str, int]] = field(default_factory=list)
    counts: dict[str, int] = field(default_factory=lambda: dict.fromkeys(KINDS, 0))


# ----------------------------------------------------------------------------- image edits

def _read(path: Path) -> np.ndarray:
    img = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if img is None:  # pragma: no cover - the demo wrote it a moment ago
        raise RuntimeError(f"cannot read {path}")
    return img


def _write(path: Path, img: np.ndarray, quality: int = 90) -> None:
    ext = path.suffix.lower()
    params = [cv2.IMWRITE_PNG_COMPRESSION, 3] if ext == ".png" else [cv2.IMWRITE_JPEG_QUALITY, int(quality)]
    ok, buf = cv2.imencode(".png" if ext == ".png" else ".jpg", img, params)
    if not ok:  # pragma: no cover
        raise RuntimeError(f"could not encode {path}")
    path.write_bytes(buf.tobytes())


def _scaled(img: np.ndarray, s: float) -> np.ndarray:
    h, w = img.shape[:2]
    return cv2.resize(img, (max(8, round(w * s)), max(8, round(h * s))),
                      interpolation=cv2.INTER_AREA if s < 1 else cv2.INTER_CUBIC)


def _gain(img: np.ndarray, gain: float, offset: float = 0.0) -> np.ndarray:
    return np.clip(img.astype(np.float32) * gain + offset, 0, 255).round().astype(np.uint8)


def _crop(img: np.ndarray, rng, most: float, back: bool) -> tuple[np.ndarray, str]:
    """Cut a few percent off each side (each side its own share); ``back``: resize to the old size."""
    h, w = img.shape[:2]
    left, top, right, bottom = rng.uniform(0.01, most, 4)
    out = img[int(top * h): h - int(bottom * h), int(left * w): w - int(right * w)]
    if back:
        out = cv2.resize(out, (w, h), interpolation=cv2.INTER_LINEAR)
    return out, f"cropped {left:.0%}/{top:.0%}/{right:.0%}/{bottom:.0%}" + (" and resized back" if back else "")


def near_copy(img: np.ndarray, rng, how: str | None = None) -> tuple[np.ndarray, int, str]:
    """A near duplicate of ``img``: (image, JPEG quality to save it at, what was done)."""
    how = how or str(rng.choice(["reencode", "resize", "crop", "brightness", "crop+brightness"]))
    quality = int(rng.integers(55, 86))
    if how == "reencode":
        return img, int(rng.integers(35, 70)), "re-encoded"
    if how == "resize":
        s = float(rng.uniform(0.45, 0.85))
        return _scaled(img, s), quality, f"resized x{s:.2f}"
    if how == "crop":
        out, what = _crop(img, rng, 0.07, back=bool(rng.random() < 0.5))
        return out, quality, what
    gain = float(rng.choice([rng.uniform(0.7, 0.88), rng.uniform(1.12, 1.3)]))
    if how == "brightness":
        return _gain(img, gain), quality, f"brightness x{gain:.2f}"
    out, what = _crop(img, rng, 0.05, back=True)
    return _gain(out, gain), quality, f"{what}, brightness x{gain:.2f}"


def _motion_kernel(length: int, angle: float) -> np.ndarray:
    k = np.zeros((length, length), np.float32)
    k[length // 2, :] = 1.0
    m = cv2.getRotationMatrix2D((length / 2 - 0.5, length / 2 - 0.5), angle, 1.0)
    k = cv2.warpAffine(k, m, (length, length))
    return k / k.sum()


def spoiled(img: np.ndarray, kind: str, rng) -> tuple[np.ndarray, str]:
    """``img`` with one quality fault (dark, light, blurry, low_information, odd_size, odd_aspect_ratio)."""
    h, w = img.shape[:2]
    if kind == "dark":
        gain = float(rng.uniform(0.1, 0.3))
        return _gain(img, gain), f"brightness x{gain:.2f}"
    if kind == "light":
        gain, offset = float(rng.uniform(1.8, 2.8)), float(rng.uniform(50, 110))
        return _gain(img, gain, offset), f"over-exposed x{gain:.1f} +{offset:.0f}"
    if kind == "blurry":
        if rng.random() < 0.5:
            sigma = float(rng.uniform(3.0, 6.0))
            return cv2.GaussianBlur(img, (0, 0), sigma), f"Gaussian blur sigma {sigma:.1f}"
        length, angle = int(rng.integers(15, 31)), float(rng.uniform(0, 180))
        return cv2.filter2D(img, -1, _motion_kernel(length, angle)), f"motion blur {length} px at {angle:.0f} deg"
    if kind == "low_information":
        mean = img.reshape(-1, 3).mean(0)
        ramp = np.linspace(-6, 6, h, dtype=np.float32)[:, None, None]
        noise = rng.normal(0, 1.5, size=img.shape).astype(np.float32)
        flat = np.clip(mean[None, None, :] + ramp + noise, 0, 255).round().astype(np.uint8)
        return flat, "nearly blank frame"
    if kind == "odd_size":
        s = float(rng.choice([rng.uniform(0.3, 0.6), rng.uniform(1.5, 2.0)]))
        return _scaled(img, s), f"resized x{s:.2f}"
    if kind == "odd_aspect_ratio":
        if rng.random() < 0.5:
            band = max(8, int(w * rng.uniform(0.3, 0.5)))
            top = int(rng.integers(0, h - band))
            return img[top: top + band], f"cut to a {w}x{band} strip"
        band = max(8, int(h * rng.uniform(0.25, 0.4)))
        left = int(rng.integers(0, max(1, w - band)))
        return img[:, left: left + band], f"cut to a {band}x{h} strip"
    raise ValueError(kind)


# ----------------------------------------------------------------------------- planting

def _photo(folder: Path, p: Person, stem: str) -> Path:
    return folder / f"{stem}{p.ext}"


def plant_defects(out: Path, listed: list[Person], rate: float, seed: int, avoid: set[int] = frozenset()) -> Planted:
    """Plant ``round(rate * len(listed))`` faults in the demo written to ``out`` (train/ and eval/
    drawn, train.csv and the eval CSVs not yet written); ``listed`` are the train persons as
    their labels describe them, ``avoid`` the indexes of persons given label noise (left alone,
    so that each planted person has one known fault). The kinds take turns in a random order."""
    planted = Planted()
    n = planted_count(len(listed), rate)
    if n == 0:
        return planted
    rng = np.random.default_rng(np.random.SeedSequence([seed, DEFECTS_KEY]))
    free = [p for p in listed if p.index not in avoid]
    order = rng.permutation(len(free)).tolist()
    pool = [free[i] for i in order]
    kinds = [KINDS[int(k)] for k in rng.permutation(len(KINDS))]
    images = out / "train" / "images"
    next_index = max(p.index for p in listed) + 1
    for turn in range(n):
        kind = kinds[turn % len(KINDS)]
        needed = 2 if kind in TWO_PERSONS else 1
        if len(pool) < needed:
            break
        group = f"d{turn + 1}"
        victim = pool.pop()
        folder = images / victim.folder
        pid = f"{victim.index + 1:06d}"
        if kind in ("dark", "light", "blurry", "low_information", "odd_size", "odd_aspect_ratio"):
            path = _photo(folder, victim, str(rng.choice(STEMS)))
            img, detail = spoiled(_read(path), kind, rng)
            _write(path, img)
            planted.rows.append((kind, _rel(path, out), pid, group, detail))
        elif kind == "exact_duplicate":
            stem = str(rng.choice(STEMS))
            same_ext = [p for p in pool if p.ext == victim.ext]
            if same_ext and rng.random() < 0.6:
                source = same_ext[int(rng.integers(len(same_ext)))]
                pool.remove(source)
                src = _photo(images / source.folder, source, str(rng.choice(STEMS)))
                spid = f"{source.index + 1:06d}"
            else:
                src = _photo(folder, victim, str(rng.choice([s for s in STEMS if s != stem])))
                spid = pid
            dst = _photo(folder, victim, stem)
            dst.write_bytes(src.read_bytes())
            planted.rows += [(kind, _rel(src, out), spid, group, "the original"),
                             (kind, _rel(dst, out), pid, group, f"byte copy of {src.name} of {spid}")]
        elif kind == "near_duplicate":
            source = pool.pop()
            src = _photo(images / source.folder, source, str(rng.choice(STEMS)))
            dst = _photo(folder, victim, str(rng.choice(STEMS)))
            img, quality, detail = near_copy(_read(src), rng)
            _write(dst, img, quality)
            spid = f"{source.index + 1:06d}"
            planted.rows += [(kind, _rel(src, out), spid, group, "the original"),
                             (kind, _rel(dst, out), pid, group, f"{detail} copy of {src.name} of {spid}")]
        elif kind == "duplicate_person":
            twin = replace(victim, index=next_index, appledouble=False)
            next_index += 1
            how = str(rng.choice(["reencode", "resize", "crop", "brightness"]))
            target = images / twin.folder
            target.mkdir(parents=True)
            for stem in STEMS:
                img, quality, _ = near_copy(_read(_photo(folder, victim, stem)), rng, how)
                _write(_photo(target, twin, stem), img, quality)
            planted.people.append(twin)
            tid = f"{twin.index + 1:06d}"
            planted.rows += [(kind, _rel(folder, out), pid, group, "the original"),
                             (kind, _rel(target, out), tid, group, f"{how} copies of {pid}")]
        else:  # train_eval_overlap
            stem = str(rng.choice(STEMS))
            img, quality, detail = near_copy(_read(_photo(folder, victim, stem)), rng,
                                             str(rng.choice(["reencode", "resize", "brightness"])))
            image_id = hashlib.sha1(f"masklab-defect:{seed}:{turn}".encode()).hexdigest() + ".jpg"
            dst = out / "eval" / "images" / image_id
            _write(dst, img, quality)
            planted.eval_rows.append((image_id, encode(STEM_TO_MASK[stem], victim.gender_code, age_group(victim.age))))
            planted.rows.append((kind, _rel(dst, out), pid, group, f"{detail} copy of {stem} of {pid}"))
        planted.counts[kind] += 1
    return planted


def _rel(path: Path, out: Path) -> str:
    return path.relative_to(out).as_posix()


def write_truth(out: Path, planted: Planted) -> Path:
    """OUT/defects.csv: one row per planted fault's member (see the module docstring)."""
    path = out / TRUTH_FILE
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(TRUTH_COLUMNS)
        w.writerows(planted.rows)
    return path


# ----------------------------------------------------------------------------- scoring a finder

def score_findings(truth: pd.DataFrame, findings: pd.DataFrame, root: Path) -> pd.DataFrame:
    """Recall and precision per issue of ``findings`` (health.csv's columns, absolute paths)
    against ``truth`` (defects.csv, paths relative to the demo folder ``root``).

    A duplicate_person is matched by person id, everything else by (issue, path). ``missed``
    and ``extra`` list the unmatched keys."""
    import pandas as pd

    root = Path(root).resolve()

    def key(issue: str, path: str, person: str) -> str:
        if issue == "duplicate_person":
            return str(person)
        p = Path(path)
        return (p.resolve().relative_to(root) if p.is_absolute() else p).as_posix()

    rows = []
    for issue in KINDS:
        want = {key(issue, r.path, r.person) for r in truth[truth["issue"] == issue].itertuples()}
        got = {key(issue, r.path, r.person) for r in findings[findings["issue"] == issue].itertuples()}
        hit = want & got
        rows.append({"issue": issue, "planted": len(want), "found": len(got), "right": len(hit),
                     "recall": len(hit) / len(want) if want else float("nan"),
                     "precision": len(hit) / len(got) if got else float("nan"),
                     "missed": sorted(want - got), "extra": sorted(got - want)})
    return pd.DataFrame(rows)
