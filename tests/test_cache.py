"""The image cache shared by many sessions and processes: one build, no leftovers, a size cap."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections import namedtuple
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from core import cache as cache_mod
from core import cores
from core.cache import build_cache, cache_key, cache_usage, clear_cache
from core.dataset import scan
from core.errors import UserError
from core.fileio import locked, temporary_path
from core.recipe import Recipe
from tests.helpers import make_train
from threads import at_once, held_elsewhere

ROOT = Path(__file__).resolve().parents[1]
SMALL = Recipe().replace(input_size=(16, 16))  # 768 bytes an image


@pytest.fixture(scope="module")
def df(tmp_path_factory) -> pd.DataFrame:
    return scan(make_train(tmp_path_factory.mktemp("train"), people=12)).df  # 84 images


@pytest.fixture(autouse=True)
def own_cache(tmp_path, monkeypatch) -> Path:
    """A fresh cache folder per test, so sizes and leftovers are this test's own."""
    monkeypatch.setenv("MASKLAB_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("MASKLAB_CACHE_MAX", raising=False)
    return tmp_path / "cache"


def _temporaries(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.rglob("*") if ".tmp" in p.name)


def _counting(monkeypatch) -> list:
    calls, real = [], cache_mod.preprocess_path
    monkeypatch.setattr(cache_mod, "preprocess_path", lambda *a: calls.append(1) or real(*a))
    return calls


# ----------------------------------------------------------------------------- concurrency

def test_threads_building_the_same_cache_at_once_build_it_once(df, own_cache, monkeypatch):
    calls = _counting(monkeypatch)
    results, errors = at_once(lambda: np.array(build_cache(df, SMALL)))
    assert errors == []
    assert len(calls) == len(df)  # the other two waited and mapped the first one's file
    assert all(np.array_equal(results[0], r) for r in results[1:]) and results[0].any()
    assert _temporaries(own_cache) == []


def test_processes_building_the_same_cache_at_once_agree(df, own_cache):
    script = ("import sys, numpy as np, pandas as pd\n"
              "from core.cache import build_cache\nfrom core.recipe import Recipe\n"
              "arr = build_cache(pd.DataFrame({'path': sys.argv[1:]}), Recipe().replace(input_size=(16, 16)))\n"
              "print(int(np.asarray(arr, dtype=np.int64).sum()))")
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    procs = [subprocess.Popen([sys.executable, "-c", script, *df["path"]], cwd=ROOT, env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(2)]
    outs = [p.communicate(timeout=120) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outs
    here = int(np.asarray(build_cache(df, SMALL), dtype=np.int64).sum())
    assert {int(o[0]) for o in outs} == {here}
    assert len(list((own_cache / "images").glob("*.npy"))) == 1 and _temporaries(own_cache) == []


@pytest.mark.parametrize("stop", [RuntimeError("page closed"), KeyboardInterrupt()])
def test_a_build_stopped_mid_way_leaves_nothing_and_the_next_one_succeeds(df, own_cache, stop):
    def progress(done: int, total: int) -> None:
        assert done < total  # the first of two chunks
        raise stop

    with pytest.raises(type(stop)):
        build_cache(df, SMALL, progress=progress, workers=1)
    assert _temporaries(own_cache) == [] and not list((own_cache / "images").glob("*.npy"))
    with locked(cache_mod.cache_path(_key(df, SMALL)), blocking=False) as free:
        assert free  # the lock went with the stopped build
    assert build_cache(df, SMALL).shape == (len(df), 16, 16, 3)


def test_leftovers_of_killed_builds_are_swept_by_the_next_build(df, own_cache):
    images = own_cache / "images"
    images.mkdir(parents=True)
    killed = temporary_path(images / "0123456789abcdef01234567.npy")  # another recipe's, its lock free
    legacy = images / "fedcba9876543210fedcba98.4242.tmp.npy"  # named the old way, two hours old
    for p in (killed, legacy):
        p.write_bytes(b"\0" * 1000)
    os.utime(legacy, (time.time() - 7200,) * 2)
    build_cache(df, SMALL)
    assert not killed.exists() and not legacy.exists()


# ----------------------------------------------------------------------------- key

def _key(df, recipe, boxes=None) -> str:
    return cache_key([str(p) for p in df["path"]], recipe, boxes)


def test_key_leaves_out_the_fields_the_crop_mode_ignores(df):
    n = len(df)
    found = np.tile([10.0, 10.0, 20.0, 20.0], (n, 1))
    missing = found.copy()
    missing[0] = np.nan
    none, fixed, face = (SMALL.replace(crop={"mode": m}) for m in ("none", "fixed", "face"))
    moved_box = {"box": [0.1, 0.1, 0.5, 0.5]}
    assert _key(df, none) == _key(df, none.replace(crop={**moved_box, "face_margin": 1.0}))
    assert _key(df, fixed) == _key(df, fixed.replace(crop={"face_margin": 1.0}))
    assert _key(df, fixed) != _key(df, fixed.replace(crop=moved_box))
    assert _key(df, face, found) == _key(df, face.replace(crop=moved_box), found)  # every face found
    assert _key(df, face, missing) != _key(df, face.replace(crop=moved_box), missing)  # box is the fallback
    assert _key(df, face, found) != _key(df, face.replace(crop={"face_margin": 1.0}), found)
    assert _key(df, none) != _key(df, none.replace(enhance={"equalize": "clahe"}))
    assert _key(df, none) != _key(df, none.replace(input_size=(16, 20)))


def test_key_changes_with_the_preprocessing_version(df, monkeypatch):
    before = _key(df, SMALL)
    monkeypatch.setattr(cache_mod, "PREPROCESS_VERSION", cache_mod.PREPROCESS_VERSION + 1)
    assert _key(df, SMALL) != before


# ----------------------------------------------------------------------------- size cap

@pytest.mark.parametrize("text, size", [("123", 123), ("500M", 500 * 10**6), ("20G", 20 * 10**9),
                                        ("1.5gb", 1_500_000_000), ("2GiB", 2 * 1024**3)])
def test_cache_max_accepts_bytes_and_suffixes(monkeypatch, text, size):
    monkeypatch.setenv("MASKLAB_CACHE_MAX", text)
    assert cache_mod.cache_max_bytes() == size


@pytest.mark.parametrize("text", ["lots", "-5G", "0", "20X"])
def test_a_bad_cache_max_names_the_variable_the_value_and_an_example(monkeypatch, text):
    monkeypatch.setenv("MASKLAB_CACHE_MAX", text)
    with pytest.raises(UserError, match=rf"MASKLAB_CACHE_MAX='{text}'.*e\.g\. MASKLAB_CACHE_MAX=20G"):
        cache_mod.cache_max_bytes()


def test_a_cache_too_big_for_the_cap_is_refused_before_any_work():
    # 18,900 x 1024 x 1024 x 3 bytes = 59.45e9; the paths are never opened
    paths = pd.DataFrame({"path": [f"/nowhere/{i}.jpg" for i in range(18900)]})
    with pytest.raises(UserError) as err:
        build_cache(paths, Recipe().replace(input_size=(1024, 1024)))
    assert str(err.value) == ("images: the cache for 18900 images at 1024x1024 needs 59.5 GB, more than "
                              "MASKLAB_CACHE_MAX (20.0 GB); choose a smaller input size or raise MASKLAB_CACHE_MAX")


def test_a_cache_bigger_than_the_free_disk_is_refused(df, monkeypatch):
    Usage = namedtuple("Usage", "total used free")
    monkeypatch.setattr(cache_mod.shutil, "disk_usage", lambda _p: Usage(10**9, 10**9 - 1000, 1000))
    with pytest.raises(UserError, match=r"needs 64\.6 KB but the disk holding .* has only 1\.0 KB free"):
        build_cache(df, SMALL)


def test_least_recently_used_caches_are_evicted_to_stay_under_the_cap(df, own_cache, monkeypatch):
    one = len(df) * 16 * 16 * 3 + 128
    monkeypatch.setenv("MASKLAB_CACHE_MAX", str(int(2.5 * one)))  # room for two
    recipes = [SMALL.replace(enhance={"contrast": c}) for c in (1.1, 1.2, 1.3)]
    files = []
    for age, recipe in zip((300, 200), recipes[:2]):
        build_cache(df, recipe)
        files.append(cache_mod.cache_path(_key(df, recipe)))
        os.utime(files[-1], (time.time() - age,) * 2)
    build_cache(df, recipes[0])  # used again: now the most recent
    build_cache(df, recipes[2])
    assert files[0].is_file() and not files[1].is_file()
    assert cache_usage() == (2, 2 * one)


def test_an_older_cache_makes_room_for_a_new_one(df, monkeypatch):
    one = len(df) * 16 * 16 * 3 + 128
    monkeypatch.setenv("MASKLAB_CACHE_MAX", str(one + 10))
    build_cache(df, SMALL)
    build_cache(df, SMALL.replace(enhance={"color": 0.5}))
    assert cache_usage() == (1, one)
    assert cache_mod.cache_path(_key(df, SMALL.replace(enhance={"color": 0.5}))).is_file()


def test_eviction_never_takes_the_cache_just_written(df, monkeypatch):
    build_cache(df, SMALL)
    build_cache(df, SMALL.replace(enhance={"color": 0.5}))
    new = cache_mod.cache_path(_key(df, SMALL.replace(enhance={"color": 0.5})))
    os.utime(new, (time.time() - 600,) * 2)  # even when it is the oldest
    monkeypatch.setenv("MASKLAB_CACHE_MAX", "10")
    cache_mod.make_room(0, keep=new)
    assert new.is_file() and cache_usage()[0] == 1


def test_clear_cache_frees_everything_but_what_is_being_built(df, own_cache):
    build_cache(df, SMALL)
    build_cache(df, SMALL.replace(input_size=(16, 20)))
    n, total = cache_usage()
    busy = cache_mod.cache_path(_key(df, SMALL))
    with held_elsewhere(busy):
        freed = clear_cache()
    size = busy.stat().st_size
    assert n == 2 and freed == total - size
    assert cache_usage() == (1, size)
    assert clear_cache() == size and cache_usage() == (0, 0)
    assert [p.name for p in (own_cache / "images").iterdir()] == []  # lock files too


def test_health_results_are_counted_capped_and_cleared_with_the_other_caches(tmp_path, own_cache):
    from core.health import check_health
    from tests.helpers import layout_train

    check_health(layout_train(tmp_path / "d"), workers=1)
    held = [p for p in (own_cache / "health").iterdir() if not p.name.startswith(".")]
    total = sum(p.stat().st_size for p in held)
    assert held and cache_usage() == (len({p.name.split(".")[0] for p in held}), total)
    assert clear_cache() == total and cache_usage() == (0, 0) and not any(p.exists() for p in held)


# ----------------------------------------------------------------------------- workers

def test_large_jobs_use_every_usable_core_unless_told(monkeypatch):
    monkeypatch.setattr(cores, "usable_cores", lambda: 16)
    assert cores.pool_size(10_000, None, 256, 64) == 16
    assert cores.pool_size(10_000, 0, 256, 64) == 16  # 0, as --workers 0: every usable core
    assert cores.pool_size(300, None, 256, 64) == 5  # never more processes than tasks
    assert cores.pool_size(100, None, 256, 64) == 1  # small: no pool at all
    assert cores.pool_size(10_000, 3, 256, 64) == 3  # an explicit count wins


def test_usable_cores_follows_the_affinity_mask(monkeypatch):
    monkeypatch.setattr(cores.os, "sched_getaffinity", lambda _pid: {0, 3, 5}, raising=False)
    assert cores.usable_cores() == 3
    monkeypatch.delattr(cores.os, "sched_getaffinity", raising=False)
    monkeypatch.setattr(cores.os, "cpu_count", lambda: 7)
    assert cores.usable_cores() == 7
