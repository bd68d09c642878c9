"""Processes started in the background and followed by pid: start one in its own session with
its output in a log file, tell whether it still runs (not a zombie, not a newer process that
reused its pid), and signal its process group. Linux's /proc is read where it exists."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import threading
from pathlib import Path
from typing import Mapping

REPO = Path(__file__).resolve().parents[1]  # a started `python -m core` runs from here


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
    except (OverflowError, ValueError):  # a pid no process can have (a damaged record)
        return False
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


def start_background(argv: list[str], log: Path, env: Mapping[str, str] | None = None) -> int:
    """Start ``argv`` in the repository root, in a new session (a page reload or a closed tab
    never kills it), stdout and stderr to ``log``; its pid. ``core`` is importable in it."""
    env = dict(os.environ if env is None else env)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO), env.get("PYTHONPATH")) if p)
    env["PYTHONUNBUFFERED"] = "1"
    with open(log, "wb") as fh:
        proc = subprocess.Popen(argv, cwd=REPO, env=env, stdin=subprocess.DEVNULL, stdout=fh,
                                stderr=subprocess.STDOUT, start_new_session=True)
    _reap(proc)
    return proc.pid


def terminate_group(pid: int, started_by: float | None = None) -> None:
    """SIGTERM to the process group ``pid`` leads (a background start leads its own), if it runs."""
    if pid_alive(pid, started_by):
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pid, signal.SIGTERM)


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


def error_line(tail: str) -> str | None:
    """The CLI's one-line error (``error: ...``), if the log has one."""
    for line in reversed(tail.splitlines()):
        if line.startswith("error: "):
            return line.removeprefix("error: ")
    return None
