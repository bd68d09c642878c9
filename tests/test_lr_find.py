"""The learning-rate finder: the valley rule, a sweep on tiny data, and lr-find end to end."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from core.errors import UserError
from core.training import TrainConfig
from core.training.lr_find import describe, lr_find, lr_schedule, suggest, valley_index
from tests.helpers import make_train, tiny_recipe

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> dict:
    base = tmp_path_factory.mktemp("lrfind")
    return {"data": make_train(base / "train", people=12), "recipe": tiny_recipe(base / "recipe.json"), "base": base}


def test_valley_is_half_way_down_the_longest_fall():
    flat, fall, rise = [3.0] * 10, list(np.linspace(3.0, 1.0, 12)[1:]), [1.5, 3.0, 6.0]
    losses = np.array(flat + fall + rise)
    i = valley_index(losses)
    start = 9  # the fall begins at the last flat point (still part of the decreasing run)
    assert start < i < start + len(fall)
    assert i == start + int(len(fall) / 3) + int(len(fall) / 3 / 2)


def test_suggestion_skips_the_blow_up_and_stays_in_the_sweep():
    lrs = lr_schedule(1e-6, 1.0, 40)
    losses = np.r_[np.full(15, 2.0), np.linspace(2.0, 0.5, 15), np.linspace(0.6, 9.0, 10)]
    i = suggest(lrs, losses)
    assert 15 <= i < 30 and lrs[0] <= lrs[i] <= lrs[-1]
    with pytest.raises(UserError, match="need 0 < start < end"):
        lr_schedule(1.0, 1e-3, 10)


def test_sweep_on_tiny_data(tiny):
    cfg = TrainConfig(data=str(tiny["data"]), recipe=str(tiny["recipe"]), model="smallcnn", batch_size=16, workers=1)
    done = []
    sweep = lr_find(cfg, steps=12, lr_start=1e-5, lr_end=1.0, progress=lambda d, t: done.append((d, t)))
    assert len(sweep.lrs) == len(sweep.losses) == len(sweep.smoothed) <= 12
    assert np.allclose(sweep.lrs, lr_schedule(1e-5, 1.0, 12)[: len(sweep.lrs)])  # exponential
    assert sweep.lrs.min() <= sweep.suggestion <= sweep.lrs.max()
    assert sweep.suggestion == sweep.lrs[sweep.index]
    assert done[-1] == (len(sweep.lrs), 12)
    assert np.isfinite(sweep.losses).all()
    assert "rule: valley" in describe(sweep)


def test_a_file_the_scan_left_out_is_said(tmp_path, tiny):
    data = make_train(tmp_path / "train", people=6)
    broken = next((data / "images").iterdir()) / "mask1.jpg"
    broken.write_bytes(b"not a jpeg")
    notes: list[str] = []
    cfg = TrainConfig(data=str(data), recipe=str(tiny["recipe"]), model="smallcnn", batch_size=16, workers=1)
    lr_find(cfg, steps=5, log=notes.append)
    assert notes[0].startswith(f"1 file(s) left out of the index of {data}, e.g. {broken}: not an image"), notes


def test_cli_end_to_end(tiny):
    save = tiny["base"] / "sweep"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run([sys.executable, "-m", "core", "lr-find", "--data", str(tiny["data"]), "--recipe",
                           str(tiny["recipe"]), "--model", "smallcnn", "--batch-size", "16", "--workers", "1",
                           "--steps", "10", "--save", str(save)], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=600)
    assert done.returncode == 0, done.stderr
    assert "suggested learning rate:" in done.stdout and "rule: valley" in done.stdout
    curve = pd.read_csv(save / "lr_find.csv")
    assert list(curve.columns) == ["step", "lr", "loss", "smoothed"] and 3 <= len(curve) <= 10
    result = json.loads((save / "lr_find.json").read_text())
    assert curve["lr"].min() <= result["suggestion"] <= curve["lr"].max()
    assert f"{result['suggestion']:.3g}" in done.stdout
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        assert "matplotlib is not installed" in done.stdout
    else:
        assert (save / "lr_find.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_cli_bad_input_is_one_line(tiny):
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run([sys.executable, "-m", "core", "lr-find", "--data", str(tiny["data"]), "--steps", "2"],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 2
    assert done.stderr.strip() == ("error: python -m core lr-find: argument --steps: 2: must be a whole number from 5 "
                                   "to 100000 (see --help)")
    assert "Traceback" not in done.stderr
