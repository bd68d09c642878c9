"""Data health: duplicates, leaks and bad photos, found before training.

``check_health(data, eval_dir)`` looks at every image of a dataset folder (and of an eval
folder) and returns one finding per problem, in the columns of ``health.csv``
(``issue,path,person,score,group``; :data:`core.rulebook.HEALTH_CSV`):

* ``exact_duplicate`` / ``near_duplicate`` - the same photo twice (a copy may be re-encoded,
  resized, slightly cropped or brightness-shifted); ``group`` ties a duplicate set together;
* ``duplicate_person`` - two person ids whose photos are copies of each other: one row per
  person (its folder), one group; such persons leak through a person split;
* ``train_eval_overlap`` - an eval photo that duplicates a training photo (``person`` names the
  training person);
* ``dark``, ``light``, ``blurry``, ``low_information``, ``odd_size``, ``odd_aspect_ratio`` -
  cleanvision's checks, plus each photo judged against the same person's other photos.

``score`` is 0-1, higher is worse (for duplicates: how closely the aligned copies match).

The work is cached per set of files, like the face scan: the per-image measurements
(core.health.measure) and the findings each have an on-disk entry, so a second call on the
same files reads them. The pieces: measure (one decode per image), quality (cleanvision's
verdicts and the per-person checks), duplicates (candidates and their verification), findings
(what the duplicates mean).

What uses the findings: :func:`fold_groups` (persons the splitter keeps in one fold,
core.splits; ``train --health``) and :func:`leave_out_rows` / :func:`write_leave_out` (photos
the dataset layer leaves out, core.dataset; ``train --leave-out``).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from core import rulebook as rb
from core.fileio import atomic_path, locked, remove_unlocked_temporaries
from core.health.findings import COLUMNS, build
from core.health.measure import MEASURE_VERSION, cached_measure, files_key
from core.listfiles import write_csv
from core.paths import cache_dir

ISSUES = tuple(rb.HEALTH_ISSUE.values)
OVERLAP = "train_eval_overlap"  # the duplicate issue whose group ties eval photos to training photos
# Part of the findings cache's name: bump it when the findings change for the same measurements.
FINDINGS_VERSION = 1
# Issues whose groups tie persons together (their photos are copies of each other): every
# duplicate issue of the rule book but the eval overlap.
LINKING = tuple(issue for issue in rb.HEALTH_DUPLICATES if issue != OVERLAP)
if OVERLAP not in rb.HEALTH_DUPLICATES:
    raise RuntimeError(f"core.rulebook.HEALTH_DUPLICATES has no {OVERLAP!r}; rename it in core.health too")

Progress = Callable[[int, int], None]


@dataclass
class HealthResult:
    """What :func:`check_health` found."""

    findings: pd.DataFrame  # COLUMNS, one row per finding
    pairs: pd.DataFrame  # PAIR_COLUMNS: the matched pairs behind each duplicate group
    images: int  # training images looked at
    eval_images: int = 0
    unreadable: list[str] = field(default_factory=list)  # files that could not be decoded (skipped)
    cached: bool = False
    left_out: list[str] = field(default_factory=list)  # the scans' notes on files they left out of the index

    def counts(self) -> dict[str, int]:
        """Findings per issue, every issue listed (0 where none)."""
        found = self.findings["issue"].value_counts()
        return {issue: int(found.get(issue, 0)) for issue in ISSUES}


def _key(train: list[str], evals: list[str]) -> str:
    return f"{files_key(train)}-{files_key(evals) if evals else 'none'}-m{MEASURE_VERSION}f{FINDINGS_VERSION}"


def _cache_files(key: str) -> tuple[Path, Path]:
    folder = cache_dir("health")
    return folder / f"{key}.findings.csv", folder / f"{key}.pairs.csv"


def _read_cached(key: str) -> tuple[pd.DataFrame, pd.DataFrame, list[str]] | None:
    found, pairs = _cache_files(key)
    try:
        findings = pd.read_csv(found, dtype=str, keep_default_na=False)
        pair_table = pd.read_csv(pairs, dtype=str, keep_default_na=False)
    except FileNotFoundError:
        return None
    try:
        os.utime(found)
    except OSError:
        pass
    unreadable = findings.loc[findings["issue"] == "unreadable", "path"].tolist()
    findings = findings[findings["issue"] != "unreadable"].reset_index(drop=True)
    findings["score"] = findings["score"].astype(float)
    pair_table["score"] = pair_table["score"].astype(float)
    return findings, pair_table, unreadable


def _write_cached(key: str, findings: pd.DataFrame, pairs: pd.DataFrame, unreadable: list[str]) -> None:
    found, pair_file = _cache_files(key)
    with atomic_path(pair_file) as tmp:
        pairs.to_csv(tmp, index=False)
    marks = pd.DataFrame({"issue": "unreadable", "path": unreadable, "person": "", "score": 0.0, "group": ""})
    with atomic_path(found) as tmp:  # written last: its presence means the entry is complete
        pd.concat([findings, marks], ignore_index=True).to_csv(tmp, index=False)


def _scan(folder: str | Path):
    from core.dataset import scan

    return scan(folder)


def check_health(data: str | Path, eval_dir: str | Path | None = None, progress: Progress | None = None,
                 workers: int | None = None, log: Callable[[str], None] | None = None) -> HealthResult:
    """The findings for dataset folder ``data`` (and eval folder ``eval_dir``), computed once per
    set of files and then read from the cache. See the module docstring for the issues."""
    ds = _scan(data)
    ev = _scan(eval_dir) if eval_dir else None
    train = ds.df["path"].astype(str).tolist()
    evals = ev.df["path"].astype(str).tolist() if ev is not None else []
    key = _key(train, evals)
    notes = (ds.problems_note(), ev.problems_note() if ev is not None else None)
    left_out = [note for note in dict.fromkeys(notes) if note]  # (one line when --eval is --data's folder)
    cached = _read_cached(key)
    if cached is None:
        found = _cache_files(key)[0]
        with locked(found):
            cached = _read_cached(key)
            if cached is None:
                remove_unlocked_temporaries(found.parent, own=found)
                findings, pairs, unreadable = _compute(ds, train, evals, progress, workers, log)
                _write_cached(key, findings, pairs, unreadable)
                return HealthResult(findings, pairs, len(train), len(evals), unreadable, left_out=left_out)
    findings, pairs, unreadable = cached
    if progress:
        progress(1, 1)
    return HealthResult(findings, pairs, len(train), len(evals), unreadable, cached=True, left_out=left_out)


def _compute(ds, train: list[str], evals: list[str], progress, workers, log):
    say = log or (lambda _text: None)
    say(f"measuring {len(train)} images")
    table, desc = cached_measure(train, progress, workers)
    if evals:
        say(f"measuring {len(evals)} eval images")
        etable, edesc = cached_measure(evals, progress, workers)
        table = pd.concat([table, etable], ignore_index=True)
        desc = np.concatenate([desc, edesc])
    paths = train + evals
    person = np.array(ds.df["person"].astype(str).tolist() + [""] * len(evals), dtype=object)
    is_eval = np.array([False] * len(train) + [True] * len(evals))
    ok = table["ok"].astype(bool).to_numpy()
    say("comparing look-alike pairs")
    findings, pairs = build(paths, person, is_eval, ds.has_persons, table, desc, progress, workers)
    unreadable = [p for p, good in zip(paths, ok) if not good]
    return findings, pairs, unreadable


# ----------------------------------------------------------------------------- files

def write_health_csv(findings: pd.DataFrame, out: str | Path) -> Path:
    """health.csv: one row per finding, columns issue,path,person,score,group."""
    return write_csv(findings[COLUMNS], out, "health CSV")


def read_health_csv(path: str | Path) -> pd.DataFrame:
    """A health.csv, every cell checked by :data:`core.rulebook.HEALTH_CSV` (UserError naming the row)."""
    table = rb.HEALTH_CSV.read(Path(path))
    table["score"] = table["score"].astype(float)
    return table


def outside(findings: pd.DataFrame, root: str | Path) -> pd.Series:
    """Which findings name a path outside the dataset folder ``root``: a health.csv written for
    another dataset (its person ids may be this one's too). ``train_eval_overlap`` rows are never
    outside: their path is an eval photo."""
    top = os.path.realpath(root)  # real paths: a dataset reached through a link is still itself
    inside = top.rstrip(os.sep) + os.sep
    paths = [os.path.realpath(p) for p in findings["path"]]
    away = [p != top and not p.startswith(inside) for p in paths]
    return pd.Series(away, index=findings.index, dtype=bool) & (findings["issue"] != OVERLAP)


def fold_groups(findings: pd.DataFrame) -> dict[str, str]:
    """person -> the person it must share a fold with (the smallest id of its set), for every
    person whose photos are copies of another person's (duplicate persons, and exact or near
    duplicates across persons). Persons not listed are their own group."""
    from core.health.findings import _Union

    union = _Union()
    linked = findings[findings["issue"].isin(LINKING) & (findings["group"] != "") & (findings["person"] != "")]
    for _, members in linked.groupby(["issue", "group"])["person"]:
        members = sorted(set(members))
        for other in members[1:]:
            union.union(members[0], other)
    return {person: min(s) for s in union.sets() for person in s}


def health_fold_groups(path: str | Path | None) -> dict[str, str] | None:
    """:func:`fold_groups` of the health.csv at ``path``; None without one."""
    if not path:
        return None
    return fold_groups(read_health_csv(path))


def leave_out_rows(result: HealthResult, issues: list[str] | tuple[str, ...]) -> pd.DataFrame:
    """The photos to leave out of training for the findings of ``issues`` (path,issue):

    * a quality finding: the photo;
    * a duplicate set (exact or near): every member but one (the first by path), so one copy stays;
    * one person under two ids: every person of the group but the first (its whole folder);
    * an eval photo that is also in training: the training photos it duplicates (the eval set is
      not training data; its copy in training is what leaks).
    """
    found = result.findings[result.findings["issue"].isin(issues)]
    rows: list[tuple[str, str]] = []
    for issue, part in found.groupby("issue", sort=False):
        if issue == OVERLAP:
            pairs = result.pairs[result.pairs["issue"] == issue]
            rows += [(a, issue) for a in sorted(set(pairs["a"]))]
        elif issue in LINKING:
            for _, members in part.groupby("group"):
                rows += [(path, issue) for path in sorted(members["path"])[1:]]
        else:
            rows += [(path, issue) for path in part["path"]]
    return pd.DataFrame(rows, columns=list(rb.LEAVE_OUT_CSV.columns)).drop_duplicates("path").reset_index(drop=True)


def write_leave_out(rows: pd.DataFrame, out: str | Path) -> Path:
    """Write the leave-out file (:data:`core.rulebook.LEAVE_OUT_CSV`, path,issue): the dataset
    layer leaves its photos out of the index (``scan(..., leave_out=...)``, ``train --leave-out``);
    nothing is deleted."""
    return write_csv(rows[list(rb.LEAVE_OUT_CSV.columns)], out, "leave-out CSV")


def is_cached(data: str | Path, eval_dir: str | Path | None = None) -> bool:
    """True when the findings for exactly these files are on disk (a call returns at once)."""
    train = _scan(data).df["path"].astype(str).tolist()
    evals = _scan(eval_dir).df["path"].astype(str).tolist() if eval_dir else []
    return _cache_files(_key(train, evals))[0].is_file()
