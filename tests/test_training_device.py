"""The device data path, the once-defined train flags, device defaults and resume checks."""

from __future__ import annotations

import dataclasses
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
import torch.nn as nn

from core.cli import build_parser
from core.dataset import scan
from core.models import new_model
from core.errors import UserError
from core.recipe import Augment, Recipe
from core.rules import Boolean, Interval, Options, Param
from core.splits import person_split
from core.training import BatchSource, TrainConfig, WeightEMA, epoch_batches, train
from core.training.batches import ImageStore, gather
from core.rules import flag_name
from core.training.config import (FLAG_FIELDS, device_defaults, train_argv, train_flags, validate_config,
                                  with_device_defaults)
from core.training.data import describe_changes
from core.training.trainer import Ticker
from tests.helpers import make_train, tiny_recipe

ROOT = Path(__file__).resolve().parents[1]
EVERY_AUGMENT = Augment(hflip=True, rotate=10, translate=0.1, scale=0.1, brightness=0.2, contrast=0.2,
                        saturation=0.2, erasing=0.5, noise=0.05)


# ----------------------------------------------------------------------------- device data path

def _source(images, where: str) -> BatchSource:
    rng = np.random.default_rng(1)
    n = 60
    a = rng.integers(0, len(images), n)
    b = rng.integers(0, len(images), n)
    gap = np.where(rng.random(n) < 0.4, rng.random(n), 0.0)  # some SMOTE rows
    store = ImageStore(images, torch.device("cpu"), where)
    return BatchSource(store, a, b, gap, rng.integers(0, 18, n), EVERY_AUGMENT, seed=5)


def test_batches_from_a_device_store_equal_the_host_path():
    """The GPU path (cache as a tensor, gather/mix/augment/normalise where it lives) run with
    device=cpu gives bit-identical batches to the numpy host path."""
    images = np.random.default_rng(0).integers(0, 256, (50, 20, 16, 3), dtype=np.uint8)
    host, device = _source(images, "host"), _source(images, "device")
    order = epoch_batches(60, 16, 5, 0, 0)
    pairs = list(zip(host.batches(order, 0, 0), device.batches(order, 0, 0), strict=True))
    assert len(pairs) == 4
    for (x, y), (dx, dy) in pairs:
        assert x.dtype == torch.float32 and x.shape[1:] == (3, 20, 16)
        assert torch.equal(x, dx) and torch.equal(y, dy)


def test_gather_mixes_smote_rows_on_the_store():
    images = np.random.default_rng(2).integers(0, 256, (6, 4, 4, 3), dtype=np.uint8)
    a, b, gap = np.array([0, 1, 2]), np.array([0, 3, 4]), np.array([0.0, 0.5, 0.25])
    x = gather(ImageStore(images, torch.device("cpu"), "device"), a, b, gap)
    f = images.astype(np.float32) / 255
    expect = np.stack([f[0], f[1] + 0.5 * (f[3] - f[1]), f[2] + 0.25 * (f[4] - f[2])]).transpose(0, 3, 1, 2)
    np.testing.assert_allclose(x.numpy(), expect, atol=1e-6)


def test_store_placement_off_cuda_is_the_host_array():
    images = np.zeros((3, 2, 2, 3), np.uint8)
    store = ImageStore.place(images, torch.device("cpu"), share=0.9)
    assert store.where == "host" and store.tensor is None and store.nbytes == images.nbytes
    with pytest.raises(ValueError, match="where="):
        ImageStore(images, torch.device("cpu"), "gpu")


def test_weight_ema_fused_update_equals_a_per_tensor_average():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.Flatten(), nn.LazyLinear(2))
    model(torch.randn(2, 3, 6, 6))
    ema = WeightEMA(model, decay=0.9)
    reference = {k: v.clone() for k, v in ema.model.state_dict().items()}
    for step in range(1, 6):
        with torch.no_grad():
            for p in model.parameters():
                p.add_(torch.randn_like(p))
        model.train()(torch.randn(2, 3, 6, 6))  # moves the batch-norm statistics and the counter
        ema.update(model)
        d = min(0.9, (1 + step) / (10 + step))
        for k, v in model.state_dict().items():
            reference[k] = reference[k] + (1 - d) * (v - reference[k]) if v.is_floating_point() else v.clone()
    for k, v in ema.model.state_dict().items():
        assert torch.allclose(v.float(), reference[k].float(), atol=1e-6), k
    assert int(ema.model[1].num_batches_tracked) == 6  # the lazy first forward, then five steps


def test_ticker_limits_the_rate_but_always_reports_the_last_call():
    tick = Ticker(3600.0)
    assert tick() is True and tick() is False and tick(last=True) is True
    every = Ticker(0.0)
    assert all(every() for _ in range(5))


# ----------------------------------------------------------------------------- one definition of the flags

def _non_default(name: str, p: Param, tmp_path):
    """A valid value of field ``name`` other than its default."""
    default = getattr(TrainConfig(), name)
    if isinstance(p.rule, Boolean):
        return not default
    if isinstance(p.rule, Options):
        return [c for c in p.rule.values if c != default][0]
    if isinstance(p.rule, Interval):
        lo, hi = p.rule.bounds(p.step)
        return lo if default != lo else p.rule.kind(lo + (hi - lo) / 2)
    folder = tmp_path / name  # a path rule: something that exists where it must
    if p.rule.kind == "file":
        folder.mkdir()
        return str(folder / ("x.json" if ".json" in p.rule.suffixes else "x.csv"))
    folder.mkdir()
    return str(folder)


def test_every_config_field_is_a_flag_and_the_argv_round_trips_through_the_parser(tmp_path):
    fields = {f.name for f in dataclasses.fields(TrainConfig)}
    assert set(FLAG_FIELDS) == fields - {"resume"}  # resume has its own rule
    changed = {name: _non_default(name, p, tmp_path) for name, p in train_flags()}
    Recipe().save(changed["recipe"])
    changed["corrections"] = str(tmp_path / "fix.csv")  # its other kind of value: a file, not "reported"
    (tmp_path / "fix.csv").write_text("person,field,value\n")
    Path(changed["health"]).write_text("issue,path,person,score,group\n")
    Path(changed["leave_out"]).write_text("path,issue\n")
    cfg = TrainConfig(**changed)
    assert all(getattr(cfg, n) != getattr(TrainConfig(), n) for n in FLAG_FIELDS)
    argv = train_argv(cfg)
    args = build_parser().parse_args(argv[3:])
    for name in FLAG_FIELDS:
        assert getattr(args, name) == getattr(cfg, name), name
    for name in ("warmup_epochs", "ema_epochs", "amp", "channels_last", "compile", "device_cache"):
        assert any(a.startswith(flag_name(name)) or a == "--no-" + name.replace("_", "-") for a in argv), name


def test_short_argv_leaves_defaults_out_but_keeps_always():
    argv = train_argv(TrainConfig(data="d", epochs=4), short=True)
    assert argv[argv.index("--epochs") + 1] == "4" and argv[argv.index("--loss") + 1] == "label_smoothing"
    assert argv[argv.index("--optimizer") + 1] == "adamw"  # in ALWAYS: the short command still names it
    assert "--weight-decay" not in argv and "--model" not in argv  # default / the device's default


@pytest.mark.parametrize("change, message", [
    ({"lr": -1.0}, "--lr -1.0: must be a number in (0, 10]"),
    ({"smoothing": 1.0}, "--smoothing 1.0: must be a number in [0, 1)"),
    ({"optimizer": "lion"}, "--optimizer 'lion': must be one of: sgd, adam, adamw"),
    ({"device_cache": -0.5}, "--device-cache -0.5: must be a number in [0, 1)"),
    ({"epochs": 0}, "--epochs 0: must be a whole number from 1 to 1000"),
    ({"seed": 2**40}, "--seed 1099511627776: must be a whole number from 0 to 4294967295"),
])
def test_config_rules_come_from_the_field_metadata(change, message):
    with pytest.raises(UserError) as info:
        validate_config(TrainConfig(data="d", **change))
    assert str(info.value) == message


def test_device_defaults_fill_only_what_was_left_open():
    cpu = device_defaults("cpu")
    assert (cpu["model"], cpu["epochs"], cpu["batch_size"], cpu["lr"]) == ("smallcnn", 20, 16, 5.4e-3)
    cuda = device_defaults("cuda")
    assert (cuda["model"], cuda["epochs"], cuda["batch_size"], cuda["lr"]) == ("resnet18", 12, 64, 1e-3)
    assert cuda["input_size"] == (128, 128)
    cfg = with_device_defaults(TrainConfig(data="d", epochs=3), "cpu")
    assert (cfg.model, cfg.epochs, cfg.batch_size, cfg.lr) == ("smallcnn", 3, 16, 5.4e-3)


# ----------------------------------------------------------------------------- splits and resume checks

def test_val_ratio_holds_out_that_share_of_persons(tmp_path):
    df = scan(make_train(tmp_path / "d", people=20)).df
    for ratio in (0.2, 0.4, 0.3):
        tr, va = person_split(df, ratio, seed=0)
        persons = df["person"].to_numpy()
        assert not set(persons[tr]) & set(persons[va])
        assert len(set(persons[va])) == round(ratio * 20), ratio


def test_describe_changes_names_each_kind_of_change():
    before = pd.DataFrame({"path": ["a", "b", "c"], "size": [1, 2, 3], "label": [0, 1, 2], "val_fold": [0, -1, -1]})
    assert describe_changes(before, before.copy()) is None
    now = before.copy()
    now.loc[1, "size"] = 5
    now.loc[2, "label"] = 0
    now = pd.concat([now.iloc[1:], pd.DataFrame({"path": ["d"], "size": [1], "label": [0], "val_fold": [-1]})])
    text = describe_changes(before, now)
    assert text == ("1 images added (e.g. d); 1 images removed (e.g. a); 1 images changed in size (e.g. b); "
                    "1 labels changed (e.g. c)")


def test_resume_on_changed_data_exits_2_with_one_line(tmp_path):
    data = make_train(tmp_path / "d", people=8)
    run = train(TrainConfig(data=str(data), recipe=str(tiny_recipe(tmp_path / "r.json")), out=str(tmp_path / "runs"),
                            model="smallcnn", epochs=1, batch_size=16, workers=1))
    table = pd.read_csv(run / "dataset_files.csv")
    assert len(table) == 56 and (table["val_fold"] == 0).sum() > 0
    shutil.rmtree(next((data / "images").iterdir()))  # a person's folder disappears
    done = subprocess.run([sys.executable, "-m", "core", "train", "--resume", str(run)], cwd=ROOT,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "cannot resume: the dataset changed since the run started: 7 images removed" in lines[0]


# ----------------------------------------------------------------------------- pretrained weights from the CLI

def _offline_env(torch_home: Path) -> dict:
    """A temporary TORCH_HOME, and every HTTP(S) request sent to a closed local port: offline."""
    closed = "http://127.0.0.1:9"
    return {**os.environ, "TORCH_HOME": str(torch_home), "HTTPS_PROXY": closed, "https_proxy": closed,
            "HTTP_PROXY": closed, "http_proxy": closed, "NO_PROXY": "", "no_proxy": "", "PYTHONPATH": str(ROOT)}


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("tiny")
    return make_train(root / "d", people=8), tiny_recipe(root / "r.json")


def test_cli_imagenet_offline_exits_2_in_one_line_naming_file_and_folder(tiny, tmp_path):
    data, recipe = tiny
    done = subprocess.run([sys.executable, "-m", "core", "train", "--data", str(data), "--recipe", str(recipe),
                           "--model", "resnet18", "--weights", "imagenet", "--epochs", "1", "--out", str(tmp_path)],
                          cwd=ROOT, env=_offline_env(tmp_path / "th"), capture_output=True, text=True, timeout=300)
    assert done.returncode == 2, done.stderr
    lines = done.stderr.strip().splitlines()  # the weights are decided before any work: nothing else printed
    assert len(lines) == 1 and lines[0].startswith("error: ") and "Traceback" not in done.stderr, done.stderr
    assert "resnet18-f37072fd.pth" in lines[0] and str(tmp_path / "th" / "hub" / "checkpoints") in lines[0]
    assert not any(tmp_path.glob("*/config.json"))  # no run directory was made


def test_cli_loads_imagenet_weights_from_the_hub_cache_without_the_network(tiny, tmp_path):
    data, recipe = tiny
    checkpoints = tmp_path / "th" / "hub" / "checkpoints"
    checkpoints.mkdir(parents=True)
    torch.save(new_model("resnet18", 1000).state_dict(), checkpoints / "resnet18-f37072fd.pth")  # torchvision's name
    done = subprocess.run([sys.executable, "-m", "core", "train", "--data", str(data), "--recipe", str(recipe),
                           "--model", "resnet18", "--weights", "imagenet", "--epochs", "1", "--batch-size", "16",
                           "--workers", "1", "--out", str(tmp_path / "runs")],
                          cwd=ROOT, env=_offline_env(tmp_path / "th"), capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    assert "loaded weights for resnet18 from " + str(checkpoints / "resnet18-f37072fd.pth") in done.stderr
