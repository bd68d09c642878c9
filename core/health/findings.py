"""From measurements to findings: duplicates sorted into what they mean, then photo quality.

* exact and near duplicates inside one person's photos: only a copy counts (equal pixels, or an
  aligned match of COPY_MATCH); two mask photos of one sitting are near duplicates by nature;
* two persons sharing at least two photos each are one person twice: ``duplicate_person``, one
  row per person (its folder), one group; their shared photos are not listed again;
* any other duplicate across persons: ``exact_duplicate`` / ``near_duplicate`` per photo;
* an eval photo duplicating a training photo: ``train_eval_overlap`` (the eval photo's row names
  the training person);
* quality (core.health.quality); a photo copied from another person is judged by cleanvision's
  bounds only (its siblings are not its own), and a copy's odd size or shape is not listed apart
  from its duplicate finding.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd

from core import rulebook as rb
from core.health import duplicates as dup
from core.health.quality import quality_findings

COLUMNS = ["issue", "path", "person", "score", "group"]
PAIR_COLUMNS = ["issue", "group", "a", "b", "score"]
ORDER = rb.HEALTH_ISSUE.values  # the order findings are listed in (duplicates first)
MIN_SHARED = 2  # photos each of two persons must share to be called one person twice


class _Union:
    """Union-find over hashable items."""

    def __init__(self):
        self.parent: dict = {}

    def find(self, x):
        self.parent.setdefault(x, x)
        while self.parent[x] != x:
            self.parent[x] = self.parent[self.parent[x]]
            x = self.parent[x]
        return x

    def union(self, a, b) -> None:
        ra, rb = self.find(a), self.find(b)
        if ra != rb:
            self.parent[max(ra, rb)] = min(ra, rb)

    def sets(self) -> list[list]:
        out: dict = {}
        for x in list(self.parent):
            out.setdefault(self.find(x), []).append(x)
        return sorted(sorted(s) for s in out.values() if len(s) > 1)


def matched_pairs(paths: list[str], md5: pd.Series, phash: pd.Series, desc: np.ndarray, person_key: np.ndarray,
                  is_eval: np.ndarray, progress: Callable[[int, int], None] | None = None,
                  workers: int | None = None) -> pd.DataFrame:
    """Every duplicate pair (i < j): ``exact`` (equal pixels) or verified near, with its ``score``."""
    exact = [(a, b) for s in dup.exact_sets(md5, paths) for k, a in enumerate(s) for b in s[k + 1:]]
    exact_df = pd.DataFrame(np.array(exact, dtype=int).reshape(-1, 2), columns=["i", "j"]).assign(score=1.0,
                                                                                                 exact=True)
    exact_df = exact_df[~(is_eval[exact_df.i.to_numpy()] & is_eval[exact_df.j.to_numpy()])]
    cand = dup.candidate_pairs(desc, person_key, is_eval, phash)
    cand = cand[~cand.set_index(["i", "j"]).index.isin(exact_df.set_index(["i", "j"]).index)]
    cand["score"] = dup.verify(paths, cand, progress, workers) if len(cand) else []
    same = (person_key[cand.i.to_numpy()] == person_key[cand.j.to_numpy()]) & (person_key[cand.i.to_numpy()] != "")
    cand = cand[cand.score >= np.where(same, dup.COPY_MATCH, dup.NEAR_MATCH)]
    both = pd.concat([exact_df, cand.assign(exact=False)[["i", "j", "score", "exact"]]], ignore_index=True)
    owner = np.asarray(person_key, dtype=object).copy()
    owner[is_eval] = [f"eval:{k}" for k in np.flatnonzero(is_eval)]  # each eval photo stands for itself
    return _mutual_best(both, owner).reset_index(drop=True)


def _mutual_best(pairs: pd.DataFrame, person_key: np.ndarray) -> pd.DataFrame:
    """Across persons, a photo's copy is its best match among the other person's photos, and the
    other way round: a copy of one mask photo also matches its original's siblings (the same
    sitting), more weakly, and those are not copies."""
    if pairs.empty:
        return pairs
    pi, pj = person_key[pairs.i.to_numpy()], person_key[pairs.j.to_numpy()]
    keep = np.ones(len(pairs), bool)
    if "exact" in pairs:
        keep_exact = pairs["exact"].to_numpy(bool)
    else:
        keep_exact = np.zeros(len(pairs), bool)
    for side, other in ((pairs.i.to_numpy(), pj), (pairs.j.to_numpy(), pi)):
        frame = pd.DataFrame({"photo": side, "other": other, "score": pairs.score.to_numpy()})
        best = frame.groupby(["photo", "other"])["score"].transform("max").to_numpy()
        keep &= (frame["score"].to_numpy() >= best) | (pi == pj)
    return pairs[keep | keep_exact]


def build(paths: list[str], person: np.ndarray, is_eval: np.ndarray, has_persons: bool, table: pd.DataFrame,
          desc: np.ndarray, progress: Callable[[int, int], None] | None = None,
          workers: int | None = None) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(findings, pairs) for the images ``paths`` (train first, then eval) with their measurement
    ``table`` and descriptors; ``person`` is each training image's person ('' for eval)."""
    person_key = person if has_persons else np.array([""] * len(paths), dtype=object)
    pairs = matched_pairs(paths, table["md5"].fillna("").astype(str), table["phash"].fillna("").astype(str), desc,
                          person_key, is_eval, progress, workers)
    rows: list[tuple] = []
    pair_rows: list[tuple] = []
    te = is_eval[pairs.i.to_numpy()] | is_eval[pairs.j.to_numpy()]
    _overlaps(pairs[te], paths, person, is_eval, rows, pair_rows)
    train_pairs = pairs[~te]
    twins = _duplicate_persons(train_pairs, paths, person, has_persons, rows, pair_rows) if has_persons else {}
    in_twins = np.array([twins.get(person[i]) is not None and twins.get(person[i]) == twins.get(person[j])
                         for i, j in zip(train_pairs.i, train_pairs.j)], dtype=bool)
    rest = train_pairs[~in_twins]
    listed = _photo_duplicates(rest, paths, person, person_key, rows, pair_rows)
    train_rows = np.flatnonzero(~is_eval)
    foreign = np.zeros(len(paths), bool)
    cross = rest[person_key[rest.i.to_numpy()] != person_key[rest.j.to_numpy()]]
    foreign[cross.i.to_numpy()] = foreign[cross.j.to_numpy()] = True
    quality = quality_findings(table.iloc[train_rows].reset_index(drop=True),
                               person[train_rows] if has_persons else None, foreign[train_rows])
    in_dup = listed | np.isin(person, list(twins)) & has_persons
    for q in quality.itertuples():
        i = train_rows[q.row]
        if q.issue in ("odd_size", "odd_aspect_ratio") and in_dup[i]:
            continue  # a resized or cropped copy: its duplicate finding says why
        rows.append((q.issue, paths[i], person[i], q.score, ""))
    findings = pd.DataFrame(rows, columns=COLUMNS)
    findings["score"] = findings["score"].astype(float).round(4)
    findings["_order"] = findings["issue"].map({k: n for n, k in enumerate(ORDER)})
    findings = findings.sort_values(["_order", "group", "score", "path"], ascending=[True, True, False, True])
    return findings.drop(columns="_order").reset_index(drop=True), pd.DataFrame(pair_rows, columns=PAIR_COLUMNS)


def _overlaps(pairs: pd.DataFrame, paths, person, is_eval, rows, pair_rows) -> None:
    """An eval photo that duplicates training photos: one row, naming its best match's person;
    eval photos duplicating the same training photos share a group."""
    union = _Union()
    best: dict[int, tuple[float, int]] = {}
    for p in pairs.itertuples():
        e, t = (p.i, p.j) if is_eval[p.i] else (p.j, p.i)
        union.union(("e", e), ("t", t))
        if e not in best or p.score > best[e][0]:
            best[e] = (p.score, t)
    groups = {}
    for n, members in enumerate(union.sets(), start=1):
        for m in members:
            groups[m] = f"overlap-{n}"
    for e, (score, t) in sorted(best.items()):
        group = groups[("e", e)]
        rows.append(("train_eval_overlap", paths[e], person[t], score, group))
        pair_rows.append(("train_eval_overlap", group, paths[t], paths[e], score))


def _duplicate_persons(pairs: pd.DataFrame, paths, person, has_persons, rows, pair_rows) -> dict[str, str]:
    """Persons sharing MIN_SHARED photos each: one row per person, one group per set of persons;
    returns person -> group."""
    shared: dict[tuple, tuple[set, set, list]] = {}
    for p in pairs.itertuples():
        a, b = person[p.i], person[p.j]
        if a == b:
            continue
        key = (min(a, b), max(a, b))
        first, second = (p.i, p.j) if a == key[0] else (p.j, p.i)
        entry = shared.setdefault(key, (set(), set(), []))
        entry[0].add(first)
        entry[1].add(second)
        entry[2].append((first, second, p.score))
    union = _Union()
    links = {k: v for k, v in shared.items() if min(len(v[0]), len(v[1])) >= MIN_SHARED}
    for a, b in links:
        union.union(a, b)
    out: dict[str, str] = {}
    for n, members in enumerate(union.sets(), start=1):
        group = f"person-{n}"
        scores = [s for (a, b), v in links.items() if a in members for *_, s in v[2]]
        for m in members:
            out[m] = group
            folder = next(str(Path(paths[i]).parent) for i in range(len(paths)) if person[i] == m)
            rows.append(("duplicate_person", folder, m, float(np.mean(scores)), group))
        for (a, b), v in links.items():
            if a in members:
                pair_rows.extend(("duplicate_person", group, paths[x], paths[y], s) for x, y, s in v[2])
    return out


def _photo_duplicates(pairs: pd.DataFrame, paths, person, person_key, rows, pair_rows) -> np.ndarray:
    """Exact and near duplicate sets of photos; returns which images are listed in one."""
    listed = np.zeros(len(paths), bool)
    for issue, chosen, prefix in (("exact_duplicate", pairs[pairs.exact], "exact"),
                                  ("near_duplicate", pairs[~pairs.exact], "near")):
        union = _Union()
        score: dict[int, float] = {}
        for p in chosen.itertuples():
            union.union(p.i, p.j)
            for x in (p.i, p.j):
                score[x] = max(score.get(x, 0.0), p.score)
        for n, members in enumerate(union.sets(), start=1):
            group = f"{prefix}-{n}"
            for m in members:
                rows.append((issue, paths[m], person[m], score[m], group))
                listed[m] = True
            member = set(members)
            pair_rows.extend((issue, group, paths[p.i], paths[p.j], p.score) for p in chosen.itertuples()
                             if p.i in member)
    return listed
