"""core.stats: the numbers behind the explorer's pages."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from core import labels, stats
from explorer import imaging


def _df(label_counts: dict[int, int], size=(384, 512)) -> pd.DataFrame:
    rows = []
    for label, n in label_counts.items():
        for i in range(n):
            rows.append({"path": f"/d/{label}/{i}.jpg", "rel": f"{label}/{i}.jpg", "person": f"p{label}_{i // 7}",
                         "label": label, "label_name": labels.CLASS_NAMES[label] if label >= 0 else "",
                         "width": size[0], "height": size[1], "corrected": False, "correction": ""})
    return pd.DataFrame(rows)


def test_class_counts_lists_every_class_and_flags_minorities():
    df = _df({0: 100, 1: 60, 2: 3})  # mean over 18 classes = 163 / 18 = 9.06, threshold 4.53
    counts = stats.class_counts(df, list(labels.CLASS_NAMES))
    assert len(counts) == 18
    assert counts.loc[0, "count"] == 100 and counts.loc[2, "count"] == 3 and counts.loc[17, "count"] == 0
    assert counts.loc[0, "name"] == "Wear · Male · <30"
    assert counts["count"].sum() == 163
    assert bool(counts.loc[2, "minority"]) and bool(counts.loc[17, "minority"])
    assert not bool(counts.loc[0, "minority"])
    assert counts["share"].sum() == pytest.approx(1.0)


def test_minority_is_under_half_the_mean():
    df = _df({0: 10, 1: 10, 2: 4})  # three classes, mean 8, threshold 4
    counts = stats.class_counts(df, ["a", "b", "c"])
    assert list(counts["minority"]) == [False, False, False]
    df = _df({0: 10, 1: 10, 2: 3})  # mean 7.67, threshold 3.83
    assert list(stats.class_counts(df, ["a", "b", "c"])["minority"]) == [False, False, True]


def test_imbalance_ratio_ignores_empty_classes_but_lists_them():
    counts = stats.class_counts(_df({0: 90, 1: 30, 2: 3}), ["a", "b", "c", "d"])
    imb = stats.imbalance(counts)
    assert imb["ratio"] == pytest.approx(30.0)
    assert imb["largest"] == ("a", 90) and imb["smallest"] == ("c", 3)
    assert imb["empty"] == ["d"]
    assert "c" in imb["minority"] and "d" not in imb["minority"]


def test_imbalance_of_an_unlabelled_set_is_nan():
    df = _df({0: 3})
    df["label"] = -1
    imb = stats.imbalance(stats.class_counts(df, ["a"]))
    assert math.isnan(imb["ratio"]) and imb["empty"] == ["a"]


def test_sample_per_class_is_seeded_and_capped():
    df = _df({0: 10, 5: 2, 9: 7})
    a = stats.sample_per_class(df, 3, seed=1)
    b = stats.sample_per_class(df, 3, seed=1)
    assert list(a["path"]) == list(b["path"])
    assert a.groupby("label").size().to_dict() == {0: 3, 5: 2, 9: 3}
    assert list(a["label"]) == sorted(a["label"])
    assert list(stats.sample_per_class(df, 3, seed=2)["path"]) != list(a["path"])


def test_sample_per_class_without_labels_samples_all_rows():
    df = _df({0: 20})
    df["label"] = -1
    assert len(stats.sample_per_class(df, 2, seed=0)) == 12


def test_size_table_counts_sizes_and_aspects():
    df = pd.concat([_df({0: 3}), _df({1: 1}, size=(500, 500))], ignore_index=True)
    t = stats.size_table(df)
    assert t.iloc[0].to_dict() == {"width": 384, "height": 512, "aspect": 0.75, "images": 3}
    assert t.iloc[1]["aspect"] == 1.0


def test_corrected_rows_lists_only_changed_rows():
    df = _df({0: 3})
    df.loc[1, ["corrected", "correction"]] = [True, "gender=male"]
    out = stats.corrected_rows(df)
    assert list(out["rel"]) == ["0/1.jpg"] and out.loc[0, "correction"] == "gender=male"


def test_upscale_nearest_keeps_every_pixel_value():
    img = np.random.default_rng(0).integers(0, 256, (8, 6, 3), dtype=np.uint8)
    big = imaging.upscale_nearest(img, 3)
    assert big.shape == (24, 18, 3)
    assert np.array_equal(big[::3, ::3], img) and np.array_equal(big[2::3, 2::3], img)
    assert imaging.upscale_nearest(img, 1) is img
    assert imaging.display_scale((128, 96, 3), 384) == 3
    assert imaging.display_scale((512, 384, 3), 384) == 1


def test_box_helpers():
    assert imaging.box_to_pixels((0.25, 0.1, 0.5, 0.5), (400, 200)) == (100, 20, 300, 120)
    img = np.zeros((50, 40, 3), np.uint8)
    out = imaging.draw_box(img, (5, 5, 20, 30), (255, 0, 0), 1)
    assert img.sum() == 0 and out[5, 10, 0] == 255 and out[15, 12].sum() == 0
    assert imaging.resize_to_height(img, 25).shape == (25, 20, 3)


def test_interpolate_is_the_smote_formula():
    a = np.full((2, 2, 3), 10, np.uint8)
    b = np.full((2, 2, 3), 110, np.uint8)
    assert (stats.interpolate(a, b, 0.0) == a).all()
    assert (stats.interpolate(a, b, 0.25) == 35).all()
    assert (stats.interpolate(a, b, 1.0) == b).all()


def test_split_counts_and_synthetic_examples():
    y = np.array([0, 0, 0, 1, 1, 2])
    t = stats.split_counts(y, np.array([0, 1, 3]), np.array([2, 4, 5]), {0: 2, 1: 2}, ["a", "b", "c"])
    assert list(t["train_before"]) == [2, 1, 0]
    assert list(t["train_after"]) == [2, 2, 0]
    assert list(t["val"]) == [1, 1, 1]
    a, b = np.array([0, 1, 2, 0, 3]), np.array([0, 1, 2, 1, 4])
    assert stats.synthetic_examples(a, b, np.zeros(5), 6) == [3, 4]
    assert len(stats.synthetic_examples(np.zeros(10), np.ones(10), np.zeros(10), 4, seed=0)) == 4


# ----------------------------------------------------------------------------- image properties, confusion cells

def test_image_properties_measure_brightness_contrast_and_blur(tmp_path):
    import cv2
    from PIL import Image

    rng = np.random.default_rng(0)
    sharp = np.where(rng.random((512, 384)) > 0.5, 200, 40).astype(np.uint8)  # a checker of noise: edges
    paths = {}
    for name, img in {"sharp": sharp, "blurred": cv2.GaussianBlur(sharp, (0, 0), 4),
                      "dark": (sharp // 4).astype(np.uint8), "flat": np.full((512, 384), 120, np.uint8)}.items():
        paths[name] = tmp_path / f"{name}.png"
        Image.fromarray(img).convert("RGB").save(paths[name])
    p = {name: stats.image_properties(path) for name, path in paths.items()}
    assert p["blurred"]["laplacian_var"] < p["sharp"]["laplacian_var"] / 10
    assert p["dark"]["brightness"] < p["sharp"]["brightness"] / 3
    assert p["flat"]["contrast"] == 0.0 and p["flat"]["brightness"] == pytest.approx(120, abs=1)
    assert p["sharp"]["contrast"] > 3 * p["blurred"]["contrast"] > 0
    df = pd.DataFrame({"path": [str(paths[n]) for n in ("sharp", "blurred", "dark")], "label": [0, 0, 1],
                       "label_name": ["a", "a", "b"]})
    table = stats.property_table(df, per_class=5)
    assert list(table.columns) == ["path", "label", "label_name", *stats.PROPERTIES]
    assert table.groupby("label_name").size().to_dict() == {"a": 2, "b": 1}


def test_a_confusion_cell_maps_to_its_validation_images():
    predictions = pd.DataFrame({"path": [f"/v/{i}.jpg" for i in range(6)], "true": [0, 0, 1, 1, 1, 2],
                                "pred": [0, 1, 1, 0, 0, 2], "prob_true": [0.9, 0.2, 0.8, 0.3, 0.1, 0.7]})
    columns = ["0", "1", "2"]
    assert imaging.confusion_cell([(1, "0")], columns) == (1, 0)  # row 1 = true class 1, column "0" = predicted 0
    assert imaging.confusion_cell([(2, "1")], columns) == (2, 1)
    assert imaging.confusion_cell([], columns) is None and imaging.confusion_cell([(0, "true class")], columns) is None
    rows = stats.cell_rows(predictions, 1, 0)
    assert rows["path"].tolist() == ["/v/4.jpg", "/v/3.jpg"]  # the surest mistake first
    assert stats.cell_rows(predictions, 2, 0).empty
    assert stats.cell_rows(predictions, 0, 0)["path"].tolist() == ["/v/0.jpg"]


def test_persons_by_age_counts_each_person_once_and_skips_unlabelled_rows():
    df = pd.DataFrame({"person": ["a"] * 7 + ["b"] * 7 + ["c"] * 7 + [""],
                       "age": [58] * 7 + [58] * 7 + [60] * 7 + [-1],
                       "label": [1] * 14 + [2] * 7 + [-1]})
    t = stats.persons_by_age(df)
    assert t.to_dict("list") == {"age": [58, 60], "persons": [2, 1]}
