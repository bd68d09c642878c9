"""The Train page on a machine with several GPUs: it offers the process count (torchrun + DDP)
and the command it would run carries it; with one GPU or none it offers nothing."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from helpers_train import make_train
from tests.apptest import open_app


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    return make_train(tmp_path_factory.mktemp("gpus") / "train", people=6)


def _command(at) -> str:
    return next(c.value for c in at.code if c.value.startswith("python -m core train"))


def test_several_gpus_offer_the_process_count_and_the_command_carries_it(data, monkeypatch, tmp_path):
    monkeypatch.setenv("MASKLAB_RUNS", str(tmp_path / "runs"))
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    at = open_app(data, "train")
    assert "--nproc" not in _command(at)  # one process unless asked
    at.number_input(key="t.nproc").set_value(2).run()
    assert "--nproc 2" in _command(at)
    assert any("Defaults for this machine: **smallcnn**" in c.value for c in at.caption)


def test_one_gpu_or_none_offers_no_process_count(data, monkeypatch, tmp_path):
    monkeypatch.setenv("MASKLAB_RUNS", str(tmp_path / "runs"))
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    at = open_app(data, "train")
    assert not [n for n in at.number_input if n.key == "t.nproc"]
