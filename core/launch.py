"""Training in the background: start ``python -m core train`` as its own process, follow it, stop it.

The app never trains inside the Streamlit server. :func:`start` writes the recipe to a file,
builds the same command a user would type (:func:`train_argv`, shown by the app as
:func:`command_line`) and starts it in a new session with its output going to a log file, so
a page reload, a widget change or a closed browser tab never kills it.

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

import contextlib
import json
import os
import secrets
import shlex
import signal
import subprocess
import sys
import threading
import time
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any, Iterator

from core.errors import UserError
from core.fileio import atomic_write
from core.recipe import Recipe
from core.runs import read_status, request_stop

REPO = Path(__file__).resolve().parents[1]  # the launched `python -m core` runs from here
ACTIVE = "ACTIVE.json"
LAUNCHES = ".launches"  # hidden: core.runs.list_runs only lists folders with a config.json
LIVE = ("starting", "running")
# Settings the app always writes into the command, so that it reads as a full description of
# the run; any other TrainConfig flag appears only when it differs from its default.
ALWAYS = ("model", "epochs", "batch_size", "lr", "optimizer", "scheduler", "loss", "accum_steps", "folds", "out")


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

def train_argv(cfg, python: str = sys.executable) -> list[str]:
    """``python -m core train ...`` for a TrainConfig whose ``recipe`` is a file path
    (core.training.config.train_argv, with only the changed settings and ALWAYS)."""
    from core.training.config import train_argv as argv_of

    if not isinstance(cfg.recipe, (str, Path)):
        raise ValueError("train_argv needs cfg.recipe as a file path; start() writes the recipe first")
    return argv_of(cfg, python=python, changed_only=True, always=ALWAYS)


def command_line(argv: list[str]) -> str:
    """The command as a user would type it in the repository root."""
    return shlex.join(["python", *argv[1:]])


# ----------------------------------------------------------------------------- processes

def _boot_time() -> float | None:
    try:
        for line in Path("/proc/stat").read_text().splitlines():
            if line.startswith("btime "):
                return float(line.split()[1])
    except OSError:
        pass
    return None


def _proc_stat(pid: int) -> tuple[str, float | None] | None:
    """(state letter, start time as a Unix time) from /proc, or None where there is no /proc."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return ("X", None) if Path("/proc/self").exists() else None
    except OSError:
        return None
    rest = text.rsplit(")", 1)[1].split()  # the command name in (...) may contain spaces
    boot = _boot_time()
    start = boot + int(rest[19]) / os.sysconf("SC_CLK_TCK") if boot is not None else None
    return rest[0], start


def pid_alive(pid: int | None, started_by: float | None = None) -> bool:
    """Whether process ``pid`` runs (not a zombie) and, given ``started_by``, is not a newer
    process that reused the pid (it must have started no later than ``started_by``)."""
    if not pid:
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # exists, owned by someone else
    stat = _proc_stat(int(pid))
    if stat is None:
        return True
    letter, start = stat
    if letter in ("Z", "X"):
        return False
    # /proc's boot time has 1 s resolution, hence the slack.
    return not (started_by is not None and start is not None and start > started_by + 2.0)


def _reap(proc: subprocess.Popen) -> None:
    """Wait for the child in a daemon thread, so that it leaves no zombie when it ends."""
    threading.Thread(target=proc.wait, name=f"reap-{proc.pid}", daemon=True).start()


@contextlib.contextmanager
def _locked(out: Path) -> Iterator[None]:
    """Serialise check-then-start across sessions and processes (two clicks at once)."""
    try:
        import fcntl
    except ImportError:  # not on Unix: the check is still made, just not atomically
        yield
        return
    with open(out / ".launch.lock", "w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


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


def log_tail(path: str | Path | None, lines: int = 20) -> str:
    """The last ``lines`` lines of a log, with progress-bar redraws (``\\r``) collapsed."""
    if not path:
        return ""
    try:
        with open(path, "rb") as fh:  # bytes: read_text would turn each progress redraw (\r) into a line
            fh.seek(max(0, fh.seek(0, os.SEEK_END) - 65536))
            text = fh.read().decode(errors="replace")
    except OSError:
        return ""
    shown = [line.rstrip("\r").rsplit("\r", 1)[-1] for line in text.split("\n")]
    return "\n".join([line for line in shown if line.strip()][-lines:])


def _error_line(tail: str) -> str | None:
    """The CLI's one-line error (``error: ...``), if the log has one."""
    for line in reversed(tail.splitlines()):
        if line.startswith("error: "):
            return line.removeprefix("error: ")
    return None


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
            message = (_error_line(tail) or "the training process ended without a final status "
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
    return RunState("failed", _error_line(tail) or "the training process ended before it created a run "
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
    with _locked(out):
        reason = busy(out)
        if reason:
            raise AlreadyRunning(reason)
        launch_dir = out / LAUNCHES / f"{time.strftime('%Y%m%d-%H%M%S')}-{secrets.token_hex(2)}"
        launch_dir.mkdir(parents=True)
        recipe_file = launch_dir / "recipe.json"
        recipe.save(recipe_file)
        data = str(Path(cfg.data).expanduser().resolve()) if cfg.data else ""
        argv = train_argv(replace(cfg, data=data, recipe=str(recipe_file), out=str(out)))
        log = launch_dir / "console.log"
        env = dict(os.environ if env is None else env)
        env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO), env.get("PYTHONPATH")) if p)
        env["PYTHONUNBUFFERED"] = "1"
        with open(log, "wb") as fh:
            proc = subprocess.Popen(argv, cwd=REPO, env=env, stdin=subprocess.DEVNULL, stdout=fh,
                                    stderr=subprocess.STDOUT, start_new_session=True)
        _reap(proc)
        launch = Launch(pid=proc.pid, argv=argv, command=command_line(argv), started=time.time(), out=str(out),
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
    preparing = now.run_dir is None or str(now.status.get("message", "")).startswith("preparing")
    if preparing and pid_alive(launch.pid, launch.started):
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(launch.pid, signal.SIGTERM)
    return poll(launch)
