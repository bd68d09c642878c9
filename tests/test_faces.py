"""Face boxes: detection on drawn faces, the on-disk cache, crop suggestion and heatmap."""

from __future__ import annotations


import numpy as np
import pandas as pd
import pytest

from core import faces
from core.dataset import scan
from core.fileio import locked
from helpers_train import make_train
from threads import at_once


def test_suggested_crop_is_mean_box_grown_by_k_std():
    norm = pd.DataFrame({"x": [0.3, 0.4], "y": [0.2, 0.2], "w": [0.3, 0.3], "h": [0.2, 0.4]})
    # left edges 0.3/0.4 (mean 0.35, std 0.05), top 0.2 (std 0), right 0.6/0.7, bottom 0.4/0.6
    assert faces.suggest_crop(norm, k=0) == (0.35, 0.2, 0.3, 0.3)
    x, y, w, h = faces.suggest_crop(norm, k=2)
    assert (x, y) == (0.25, 0.2) and abs(w - 0.5) < 1e-9 and abs(h - 0.5) < 1e-9
    assert faces.suggest_crop(norm.iloc[:0]) == (0.0, 0.0, 1.0, 1.0)


def test_heatmap_counts_coverage_per_cell():
    norm = pd.DataFrame({"x": [0.0, 0.5], "y": [0.0, 0.0], "w": [0.5, 0.5], "h": [0.5, 1.0]})
    heat = faces.coverage_heatmap(norm, grid=(4, 4))
    assert heat.shape == (4, 4)
    assert heat[0, 0] == 0.5 and heat[3, 3] == 0.5 and heat[3, 0] == 0.0
    assert heat.max() <= 1.0


def test_detection_rates_per_mask_state():
    index = pd.DataFrame({"path": ["a", "b", "c", "d"], "mask_name": ["Wear", "Wear", "Not wear", "Not wear"]})
    table = pd.DataFrame({"path": ["a", "b", "c", "d"], "x": [np.nan, 1.0, 2.0, 3.0]})
    rates = faces.detection_rates(table, index).set_index("group")["rate"]
    assert rates["all"] == 0.75 and rates["Wear"] == 0.5 and rates["Not wear"] == 1.0


def test_detects_demo_faces_and_caches_on_disk(demo_root):
    ds = scan(demo_root / "train")
    normal = ds.df[ds.df.stem == "normal"]
    calls = []
    table = faces.cached_faces(normal["path"], progress=lambda d, t: calls.append((d, t)))
    assert list(table.columns) == faces.FACE_COLUMNS
    assert calls[-1] == (len(normal), len(normal))
    assert table["x"].notna().mean() >= 0.9
    found = table.dropna()
    assert (found.w > 20).all() and (found.x + found.w <= 384).all() and (found.y + found.h <= 512).all()
    # second call: read from the cache, no detection at all
    def boom(*_a, **_k):
        raise AssertionError("detection ran again")
    original = faces.detect_faces
    faces.detect_faces = boom
    try:
        again = faces.cached_faces(normal["path"])
    finally:
        faces.detect_faces = original
    pd.testing.assert_frame_equal(again, table, check_dtype=False)


# ----------------------------------------------------------------------------- many sessions

@pytest.fixture(scope="module")
def small_paths(tmp_path_factory) -> list[str]:
    return list(scan(make_train(tmp_path_factory.mktemp("train"), people=12)).df["path"])  # 84 images


@pytest.fixture
def own_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("MASKLAB_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


def test_sessions_asking_for_one_face_table_at_once_scan_once(small_paths, own_cache, monkeypatch):
    scans, real = [], faces.detect_faces
    monkeypatch.setattr(faces, "detect_faces", lambda *a, **k: scans.append(1) or real(*a, **k))
    tables, errors = at_once(lambda: faces.cached_faces(small_paths, workers=1))
    assert errors == [] and len(scans) == 1
    for other in tables[1:]:
        pd.testing.assert_frame_equal(other, tables[0], check_dtype=False)
    assert [p.name for p in (own_cache / "faces").iterdir() if ".tmp" in p.name] == []


def test_a_scan_stopped_mid_way_writes_nothing_and_the_next_one_finishes(small_paths, own_cache):
    def progress(done: int, total: int) -> None:
        raise KeyboardInterrupt  # the session went away

    with pytest.raises(KeyboardInterrupt):
        faces.cached_faces(small_paths, progress=progress, workers=1)
    assert not faces.is_cached(small_paths)
    assert [p.name for p in (own_cache / "faces").iterdir() if not p.name.endswith(".lock")] == []
    with locked(faces._cache_file(small_paths), blocking=False) as free:
        assert free
    assert len(faces.cached_faces(small_paths, workers=1)) == len(small_paths)
    assert faces.is_cached(small_paths)
