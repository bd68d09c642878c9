"""Training: accumulation, person splits, stop/kill + resume equality, cache reuse, checkpoints."""

from __future__ import annotations

import json
import os
import pickle
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
import torch.nn as nn

from core import cache as cache_mod
from core.cache import build_cache
from core.dataset import scan
from core.errors import CheckpointError, UserError
from core.models import build_model, new_model
from core.recipe import Recipe, starter_recipe
from core.runs import load_checkpoint, read_metrics, read_status, request_stop
from core.training import (BatchSource, Callbacks, TrainConfig, epoch_batches, make_splits, prefetch, resolve_recipe,
                        train, train_steps, validate_config)
from tests.helpers import make_train, tiny_recipe

ROOT = Path(__file__).resolve().parents[1]
SETTINGS = dict(model="smallcnn", epochs=3, batch_size=16, lr=0.01, seed=0, workers=1)


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    return make_train(tmp_path_factory.mktemp("train"), people=12)


@pytest.fixture(scope="module")
def recipe(tmp_path_factory) -> Path:
    return tiny_recipe(tmp_path_factory.mktemp("recipe") / "recipe.json")


@pytest.fixture(scope="module")
def reference(data, recipe, tmp_path_factory) -> list[dict]:
    """Metrics of an uninterrupted 3-epoch run."""
    run = train(TrainConfig(data=str(data), recipe=str(recipe), out=str(tmp_path_factory.mktemp("ref")), **SETTINGS))
    return read_metrics(run)


def _numbers(records: list[dict]) -> list[list[float]]:
    keys = ("train_loss", "val_loss", "accuracy", "macro_f1", "lr")
    return [[r["epoch"]] + [r[k] for k in keys] + r["f1"] for r in records]


# ----------------------------------------------------------------------------- accumulation

def _mlp() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Flatten(), nn.Linear(12, 16), nn.Tanh(), nn.Linear(16, 4))


def _params(model: nn.Module) -> list[torch.Tensor]:
    return [p.detach().clone() for p in model.parameters()]


def test_accumulated_step_equals_one_big_batch():
    g = torch.Generator().manual_seed(1)
    xs = [torch.randn(5, 3, 2, 2, generator=g) for _ in range(4)]
    ys = [torch.randint(0, 4, (5,), generator=g) for _ in range(4)]
    small, big = _mlp(), _mlp()
    opt_small = torch.optim.SGD(small.parameters(), lr=0.5)
    opt_big = torch.optim.SGD(big.parameters(), lr=0.5)
    ce = nn.CrossEntropyLoss()
    assert train_steps(small, zip(xs, ys), ce, opt_small, accum_steps=4, n_batches=4) == 4
    train_steps(big, [(torch.cat(xs), torch.cat(ys))], ce, opt_big, accum_steps=1, n_batches=1)
    for a, b in zip(_params(small), _params(big)):
        assert torch.allclose(a, b, atol=1e-6)
    assert not torch.allclose(_params(small)[0], _params(_mlp())[0])  # a step was taken


def test_remainder_group_steps_once_at_epoch_end():
    g = torch.Generator().manual_seed(2)
    xs = [torch.randn(5, 3, 2, 2, generator=g) for _ in range(4)]
    ys = [torch.randint(0, 4, (5,), generator=g) for _ in range(4)]
    ce = nn.CrossEntropyLoss()
    accum, manual = _mlp(), _mlp()
    steps = []
    opt = torch.optim.SGD(accum.parameters(), lr=0.5)
    train_steps(accum, zip(xs, ys), ce, opt, accum_steps=3, n_batches=4, after_step=lambda: steps.append(1))
    assert len(steps) == 2  # batches 0-2, then the remainder batch 3
    opt_m = torch.optim.SGD(manual.parameters(), lr=0.5)
    train_steps(manual, [(torch.cat(xs[:3]), torch.cat(ys[:3])), (xs[3], ys[3])], ce, opt_m, 1, 2)
    for a, b in zip(_params(accum), _params(manual)):
        assert torch.allclose(a, b, atol=1e-6)


def test_epoch_batches_cover_every_sample_without_tiny_batches():
    batches = epoch_batches(65, 64, seed=0, fold=0, epoch=0)
    assert sorted(np.concatenate(batches)) == list(range(65))
    assert [len(b) for b in batches] == [33, 32]
    assert not np.array_equal(np.concatenate(epoch_batches(65, 64, 0, 0, 1)), np.concatenate(batches))


def test_prefetch_keeps_order_reraises_and_stops_its_thread():
    assert list(prefetch(iter(range(50)))) == list(range(50))

    def failing():
        yield 1
        raise ValueError("bad batch")
    with pytest.raises(ValueError, match="bad batch"):
        list(prefetch(failing()))

    before = threading.active_count()
    it = prefetch(iter(range(1000)))
    assert next(it) == 0
    it.close()  # the consumer stops early (Stop button): the producer thread must end
    assert threading.active_count() == before


def test_cpu_batches_are_made_in_line_and_match_prefetched_ones():
    rng = np.random.default_rng(0)
    source = BatchSource(rng.integers(0, 255, (40, 12, 12, 3), dtype=np.uint8), np.arange(40), np.arange(40),
                         np.zeros(40), rng.integers(0, 3, 40), Recipe().augment, seed=3)
    order = epoch_batches(40, 8, 3, 0, 0)
    stream = source.stream(order, 0, 0)
    assert stream.__name__ == "batches"  # the plain generator, no background thread on the CPU
    for (x, y), (px, py) in zip(stream, prefetch(source.batches(order, 0, 0)), strict=True):
        assert torch.equal(x, px) and torch.equal(y, py)


# ----------------------------------------------------------------------------- splits

@pytest.mark.parametrize("folds", [0, 3])
def test_no_person_is_on_both_sides(data, folds):
    df = scan(data).df
    splits = make_splits(df, folds, 0.25, seed=0)
    assert len(splits) == max(1, folds)
    for tr, va in splits:
        assert not set(df["person"].iloc[tr]) & set(df["person"].iloc[va])
        assert len(tr) + len(va) == len(df)
    if folds:
        all_val = np.sort(np.concatenate([va for _, va in splits]))
        assert np.array_equal(all_val, np.arange(len(df)))  # every image is out-of-fold once


# ----------------------------------------------------------------------------- runs

def test_run_directory_holds_every_file(reference, data, recipe, tmp_path):
    run = train(TrainConfig(data=str(data), recipe=str(recipe), out=str(tmp_path), **{**SETTINGS, "epochs": 1}))
    for name in ("config.json", "recipe.json", "metrics.jsonl", "best.pt", "last.pt", "val_predictions.csv",
                 "confusion_matrix.csv", "per_class_report.csv", "status.json", "train.log", "summary.json"):
        assert (run / name).is_file(), name
    status = read_status(run)
    assert status["state"] == "done" and status["pid"] == os.getpid()
    config = json.loads((run / "config.json").read_text())
    assert config["command"].startswith("python -m core train --data ")
    assert config["dataset"]["split"][0]["train"] + config["dataset"]["split"][0]["val"] == 84
    preds = pd.read_csv(run / "val_predictions.csv")
    probs = [f"p{c}" for c in range(18)]
    assert list(preds.columns) == ["path", "true", "pred", "prob_true", "loss", *probs]
    assert len(preds) == config["dataset"]["split"][0]["val"]
    assert np.allclose(preds["loss"], -np.log(preds["prob_true"]), atol=1e-4)
    p = preds[probs].to_numpy()  # every class's probability: they sum to one, argmax is pred
    assert np.allclose(p.sum(1), 1, atol=1e-4) and (p.argmax(1) == preds["pred"]).all()
    assert np.allclose(p[np.arange(len(p)), preds["true"]], preds["prob_true"], atol=1e-5)
    assert read_metrics(run)[0]["epoch"] == 1 and "macro_f1" in read_metrics(run)[0]


def test_same_seed_same_metrics(reference, data, recipe, tmp_path):
    again = read_metrics(train(TrainConfig(data=str(data), recipe=str(recipe), out=str(tmp_path), **SETTINGS)))
    assert _numbers(again) == _numbers(reference)


def test_folds_write_one_model_each_and_out_of_fold_predictions(data, recipe, tmp_path):
    run = train(TrainConfig(data=str(data), recipe=str(recipe), out=str(tmp_path), folds=2,
                            **{**SETTINGS, "epochs": 1}))
    assert (run / "fold0" / "best.pt").is_file() and (run / "fold1" / "last.pt").is_file()
    preds = pd.read_csv(run / "val_predictions.csv")
    assert len(preds) == 84 and preds["path"].is_unique and set(preds["fold"]) == {0, 1}
    assert [r["fold"] for r in read_metrics(run)] == [0, 1]
    assert json.loads((run / "summary.json").read_text())["scope"] == "out-of-fold"


class _KillAt(Callbacks):
    def __init__(self, epoch: int, batch: int, action):
        self.epoch, self.batch, self.action = epoch, batch, action

    def on_batch_end(self, epoch, batch, n_batches, loss):
        if (epoch, batch) == (self.epoch, self.batch):
            self.action()


def test_stop_file_mid_epoch_then_resume_matches_uninterrupted(reference, data, recipe, tmp_path):
    holder = {}

    class Remember(Callbacks):
        def on_train_start(self, info):
            holder["run"] = Path(info["run_dir"])

    run = train(TrainConfig(data=str(data), recipe=str(recipe), out=str(tmp_path), **SETTINGS),
                [Remember(), _KillAt(1, 1, lambda: request_stop(holder["run"]))])
    status = read_status(run)
    assert status["state"] == "stopped" and "--resume" in status["message"]
    state = load_checkpoint(run / "last.pt")["state"]
    assert (state["epoch"], state["next_batch"]) == (1, 2)  # stopped after batch 1 of epoch 2
    assert len(read_metrics(run)) == 1
    train(TrainConfig(resume=str(run)))
    assert read_status(run)["state"] == "done"
    assert not (run / "STOP").exists()
    assert "smallcnn: resuming from ./last.pt" in (run / "train.log").read_text()
    assert _numbers(read_metrics(run)) == _numbers(reference)


def test_killed_run_resumes_to_the_same_metrics(reference, data, recipe, tmp_path):
    """A hard kill (os._exit: no cleanup at all) in epoch 2, then `python -m core train --resume`."""
    script = textwrap.dedent(f"""
        import os, sys
        sys.path.insert(0, {str(ROOT)!r})
        from core.training import Callbacks, TrainConfig, train

        class Kill(Callbacks):
            def on_batch_end(self, epoch, batch, n_batches, loss):
                if (epoch, batch) == (1, 2):
                    os._exit(137)

        train(TrainConfig(data={str(data)!r}, recipe={str(recipe)!r}, out={str(tmp_path)!r}, **{SETTINGS!r}), [Kill()])
    """)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    killed = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=300)
    assert killed.returncode == 137, killed.stderr
    run = next(tmp_path.glob("*-smallcnn-*"))
    assert read_status(run)["state"] == "running"  # nobody got to clean up
    assert load_checkpoint(run / "last.pt")["state"]["epoch"] == 1
    resumed = subprocess.run([sys.executable, "-m", "core", "train", "--resume", str(run)], cwd=ROOT, env=env,
                             capture_output=True, text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stderr
    assert read_status(run)["state"] == "done"
    ours, ref = _numbers(read_metrics(run)), _numbers(reference)
    assert len(ours) == len(ref) == 3
    assert np.allclose(ours, ref, rtol=1e-6, atol=1e-7)


def test_sigterm_stops_after_the_batch_and_saves_last(data, recipe, tmp_path):
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    cmd = [sys.executable, "-m", "core", "train", "--data", str(data), "--recipe", str(recipe), "--model", "smallcnn",
           "--epochs", "200", "--batch-size", "16", "--out", str(tmp_path), "--workers", "1"]
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while not list(tmp_path.glob("*/last.pt")) and time.monotonic() < deadline:
        time.sleep(0.05)
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err
    run = next(tmp_path.glob("*-smallcnn-*"))
    assert read_status(run)["state"] == "stopped"
    assert load_checkpoint(run / "last.pt")["state"]["epoch"] < 200


def test_stop_while_preparing_images_ends_the_run_without_a_checkpoint(data, recipe, tmp_path):
    class StopEarly(Callbacks):
        def on_cache_progress(self, done, total):
            request_stop(next(tmp_path.glob("*-smallcnn-*")))

    fresh = Recipe.load(recipe).replace(input_size=(22, 30)).save(tmp_path / "fresh.json")  # not cached yet
    run = train(TrainConfig(data=str(data), recipe=str(fresh), model="smallcnn", epochs=3, out=str(tmp_path),
                            workers=1), [StopEarly()])
    status = read_status(run)
    assert status["state"] == "stopped" and "nothing to resume" in status["message"]
    assert not list(run.glob("**/*.pt"))


def test_without_a_recipe_a_competition_dataset_starts_from_the_starter_recipe(data):
    assert resolve_recipe(None, scan(data).layout) == starter_recipe("train")
    assert resolve_recipe(None, "folders") == Recipe()


# ----------------------------------------------------------------------------- cache

def test_cache_is_built_once_per_recipe(data, monkeypatch):
    df = scan(data).df
    calls = []
    real = cache_mod.preprocess_path
    monkeypatch.setattr(cache_mod, "preprocess_path", lambda *a: calls.append(1) or real(*a))
    recipe = Recipe().replace(input_size=(20, 28))
    first = build_cache(df, recipe, workers=1)
    assert len(calls) == len(df) and first.shape == (len(df), 28, 20, 3) and first.dtype == np.uint8
    second = build_cache(df, recipe, workers=1)
    assert len(calls) == len(df)  # nothing decoded again
    assert second.filename == first.filename and np.array_equal(first, second)
    build_cache(df, recipe.replace(enhance={"contrast": 1.5}), workers=1)
    assert len(calls) == 2 * len(df)  # a different recipe is a different cache


def test_cache_fills_an_unreadable_image_with_zeros_and_reports_it(data, tmp_path):
    df = scan(data).df.head(3).copy()
    bad = tmp_path / "bad.jpg"
    bad.write_bytes(b"not a jpeg")
    df.loc[1, "path"] = str(bad)
    messages = []
    arr = build_cache(df, Recipe().replace(input_size=(16, 16)), workers=1, log=messages.append)
    assert not arr[1].any() and arr[0].any()
    assert messages and str(bad) in messages[0]


def test_parallel_cache_equals_serial(data):
    df = scan(data).df
    recipe = Recipe().replace(input_size=(18, 24))
    serial = np.array(build_cache(df, recipe, workers=1))
    os.remove(cache_mod.cache_path(cache_mod.cache_key(list(df["path"]), recipe, None)))
    parallel = build_cache(df, recipe, workers=2)
    assert np.array_equal(serial, parallel)


# ----------------------------------------------------------------------------- checkpoints

class _Evil:
    def __init__(self, target: Path):
        self.target = target

    def __reduce__(self):
        return (os.system, (f"echo pwned > {self.target}",))


@pytest.mark.parametrize("kind", ["random", "pickle", "torch_pickle", "state_dict"])
def test_foreign_checkpoints_are_refused_without_running_code(tmp_path, kind):
    path, target = tmp_path / "best.pt", tmp_path / "pwned.txt"
    if kind == "random":
        path.write_bytes(np.random.default_rng(0).bytes(4096))
    elif kind == "pickle":
        path.write_bytes(pickle.dumps(_Evil(target)))
    elif kind == "torch_pickle":
        torch.save({"masklab": 1, "model": _Evil(target)}, path)
    else:
        torch.save(new_model("smallcnn", 3).state_dict(), path)
    with pytest.raises(CheckpointError, match=str(path)):
        load_checkpoint(path)
    assert not target.exists()


def test_weights_file_must_fit_the_model(tmp_path):
    junk = tmp_path / "junk.pth"
    junk.write_bytes(b"\x00" * 100)
    with pytest.raises(UserError, match="junk.pth"):
        build_model("smallcnn", 3, str(junk))
    other = tmp_path / "resnet.pth"
    torch.save(new_model("resnet18", 10).state_dict(), other)
    with pytest.raises(UserError, match=r"resnet.pth.*not a state_dict for model 'smallcnn'"):
        build_model("smallcnn", 3, str(other))
    same = tmp_path / "small5.pth"
    torch.save(new_model("smallcnn", 5).state_dict(), same)
    model, note = build_model("smallcnn", 3, str(same))
    assert "2 head tensor(s) left new" in note
    src = torch.load(same, weights_only=True)
    assert torch.equal(model.state_dict()["features.0.weight"], src["features.0.weight"])


def test_config_errors_name_the_option_value_and_choices():
    with pytest.raises(UserError, match=r"--optimizer 'rmsprop': must be one of: sgd, adam, adamw"):
        validate_config(TrainConfig(data="x", optimizer="rmsprop"))
    with pytest.raises(UserError, match=r"--model 'resnet19': must be one of: smallcnn, resnet18.*timm/NAME"):
        validate_config(TrainConfig(data="x", model="resnet19"))
    with pytest.raises(UserError, match=r"--accum-steps 0: must be a whole number from 1 to 1024"):
        validate_config(TrainConfig(data="x", accum_steps=0))


def test_factorized_head_is_the_product_of_three_softmaxes():
    from core.models import FactorizedHead

    head = FactorizedHead(5)
    z = torch.randn(4, 5)
    probs = torch.softmax(head(z), dim=1)
    parts = head.linear(z)
    mask, gender, age = (torch.softmax(parts[:, s], dim=1) for s in (slice(0, 3), slice(3, 5), slice(5, 8)))
    for c in range(18):
        m, g, a = c // 6, (c // 3) % 2, c % 3  # the competition's encoding
        assert torch.allclose(probs[:, c], mask[:, m] * gender[:, g] * age[:, a], atol=1e-6)
    with pytest.raises(UserError, match="18 classes"):
        new_model("smallcnn", 5, head="factorized")
