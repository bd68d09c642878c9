"""The command the Train page runs carries what is set on the page, so a click trains what the
CLI would: the process count on a machine with several GPUs (torchrun + DDP; with one GPU or
none it is not offered), and the competition tricks, which are off until set."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from core.cli import build_parser
from core.recipe import Recipe
from tests.helpers import make_train
from tests.apptest import open_app


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    return make_train(tmp_path_factory.mktemp("command") / "train", people=6)


@pytest.fixture(autouse=True)
def _recipe_file(tmp_path, monkeypatch):
    """The page shows its command with the recipe saved as recipe.json: parsing it back needs one there."""
    monkeypatch.setenv("MASKLAB_HOME", str(tmp_path))
    Recipe().save(tmp_path / "recipe.json")


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


def test_tricks_are_off_until_set_and_then_carried_by_the_command(data, monkeypatch, tmp_path):
    monkeypatch.setenv("MASKLAB_RUNS", str(tmp_path / "runs"))
    at = open_app(data, "train")
    before = _command(at)
    for flag in ("--old-age", "--mix", "--tensorboard"):
        assert flag not in before
    assert at.slider(key="t.mix_prob").disabled  # no mixing: its share means nothing
    at.number_input(key="t.old_age").set_value(58).run()
    at.selectbox(key="t.mix").set_value("cutmix-vertical").run()
    assert not at.slider(key="t.mix_prob").disabled
    at.slider(key="t.mix_prob").set_value(0.3).run()
    at.checkbox(key="t.tensorboard").check().run()
    assert not at.exception
    command = _command(at)
    argv = command.split()[command.split().index("train"):]
    args = build_parser().parse_args(argv)
    assert (args.old_age, args.mix, args.mix_prob, args.tensorboard) == (58, "cutmix-vertical", 0.3, True)


def test_the_data_health_files_are_offered_once_written_and_carried_when_ticked(data, monkeypatch, tmp_path):
    monkeypatch.setenv("MASKLAB_RUNS", str(tmp_path / "runs"))
    at = open_app(data, "train")
    assert "--health" not in _command(at) and not [c for c in at.checkbox if c.key == "t.use_health"]
    (data.parent / "health.csv").write_text("issue,path,person,score,group\n")
    (data.parent / "leave_out.csv").write_text("path,issue\n")
    at.run()
    assert "--health" not in _command(at)  # offered, off until ticked
    at.checkbox(key="t.use_health").check().run()
    at.checkbox(key="t.use_leave_out").check().run()
    command = _command(at)
    assert f"--health {data.parent / 'health.csv'}" in command and f"--leave-out {data.parent / 'leave_out.csv'}" in command
    args = build_parser().parse_args(command.split()[command.split().index("train"):])
    assert (args.health, args.leave_out) == (str(data.parent / "health.csv"), str(data.parent / "leave_out.csv"))
