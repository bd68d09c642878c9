"""The Faces page through AppTest: every detector's rates side by side, the sources, the photos
where the detectors disagree, and switching the recipe's detector."""

from __future__ import annotations

import base64
import json

import numpy as np
import pytest
from apptest import assert_clean, open_app

from core import faces
from core import rulebook as rb
from core.dataset import scan
from core.recipe import starter_recipe
from tests.helpers import make_train


@pytest.fixture(scope="module")
def train(demo_root):
    return demo_root / "train"


def rates_shown(at) -> dict[tuple[str, str], float]:
    """(detector label, group) -> rate of the page's side-by-side rates chart."""
    spec = next(json.loads(c.proto.spec) for c in at.get("plotly_chart")
                if json.loads(c.proto.spec)["layout"]["title"]["text"] == "Detection rate by mask state")
    return {(trace["name"], group): rate for trace in spec["data"] for group, rate in zip(trace["x"], values(trace["y"]))}


def values(y) -> list[float]:
    """A trace's numbers, plain or as plotly's base64 typed array."""
    if isinstance(y, dict):
        return np.frombuffer(base64.b64decode(y["bdata"]), dtype=y["dtype"]).tolist()
    return list(y)


def test_the_page_shows_each_detectors_rates_and_switches_the_recipes_detector(train):
    at = open_app(train, "faces")
    df = scan(train).df
    tables = {name: faces.cached_faces(df["path"], name) for name in rb.DETECTOR.values}
    expected = faces.rates_by_detector(tables, df)
    shown = rates_shown(at)
    assert len(shown) == 3 * 4  # three detectors x (all + three mask states)
    for r in expected.itertuples():
        assert shown[rb.DETECTOR.label(r.detector), r.group] == pytest.approx(r.rate)
    assert shown[rb.DETECTOR.label("both"), "Wear"] > shown[rb.DETECTOR.label("haar"), "Wear"]

    differ = faces.disagreements(tables["mtcnn"], tables["haar"], ("MTCNN", "Haar"))
    grid = next(e for e in at.expander if e.label.startswith("Photos where"))
    assert grid.label == f"Photos where MTCNN and Haar disagree: {len(differ)} of 210"
    assert sum(len(img.value) for img in grid.image) == min(len(differ), 12)
    assert len(at.dataframe) == 1  # the share boxed by each source, one column per detector

    for name in ("haar", "mtcnn", "both"):
        at.radio(key="r.crop.detector").set_value(name).run()
        assert_clean(at)
        assert at.session_state["recipe"].crop.detector == name
        rate = faces.detection_rates(tables[name], df).iloc[0]["rate"]
        assert next(m.value for m in at.metric if m.label == "Faces found") == f"{rate:.0%}"
    at.checkbox(key="faces_landmarks").uncheck().run()
    assert_clean(at)


def test_a_large_dataset_detects_and_compares_on_a_click(tmp_path, monkeypatch):
    """Above the page's limit, with a recipe that does not crop to faces, nothing is detected until
    asked: one button for the recipe's detector, then one for the others."""
    from explorer import compute

    monkeypatch.setattr(compute, "FACES_AUTO_LIMIT", 5)
    monkeypatch.setenv("MASKLAB_CACHE", str(tmp_path / "cache"))
    fixed = starter_recipe("train").replace(crop={"mode": "fixed"})
    at = open_app(make_train(tmp_path / "train", people=3), "faces", recipe=fixed)  # 21 images
    assert at.button(key="faces_run").label == "Detect faces in 21 images"
    assert any("not computed yet" in i.value for i in at.info)
    at.button(key="faces_run").click().run()
    assert_clean(at)
    assert [p.name.split("-", 1)[1] for p in (tmp_path / "cache" / "faces").glob("*.csv")] == ["both-v4.csv"]
    assert "haar, mtcnn" in at.button(key="faces_compare").help
    at.button(key="faces_compare").click().run()
    assert_clean(at)
    assert len(rates_shown(at)) == 3 * 4
    at.run()
    assert not [b for b in at.button if b.key in ("faces_run", "faces_compare")]  # everything is on disk now


def test_a_large_dataset_whose_recipe_crops_to_faces_detects_without_a_click(tmp_path, monkeypatch):
    """The starter recipe crops to each image's face: its detector's table is what the previews and
    training need, so the page computes it at once, whatever the dataset's size."""
    from explorer import compute

    monkeypatch.setattr(compute, "FACES_AUTO_LIMIT", 5)
    monkeypatch.setenv("MASKLAB_CACHE", str(tmp_path / "cache"))
    at = open_app(make_train(tmp_path / "train", people=3), "faces")  # 21 images, starter recipe: face crop
    assert at.session_state["recipe"].crop.mode == "face"
    assert not [b for b in at.button if b.key == "faces_run"] and not any("not computed yet" in i.value for i in at.info)
    assert [p.name.split("-", 1)[1] for p in (tmp_path / "cache" / "faces").glob("*.csv")] == ["both-v4.csv"]
