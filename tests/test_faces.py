"""Face boxes: the detectors on the demo's own faces, sources, the person fallback, the on-disk
cache keyed by detector, crop suggestion and heatmap."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from tests.helpers import make_train
from threads import at_once

from core import faces
from core import rulebook as rb
from core.cache import build_cache
from core.dataset import scan
from core.detectors import CHAINS, LANDMARK_COLUMNS, MTCNN_THRESHOLDS
from core.fileio import locked
from core.preprocess import preprocess_path
from core.recipe import Recipe, starter_recipe

BOX = ["x", "y", "w", "h"]


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


def test_detection_rates_count_own_faces_only():
    index = pd.DataFrame({"path": ["a", "b", "c", "d"], "mask_name": ["Wear", "Wear", "Not wear", "Not wear"]})
    table = pd.DataFrame({"path": ["a", "b", "c", "d"], "x": [5.0, 1.0, 2.0, 3.0],
                          "source": ["person", "mtcnn", "haar", "mtcnn"]})
    rates = faces.detection_rates(table, index).set_index("group")["rate"]
    assert rates["all"] == 0.75 and rates["Wear"] == 0.5 and rates["Not wear"] == 1.0
    shares = faces.source_shares(table)
    assert shares["source"].tolist() == ["mtcnn", "haar", "person", "none"]
    assert shares["images"].tolist() == [2, 1, 1, 0]


def test_a_folder_per_class_dataset_gets_a_rate_per_class_so_non_faces_count_false_faces():
    index = pd.DataFrame({"path": ["a", "b", "c", "d"], "mask_name": [""] * 4,
                          "label_name": ["faces", "faces", "nonface", "nonface"]})
    table = pd.DataFrame({"path": ["a", "b", "c", "d"], "x": [1.0, np.nan, 2.0, np.nan],
                          "source": ["mtcnn", "none", "haar", "none"]})
    rates = faces.detection_rates(table, index)
    assert rates.to_dict("records") == [{"group": "all", "images": 4, "rate": 0.5},
                                        {"group": "faces", "images": 2, "rate": 0.5},
                                        {"group": "nonface", "images": 2, "rate": 0.5}]


def test_every_detector_choice_has_a_chain():
    from core.detectors import RUNNERS

    assert set(CHAINS) == set(rb.DETECTOR.values) and rb.DEFAULT_DETECTOR in CHAINS
    assert {name for chain in CHAINS.values() for name in chain} == set(RUNNERS) == set(faces.DETECTED)


# ----------------------------------------------------------------------------- the demo's own faces

@pytest.fixture(scope="module")
def demo(demo_root):
    """The 30-person demo's index and its face tables (MTCNN and Haar scanned, "both" put
    together from them)."""
    ds = scan(demo_root / "train")
    return ds.df, {name: faces.cached_faces(ds.df["path"], name) for name in ("mtcnn", "haar", "both")}


def test_mtcnn_finds_the_unmasked_faces_with_five_landmarks_on_them(demo):
    df, tables = demo
    table = tables["mtcnn"].merge(df[["path", "stem"]], on="path")
    normal = table[table["stem"] == "normal"]
    assert len(normal) == 30
    assert (normal["source"] == "mtcnn").mean() >= 0.9  # measured: 30 of 30
    found = table[table["source"] == "mtcnn"]
    xs, ys = found[LANDMARK_COLUMNS[0::2]], found[LANDMARK_COLUMNS[1::2]]
    assert xs.ge(found["x"] - 1, axis=0).all().all() and xs.le(found["x"] + found["w"] + 1, axis=0).all().all()
    assert ys.ge(found["y"] - 1, axis=0).all().all() and ys.le(found["y"] + found["h"] + 1, axis=0).all().all()
    assert (found["left_eye_x"] < found["right_eye_x"]).all() and (found["nose_y"] < found["mouth_left_y"]).all()
    assert (found["confidence"] >= MTCNN_THRESHOLDS[-1]).all()
    assert (found["x"] + found["w"] <= 384).all() and (found["y"] + found["h"] <= 512).all()


def test_both_finds_more_masked_faces_than_haar(demo):
    df, tables = demo
    rates = faces.rates_by_detector(tables, df).set_index(["detector", "group"])["rate"]
    # measured on this demo: Haar 68.7 %, MTCNN 90.0 %, both 94.0 % of the 150 masked photos
    assert rates["both", "Wear"] >= 0.85 and rates["both", "Wear"] > rates["haar", "Wear"] + 0.1
    assert rates["both", "Not wear"] == 1.0


def test_source_names_the_detector_that_answered(demo):
    _, tables = demo
    m, h, both = (tables[name].set_index("path") for name in ("mtcnn", "haar", "both"))
    h, both = h.reindex(m.index), both.reindex(m.index)
    by_mtcnn = m["source"] == "mtcnn"
    by_haar = ~by_mtcnn & (h["source"] == "haar")
    assert by_haar.any() and (~by_mtcnn & ~by_haar).sum() == (both["source"] == "none").sum()
    assert (both.loc[by_mtcnn, "source"] == "mtcnn").all() and (both.loc[by_haar, "source"] == "haar").all()
    pd.testing.assert_frame_equal(both[by_mtcnn], m[by_mtcnn])
    pd.testing.assert_frame_equal(both[by_haar], h[by_haar])
    haar_rows = both[both["source"] == "haar"]
    assert haar_rows[["confidence", *LANDMARK_COLUMNS]].isna().all().all()  # Haar gives neither
    assert both.loc[both["source"] == "none", BOX].isna().all().all()


def test_haar_and_mtcnn_boxes_share_one_convention(demo):
    """Haar's larger square boxes are shrunk to MTCNN's: on the same face they overlap closely."""
    _, tables = demo
    m, h = tables["mtcnn"].set_index("path"), tables["haar"].set_index("path").reindex(tables["mtcnn"]["path"])
    both = (m["source"] == "mtcnn").to_numpy() & (h["source"] == "haar").to_numpy()
    iou = faces.box_iou(m.loc[both, BOX].to_numpy(float), h.loc[both, BOX].to_numpy(float))
    assert np.median(iou) >= 0.75  # measured: 0.84 on 153 photos


def test_disagreements_list_faces_one_detector_missed(demo):
    _, tables = demo
    differ = faces.disagreements(tables["mtcnn"], tables["haar"], ("MTCNN", "Haar"))
    m, h = (tables[name].set_index("path")["source"] for name in ("mtcnn", "haar"))
    only_mtcnn = set(m.index[(m == "mtcnn") & (h.reindex(m.index) == "none")])
    assert set(differ.loc[differ["kind"] == "only MTCNN", "path"]) == only_mtcnn and len(only_mtcnn) > 10


# ----------------------------------------------------------------------------- the person fallback

def test_person_fallback_fills_a_removed_box_with_the_persons_median_box(demo):
    df, tables = demo
    table = tables["both"].copy()
    person = df.loc[df["stem"] == "mask1", "person"].iloc[0]
    mine = df.loc[df["person"] == person, "path"]
    assert (table.set_index("path").loc[mine, "source"] != "none").all()
    removed = df.loc[(df["person"] == person) & (df["stem"] == "mask1"), "path"].iloc[0]
    at = table["path"] == removed
    table.loc[at, [*BOX, "confidence", *LANDMARK_COLUMNS]] = np.nan
    table.loc[at, "source"] = "none"
    others = table[table["path"].isin(mine) & ~at][BOX].to_numpy()
    filled = faces.with_person_fallback(table, df).set_index("path")
    assert filled.loc[removed, "source"] == "person"
    np.testing.assert_allclose(filled.loc[removed, BOX].to_numpy(float), np.median(others, axis=0))  # one size
    assert np.isnan(filled.loc[removed, "confidence"]) and filled.loc[removed, LANDMARK_COLUMNS].isna().all()
    own = table.set_index("path")
    own = own[own["source"] != "none"]
    pd.testing.assert_frame_equal(filled.loc[own.index], own)  # detected boxes are never replaced


def test_the_face_crop_of_a_photo_without_its_own_face_uses_its_persons_box(demo):
    df, tables = demo
    person = df.loc[df["person"] == df["person"].iloc[0]]
    table = tables["both"][tables["both"]["path"].isin(person["path"])].copy()
    removed = person.loc[person["stem"] == "mask2", "path"].iloc[0]
    table.loc[table["path"] == removed, [*BOX, "source"]] = [np.nan] * 4 + ["none"]
    recipe = starter_recipe("train").replace(crop={"mode": "face"})
    images = build_cache(person, recipe, faces=table, workers=1)
    borrowed = tuple(table.loc[table["path"] != removed, BOX].median())
    row = person["path"].tolist().index(removed)
    assert np.array_equal(images[row], preprocess_path(removed, recipe, borrowed))
    assert not np.array_equal(images[row], preprocess_path(removed, recipe, None))  # not the fixed box


def test_the_fallback_is_the_median_of_detected_photos_only():
    index = pd.DataFrame({"path": list("abcdefg"), "person": ["p"] * 5 + ["q"] * 2, "gender": [0] * 7,
                          "width": [384] * 7, "height": [512] * 7})
    nothing = [np.nan] * 4
    table = pd.DataFrame([("a", 10.0, 1.0, 5.0, 7.0, "mtcnn"), ("b", 12.0, 2.0, 5.0, 7.0, "haar"),
                          ("c", 100.0, 3.0, 5.0, 7.0, "mtcnn"), ("d", *nothing, "none"),
                          ("e", 50.0, 4.0, 9.0, 9.0, "person"), ("f", *nothing, "none"), ("g", *nothing, "none")],
                         columns=["path", *BOX, "source"])
    filled = faces.with_person_fallback(table, index).set_index("path")
    # d: median of a, b, c (e is itself a borrowed box, not a detection): x 12, y 2, w 5, h 7
    assert filled.loc["d", BOX].tolist() == [12.0, 2.0, 5.0, 7.0] and filled.loc["d", "source"] == "person"
    assert (filled.loc[["f", "g"], "source"] == "none").all()  # q has no detected photo
    pd.testing.assert_frame_equal(faces.with_person_fallback(filled.reset_index(), index).set_index("path"), filled)


def test_a_resized_photo_borrows_its_persons_box_scaled_to_its_own_size():
    """The median is taken over boxes as fractions of each photo's own width and height, then
    scaled to the photo that borrows it: a photo saved at a quarter of the size (96x128) gets
    the same place on the face, not the full-size box's pixels (which would crop a corner)."""
    index = pd.DataFrame({"path": list("abcde"), "person": ["p"] * 5, "gender": [0] * 5,
                          "width": [384, 384, 768, 96, 384], "height": [512, 512, 1024, 128, 512]})
    nothing = [np.nan] * 4
    table = pd.DataFrame([("a", 140.0, 180.0, 110.0, 150.0, "mtcnn"), ("b", 144.0, 184.0, 112.0, 152.0, "mtcnn"),
                          ("c", 276.0, 356.0, 216.0, 296.0, "haar"),  # the same place on a photo twice the size
                          ("d", *nothing, "none"), ("e", *nothing, "none")], columns=["path", *BOX, "source"])
    filled = faces.with_person_fallback(table, index).set_index("path")
    # fractions x 0.3646/0.3750/0.3594, y 0.3516/0.3594/0.3477, w 0.2865/0.2917/0.2813, h 0.2930/0.2969/0.2891:
    # medians 140/384, 180/512, 110/384, 150/512
    np.testing.assert_allclose(filled.loc["e", BOX].to_numpy(float), [140.0, 180.0, 110.0, 150.0])
    np.testing.assert_allclose(filled.loc["d", BOX].to_numpy(float), [35.0, 45.0, 27.5, 37.5])
    assert filled.loc[["d", "e"], "source"].tolist() == ["person", "person"]
    # and the face crop of the small photo sits on its face, not in a corner
    from core.preprocess import crop_box

    recipe = starter_recipe("train").replace(crop={"mode": "face"})
    width, height = recipe.input_size
    x0, y0, x1, y1 = crop_box(recipe.crop, (96, 128), tuple(filled.loc["d", BOX]), width / height)
    assert x0 <= 35 and y0 <= 45 and x1 >= 35 + 27.5 and y1 >= 45 + 37.5


def _own_faces_table(paths: list[str], found: set[str]) -> pd.DataFrame:
    rows = [(p, 1.0, 2.0, 30.0, 40.0, "haar") if p in found else (p, *[np.nan] * 4, "none") for p in paths]
    return pd.DataFrame(rows, columns=["path", *BOX, "source"])


def test_a_dataset_without_persons_never_falls_back(tmp_path, demo_root):
    """One folder per class (even two files with one name in one class) and an eval set: no
    photo borrows another's box."""
    photos = min((demo_root / "train" / "images").iterdir())
    for cls in ("masked", "bare"):
        (tmp_path / "folders" / cls).mkdir(parents=True)
        for f in sorted(photos.iterdir())[:3]:
            shutil.copy(f, tmp_path / "folders" / cls / f.name)
    shutil.copy(photos / "normal.jpg", tmp_path / "folders" / "bare" / "mask1.png")  # same stem as mask1.jpg
    for root in (tmp_path / "folders", demo_root / "eval"):
        ds = scan(root)
        assert ds.layout in ("folders", "eval")
        paths = ds.df["path"].tolist()
        table = _own_faces_table(paths, set(paths[::2]))
        assert faces.with_person_fallback(table, ds.df)["source"].tolist() == table["source"].tolist()


def test_face_table_keeps_a_corrupt_image_as_a_row_with_source_none(tmp_path, demo_root):
    good = min((demo_root / "train" / "images").iterdir()) / "normal.jpg"
    bad = tmp_path / "bad.jpg"
    bad.write_bytes(good.read_bytes()[:300])  # a truncated JPEG
    junk = tmp_path / "junk.png"
    junk.write_bytes(b"not a picture")
    table = faces.detect_faces([str(good), str(bad), str(junk)], "both", workers=1)
    assert table["source"].tolist() == ["mtcnn", "none", "none"]
    assert table.loc[1:, [*BOX, "confidence"]].isna().all().all()


# ----------------------------------------------------------------------------- the on-disk cache

@pytest.fixture(scope="module")
def small_paths(tmp_path_factory) -> list[str]:
    return list(scan(make_train(tmp_path_factory.mktemp("train"), people=12)).df["path"])  # 84 images


@pytest.fixture
def own_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("MASKLAB_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


def _no_detection(*_a, **_k):
    raise AssertionError("detection ran again")


def test_the_cache_is_keyed_by_detector(demo_root, own_cache, monkeypatch):
    paths = [str(p) for p in sorted((demo_root / "train" / "images").glob("00000[1-3]*/*"))]  # 21 photos
    calls = []
    tables = {name: faces.cached_faces(paths, name, progress=lambda d, t: calls.append((d, t)), workers=1)
              for name in ("haar", "mtcnn")}
    assert calls[-1] == (21, 21)
    files = sorted(p.name for p in (own_cache / "faces").glob("*.csv"))
    assert [f.split("-", 1)[1] for f in files] == ["haar-v4.csv", "mtcnn-v4.csv"]
    monkeypatch.setattr(faces, "detect_faces", _no_detection)
    for name, table in tables.items():  # read back from disk, not detected again
        pd.testing.assert_frame_equal(faces.cached_faces(paths, name), table)
        assert faces.is_cached(paths, name)
    both = faces.cached_faces(paths, "both")  # put together from the two cached tables
    assert len(list((own_cache / "faces").glob("*.csv"))) == 3
    monkeypatch.undo()
    pd.testing.assert_frame_equal(both, faces.detect_faces(paths, "both", workers=1))


def test_sessions_asking_for_one_face_table_at_once_scan_once(small_paths, own_cache, monkeypatch):
    scans, real = [], faces.detect_faces
    monkeypatch.setattr(faces, "detect_faces", lambda *a, **k: scans.append(1) or real(*a, **k))
    tables, errors = at_once(lambda: faces.cached_faces(small_paths, "haar", workers=1))
    assert errors == [] and len(scans) == 1
    for other in tables[1:]:
        pd.testing.assert_frame_equal(other, tables[0], check_dtype=False)
    assert [p.name for p in (own_cache / "faces").iterdir() if ".tmp" in p.name] == []


def test_a_scan_stopped_mid_way_writes_nothing_and_the_next_one_finishes(small_paths, own_cache):
    def progress(done: int, total: int) -> None:
        raise KeyboardInterrupt  # the session went away

    with pytest.raises(KeyboardInterrupt):
        faces.cached_faces(small_paths, "haar", progress=progress, workers=1)
    assert not faces.is_cached(small_paths, "haar")
    assert [p.name for p in (own_cache / "faces").iterdir() if not p.name.endswith(".lock")] == []
    with locked(faces._cache_file(small_paths, "haar"), blocking=False) as free:
        assert free
    assert len(faces.cached_faces(small_paths, "haar", workers=1)) == len(small_paths)
    assert faces.is_cached(small_paths, "haar")


def test_the_face_crop_benchmark_recipes_differ_from_their_bases_in_the_crop_only():
    """The quality comparisons measure the crop alone: bench/recipes/face_crop.json is the earlier
    starter (starter_before.json) with the face crop, and the starter recipe is the sweep's best
    (sweep_best.json) with the same face crop."""
    recipes = Path(__file__).resolve().parents[1] / "bench" / "recipes"
    face = {"mode": "face", "face_margin": 0.75}
    assert Recipe.load(recipes / "face_crop.json") == Recipe.load(recipes / "starter_before.json").replace(crop=face)
    assert starter_recipe("train") == Recipe.load(recipes / "sweep_best.json").replace(crop=face)


@pytest.mark.parametrize("size", [(1, 1), (3, 3), (300, 2), (2, 300)])
def test_a_png_smaller_than_the_reduced_decode_gets_no_face_not_an_error(tmp_path, size):
    """OpenCV's quarter-size decode of a PNG under 4 pixels on a side raises cv2.error; each
    detector chain answers "none" for it, as for any file it cannot decode, and the image
    statistics fall back to PIL."""
    from PIL import Image

    from core.detectors import detect_one
    from core.stats import image_properties

    path = tmp_path / "tiny.png"
    Image.new("RGB", size, (200, 120, 40)).save(path)
    for chain in CHAINS:
        row = detect_one(str(path), chain)
        assert row[4] == "none" and all(np.isnan(row[:4])), chain
    props = image_properties(path)
    assert props["brightness"] == pytest.approx(0.299 * 200 + 0.587 * 120 + 0.114 * 40, abs=1.0)
    assert props["contrast"] == pytest.approx(0.0, abs=1e-6)
