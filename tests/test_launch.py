"""core.launch: the background `python -m core train` the app starts, follows and stops."""

from __future__ import annotations

import json
import os
import shlex
import signal
import sys
import time
from pathlib import Path

import pytest

from core import launch, procs
from core.cli import build_parser
from core.recipe import Recipe
from core.runs import read_status
from core.training.config import TrainConfig, train_argv
from tests.helpers import make_train

RECIPE = Recipe().replace(input_size=(32, 48))
WAIT_S = 150


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    return make_train(tmp_path_factory.mktemp("launch") / "train", people=12)


@pytest.fixture
def started():
    """Launches made by a test; any still alive afterwards is killed (a failed test leaves none)."""
    launches: list[launch.Launch] = []
    yield launches
    for record in launches:
        if procs.pid_alive(record.pid, record.started):
            os.killpg(record.pid, signal.SIGKILL)


def tiny(data: Path, out: Path, **changes) -> TrainConfig:
    return TrainConfig(**{"data": str(data), "model": "smallcnn", "epochs": 1, "batch_size": 16, "out": str(out),
                          **changes})


def wait(record: launch.Launch, until, timeout: float = WAIT_S) -> launch.RunState:
    deadline = time.monotonic() + timeout
    while not until(now := launch.poll(record)):
        assert time.monotonic() < deadline, f"gave up after {timeout} s: {now}"
        time.sleep(0.3)
    return now


def test_argv_is_exactly_the_command_shown(tmp_path):
    (tmp_path / "my train").mkdir()
    RECIPE.save(tmp_path / "recipe.json")
    cfg = TrainConfig(data=str(tmp_path / "my train"), recipe=str(tmp_path / "recipe.json"), model="smallcnn",
                      epochs=3, lr=0.0005, loss="focal", seed=7, corrections="reported", out=str(tmp_path / "runs"))
    argv = train_argv(cfg, python=sys.executable, short=True)  # what launch.start runs
    assert argv[:4] == [sys.executable, "-m", "core", "train"]
    shown = launch.command_line(argv)
    assert shown.startswith(f"python -m core train --data '{tmp_path / 'my train'}' ")
    assert shlex.split(shown) == ["python", *argv[1:]]
    args = build_parser().parse_args(argv[3:])  # what the CLI makes of it
    for name in ("data", "recipe", "model", "epochs", "batch_size", "lr", "optimizer", "scheduler", "loss",
                 "accum_steps", "folds", "seed", "corrections", "out"):
        assert getattr(args, name) == getattr(cfg, name), name
    # Settings left at their defaults outside the page's own controls are not repeated.
    assert "--val-ratio" not in argv and "--device" not in argv and "--focal-gamma" not in argv


def test_a_background_run_completes_and_records_its_run_dir(data, tmp_path, started):
    out = tmp_path / "runs"
    record = launch.start(tiny(data, out), RECIPE)
    started.append(record)
    assert os.getsid(record.pid) == record.pid  # its own session: a server restart does not take it along
    assert launch.current(out) == record
    assert Recipe.load(Path(record.launch_dir) / "recipe.json") == RECIPE
    assert shlex.split(record.command)[1:] == record.argv[1:]

    now = wait(record, lambda s: not s.live)
    assert now.state == "done", now
    assert read_status(now.run_dir)["state"] == "done"
    assert (now.run_dir / "best.pt").is_file()
    assert launch.current(out).run_dir == str(now.run_dir)  # ACTIVE.json learnt the run dir
    assert f"run: {now.run_dir}" in Path(record.log).read_text()  # the CLI's own output is in the log
    deadline = time.monotonic() + 30  # the process exits just after its final status
    while Path(f"/proc/{record.pid}").exists() or procs.pid_alive(record.pid):  # reaped: not even a zombie
        assert time.monotonic() < deadline, "the finished training process was not reaped"
        time.sleep(0.2)
    assert launch.busy(out) is None


def test_a_second_launch_is_refused_and_stop_stops_after_a_batch(data, tmp_path, started):
    out = tmp_path / "runs"
    record = launch.start(tiny(data, out, epochs=500), RECIPE)
    started.append(record)
    with pytest.raises(launch.AlreadyRunning, match="already running .*Only one runs at a time"):
        started.append(launch.start(tiny(data, out), RECIPE))
    assert launch.current(out).pid == record.pid

    now = wait(record, lambda s: s.state == "running" and s.status.get("message", "").startswith("training"))
    with pytest.raises(launch.AlreadyRunning, match=now.run_dir.name):
        launch.start(tiny(data, out), RECIPE)
    launch.stop(record)
    assert (now.run_dir / "STOP").is_file()
    now = wait(record, lambda s: not s.live, timeout=60)
    assert now.state == "stopped", now
    assert "--resume" in read_status(now.run_dir)["message"]
    assert (now.run_dir / "last.pt").is_file()
    assert launch.current(out).stop_requested
    assert launch.busy(out) is None


def test_stop_while_starting_ends_the_process(data, tmp_path, started):
    """A gate holds the launched interpreter at start-up (a sitecustomize that waits for a file
    never created), so the launch is certainly still starting when Stop is pressed: no race."""
    gate = tmp_path / "gate"
    gate.mkdir()
    (gate / "sitecustomize.py").write_text(f"import os, time\nwhile not os.path.exists({str(gate / 'open')!r}):\n"
                                           "    time.sleep(0.05)\n")
    out = tmp_path / "runs"
    env = {**os.environ, "PYTHONPATH": str(gate)}
    record = launch.start(tiny(data, out), RECIPE, env=env)
    started.append(record)
    time.sleep(1.0)  # time enough to have made a run directory, were it not held
    assert launch.poll(record).state == "starting" and not any(out.glob("*/status.json"))
    launch.stop(record)
    now = wait(record, lambda s: not s.live, timeout=30)
    assert now.state == "stopped" and "before training began" in now.message


def test_a_run_started_from_the_command_line_also_blocks_a_launch(tmp_path, data):
    out = tmp_path / "runs"
    run = out / "20260101-000000-smallcnn-abcd"
    run.mkdir(parents=True)
    (run / "status.json").write_text(json.dumps({"state": "running", "pid": os.getpid(), "started": time.time()}))
    with pytest.raises(launch.AlreadyRunning, match="started outside the app"):
        launch.start(tiny(data, out), RECIPE)
    # The same status from a process that has ended is not running: the run shows as failed.
    (run / "status.json").write_text(json.dumps({"state": "running", "pid": 2**22 + 1, "started": time.time()}))
    assert launch.busy(out) is None
    assert launch.run_state(run).state == "failed"


def test_pid_alive():
    assert procs.pid_alive(os.getpid())
    assert not procs.pid_alive(None)
    assert not procs.pid_alive(2**22 + 1)  # above Linux's pid_max default: never a live process
    if Path("/proc/self/stat").exists():  # a pid reused by a process that started after the run
        assert not procs.pid_alive(os.getpid(), started_by=time.time() - 3600)
