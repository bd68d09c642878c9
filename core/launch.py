"""Training in the background: start ``python -m core train`` as its own process, follow it, stop it.

The app never trains inside the Streamlit server. :func:`start` writes the recipe to a file,
builds the same command a user would type (core.training.config.train_argv, the one argv
builder, shown by the app as :func:`command_line`) and starts it in the background
(core.procs), so a page reload, a widget change or a closed browser tab never kills it.

Everything about a launch lives on disk under the runs folder (``out``)::

    ACTIVE.json                   the latest launch (pid, argv, command, start time, run dir)
    .launches/<stamp>/recipe.json the recipe the launch trains on
    .launches/<stamp>/console.log the process's stdout and stderr
    <run dir>/                    written by the trainer itself (see core.runs)

The run directory is found after the start by its ``status.json``, whose ``pid`` is the
launched process's. Only one training runs per runs folder: :func:`start` refuses with
:class:`AlreadyRunning` while the latest launch, or any run started from the command line
into the same folder, is still running.
"""

from __future__ import annotations

import json
import secrets
import shlex
import sys
import time
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any, Iterator

from core.errors import UserError
from core.fileio import atomic_write, locked
from core.procs import error_line, log_tail, pid_alive, start_background, terminate_group
from core.recipe import Recipe
from core.runs import read_status, request_stop
from core.training.config import train_argv

ACTIVE = "ACTIVE.json"
LAUNCHES = ".launches"  # hidden: core.runs.list_runs only lists folders with a config.json
LIVE = ("starting", "running")


class AlreadyRunning(UserError):
    """A training is already running into this runs folder."""


@dataclass
class Launch:
    """One background training started by :func:`start` (stored as ACTIVE.json)."""

    pid: int
    argv: list[str]
    command: str  # what the app shows: argv with the interpreter written as `python`
    started: float  # time.time() just after the process started
    out: str  # runs folder
    launch_dir: str  # .launches/<stamp>: recipe.json and console.log
    log: str  # console.log: the process's stdout and stderr
    run_dir: str | None = None  # found once the trainer has created it
    stop_requested: bool = False

    @classmethod
    def from_dict(cls, d: dict) -> Launch:
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in known})


@dataclass
class RunState:
    """Where a launch or a run directory stands, as the app shows it."""

    state: str  # starting | running | done | failed | stopped
    message: str = ""
    run_dir: Path | None = None
    status: dict[str, Any] = field(default_factory=dict)  # status.json as written by the trainer
    log_tail: str = ""  # last lines of the console log (failed launches)

    @property
    def live(self) -> bool:
        return self.state in LIVE


# ----------------------------------------------------------------------------- the command

def command_line(argv: list[str]) -> str:
    """The command as a user would type it in the repository root."""
    return shlex.join(["python", *argv[1:]])


# ----------------------------------------------------------------------------- records

def _write_json(path: Path, data: dict) -> None:
    atomic_write(path, json.dumps(data, indent=2) + "\n")  # unique temporary: sessions are threads


def current(out: str | Path) -> Launch | None:
    """The latest launch into ``out`` (finished or not), or None."""
    path = Path(out) / ACTIVE
    try:
        return Launch.from_dict(json.loads(path.read_text()))
    except (OSError, ValueError, TypeError):
        return None


def _save(launch: Launch) -> None:
    """Update ACTIVE.json, unless a newer launch has replaced it meanwhile."""
    now = current(launch.out)
    if now is None or now.launch_dir == launch.launch_dir:
        _write_json(Path(launch.out) / ACTIVE, asdict(launch))


# ----------------------------------------------------------------------------- following

def _find_run_dir(launch: Launch) -> Path | None:
    """The run directory whose status.json names the launched process."""
    for path, status in _statuses(Path(launch.out)):
        if status.get("pid") == launch.pid and float(status.get("started") or 0) >= launch.started - 5:
            return path
    return None


def _statuses(out: Path) -> Iterator[tuple[Path, dict]]:
    """(run directory, its status.json) for each readable run directory in ``out``."""
    for path in out.iterdir() if out.is_dir() else ():
        if path.name.startswith(".") or not (path / "status.json").is_file():
            continue
        try:
            yield path, read_status(path)
        except UserError:
            continue


def run_state(run_dir: str | Path, stop_requested: bool = False, console_log: str | None = None) -> RunState:
    """The state of a run directory, with a dead "running" process shown as what it is."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        return RunState("failed", f"{run_dir}: the run directory no longer exists", run_dir)
    try:
        status = read_status(run_dir)
    except UserError as exc:
        return RunState("failed", str(exc), run_dir)
    state = status.get("state") or "running"
    message = str(status.get("message") or "")
    tail = log_tail(console_log) if console_log else ""
    if state == "running" and not pid_alive(status.get("pid"), status.get("started")):
        if stop_requested:
            state, message = "stopped", "stopped before training began"
        else:
            state = "failed"
            message = (error_line(tail) or "the training process ended without a final status "
                       "(killed, or out of memory?)")
    if state == "failed":
        tail = tail or log_tail(run_dir / "train.log")
    return RunState(state, message, run_dir, status, tail)


def poll(launch: Launch) -> RunState:
    """Where ``launch`` stands now; records its run directory once the trainer has made it."""
    if launch.run_dir is None:
        found = _find_run_dir(launch)
        if found is not None:
            launch.run_dir = str(found)
            _save(launch)
    if launch.run_dir is not None:
        return run_state(launch.run_dir, launch.stop_requested, launch.log)
    if pid_alive(launch.pid, launch.started):
        return RunState("starting", "starting the training process")
    tail = log_tail(launch.log)
    if launch.stop_requested:
        return RunState("stopped", "stopped before training began", log_tail=tail)
    return RunState("failed", error_line(tail) or "the training process ended before it created a run "
                    "directory; see the log", log_tail=tail)


def _live_runs(out: Path) -> list[Path]:
    """Run directories in ``out`` whose trainer is still running (started from anywhere)."""
    return [path for path, status in _statuses(out)
            if status.get("state") == "running" and pid_alive(status.get("pid"), status.get("started"))]


def busy(out: str | Path) -> str | None:
    """Why a new training cannot start in ``out`` now, or None when it can."""
    out = Path(out)
    launch = current(out)
    if launch is not None:
        now = poll(launch)
        if now.live:
            where = f"run {now.run_dir.name}" if now.run_dir else "starting"
            return (f"A training is already running ({where}, pid {launch.pid}, started "
                    f"{time.strftime('%H:%M:%S', time.localtime(launch.started))}). Only one runs at a "
                    "time: wait for it to finish or stop it.")
    for path in _live_runs(out):
        pid = read_status(path).get("pid")
        return (f"A training is already running in {path} (pid {pid}, started outside the app). Only one "
                "runs at a time: wait for it to finish.")
    return None


# ----------------------------------------------------------------------------- start / stop

def start(cfg, recipe: Recipe | dict, out: str | Path | None = None, env: dict | None = None) -> Launch:
    """Start ``python -m core train`` for ``cfg`` (a TrainConfig) on ``recipe`` in the background.

    Raises :class:`AlreadyRunning` while another training runs into the same runs folder.
    """
    out = Path(out or cfg.out).expanduser().resolve()
    out.mkdir(parents=True, exist_ok=True)
    recipe = recipe if isinstance(recipe, Recipe) else Recipe.from_dict(recipe)
    with locked(out / "launch"):  # check-then-start, across sessions and processes (two clicks at once)
        reason = busy(out)
        if reason:
            raise AlreadyRunning(reason)
        launch_dir = out / LAUNCHES / f"{time.strftime('%Y%m%d-%H%M%S')}-{secrets.token_hex(2)}"
        launch_dir.mkdir(parents=True)
        recipe_file = launch_dir / "recipe.json"
        recipe.save(recipe_file)
        data = str(Path(cfg.data).expanduser().resolve()) if cfg.data else ""
        argv = train_argv(replace(cfg, data=data, recipe=str(recipe_file), out=str(out)), python=sys.executable,
                          short=True)
        log = launch_dir / "console.log"
        pid = start_background(argv, log, env)
        launch = Launch(pid=pid, argv=argv, command=command_line(argv), started=time.time(), out=str(out),
                        launch_dir=str(launch_dir), log=str(log))
        _write_json(launch_dir / "launch.json", asdict(launch))
        _write_json(out / ACTIVE, asdict(launch))
    return launch


def stop(launch: Launch) -> RunState:
    """Ask ``launch`` to stop: the trainer stops after its current batch and writes last.pt.

    Before training proper has begun (reading the dataset, preparing images) there is no
    batch to finish, so the process group gets SIGTERM instead.
    """
    launch.stop_requested = True
    _save(launch)
    now = poll(launch)
    if not now.live:
        return now
    if now.run_dir is not None:
        request_stop(now.run_dir)
    if now.run_dir is None or str(now.status.get("message", "")).startswith("preparing"):
        terminate_group(launch.pid, launch.started)
    return poll(launch)
