"""Person-level splits: nobody on both sides, classes spread, reproducible."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from core.errors import UserError
from core.splits import person_folds, person_split


def fake_index(people: int = 60, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    rows = []
    for p in range(people):
        base = int(rng.integers(0, 6))
        for stem, mask in [("mask1", 0)] * 5 + [("incorrect_mask", 1), ("normal", 2)]:
            rows.append({"person": f"{p:06d}", "path": f"{p}/{stem}", "label": mask * 6 + base})
    return pd.DataFrame(rows)


def test_no_person_in_both_sides_and_about_the_ratio():
    df = fake_index()
    tr, va = person_split(df, val_ratio=0.2, seed=1)
    assert set(df.person.iloc[tr]).isdisjoint(df.person.iloc[va])
    assert len(tr) + len(va) == len(df)
    assert 0.12 <= len(va) / len(df) <= 0.28
    # stratified: every mask state is present in validation
    assert set(df.label.iloc[va] // 6) == {0, 1, 2}


def test_folds_cover_everyone_once_and_are_seeded():
    df = fake_index()
    folds = person_folds(df, k=5, seed=3)
    val = np.concatenate([va for _, va in folds])
    assert sorted(val) == list(range(len(df)))
    for tr, va in folds:
        assert set(df.person.iloc[tr]).isdisjoint(df.person.iloc[va])
    again = person_folds(df, k=5, seed=3)
    assert all((a[1] == b[1]).all() for a, b in zip(folds, again))
    other = person_folds(df, k=5, seed=4)
    assert any((a[1].shape != b[1].shape) or (a[1] != b[1]).any() for a, b in zip(folds, other))


def test_images_without_person_are_their_own_group():
    df = pd.DataFrame({"person": [""] * 10, "path": [f"c/{i}.png" for i in range(10)], "label": [0, 1] * 5})
    tr, va = person_split(df, 0.5, seed=0)
    assert len(va) == 5 and set(tr).isdisjoint(va)


def test_bad_split_settings():
    df = fake_index(people=3)
    with pytest.raises(UserError, match="folds=5 needs at least 5 persons, but the dataset has 3"):
        person_folds(df, 5)
    with pytest.raises(UserError, match="val-ratio must be between 0 and 1"):
        person_split(df, 1.5)


# ----------------------------------------------------------------------------- health groups

TIED = ({"000003", "000017", "000040"}, {"000008", "000051"})  # persons whose photos are copies of each other


def together() -> dict[str, str]:
    return {p: min(group) for group in TIED for p in group}


def test_persons_tied_by_a_health_check_share_a_fold():
    df = fake_index()
    splits = [s for k, seed in ((2, 0), (3, 1), (5, 7)) for s in person_folds(df, k, seed, together())]
    splits.append(person_split(df, 0.2, 4, together()))
    for tr, va in splits:
        for group in TIED:
            assert not (group & set(df.person.iloc[tr]) and group & set(df.person.iloc[va]))
    val = np.concatenate([va for _, va in person_folds(df, 5, 7, together())])
    assert sorted(val) == list(range(len(df)))


def test_without_health_groups_the_split_is_unchanged():
    df = fake_index()
    plain = person_folds(df, 5, 3)
    for nothing in (None, {}):
        again = person_folds(df, 5, 3, nothing)
        assert all(np.array_equal(a, c) and np.array_equal(b, d) for (a, b), (c, d) in zip(plain, again))
        assert all(np.array_equal(x, y) for x, y in zip(person_split(df, 0.2, 1), person_split(df, 0.2, 1, nothing)))


def test_too_few_groups_for_a_split_say_so():
    df = fake_index(people=3)
    everyone = {p: "000000" for p in df["person"]}
    with pytest.raises(UserError) as err:
        person_split(df, 0.2, 0, everyone)
    assert str(err.value) == ("a validation split needs at least 2 persons, but the dataset has 1 once the persons "
                              "the health check ties together (copies of each other) count as one; check the health "
                              "file or leave it out")
    with pytest.raises(UserError) as err:
        person_split(df[df["person"] == "000001"], 0.2, 0)
    assert str(err.value) == ("a validation split needs at least 2 persons, but the dataset has 1; use a dataset "
                              "with more persons")
    with pytest.raises(UserError) as err:
        person_folds(df, 3, 0, {"000002": "000001"})
    assert str(err.value) == ("folds=3 needs at least 3 persons, but the dataset has 2 once the persons the health "
                              "check ties together (copies of each other) count as one; use fewer folds")
