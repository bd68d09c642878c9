"""Safe file writes for many writers at once: atomic replacement and per-entry locks.

Every file that another session, process or a later run may read is written through
:func:`atomic_path` / :func:`atomic_write`: the data goes to a temporary file in the same
folder, which is renamed onto the target only once it is complete, so a reader sees the old
file or the new one, never half of one. The temporary name carries the process id, the thread
id and a random token, so two threads of one process (two Streamlit sessions) never share one,
and it has a fixed shape (``.{name}.{pid}.{thread}.{token}.tmp``) so leftovers of a killed
writer can be recognised and swept (:func:`stale_temporaries`, :func:`remove_unlocked_temporaries`).

:func:`locked` serialises the builders of one cache entry: a lock per entry inside the process
(threads) and an ``flock`` on a lock file across processes, so the second builder waits and
then finds the finished file instead of building it again.
"""

from __future__ import annotations

import contextlib
import os
import re
import secrets
import threading
import time
from pathlib import Path
from typing import Iterator

from core.errors import UserError, a

try:
    import fcntl
except ImportError:  # not on Unix: threads of one process are still serialised
    fcntl = None

TEMP_PATTERN = re.compile(r"^\.(?P<name>.+)\.(?P<pid>\d+)\.(?P<thread>\d+)\.(?P<token>[0-9a-f]{8})\.tmp$")


def temporary_path(path: str | Path) -> Path:
    """A fresh temporary name beside ``path``: unique per process, thread and call."""
    path = Path(path)
    return path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.{secrets.token_hex(4)}.tmp")


@contextlib.contextmanager
def atomic_path(path: str | Path, mode: int | None = None) -> Iterator[Path]:
    """Yield a temporary path to write; on success it replaces ``path``, on any error it is removed.

    The caller writes the whole file to the yielded path (``to_csv(tmp)``, ``torch.save(..., tmp)``).
    KeyboardInterrupt and other BaseExceptions also remove it, so a stopped writer leaves nothing.
    ``mode`` (e.g. 0o600 for a file holding a password): the temporary is created with exactly
    these permissions before anything is written to it, so the file never has wider ones.
    """
    path = Path(path)
    tmp = temporary_path(path)
    try:
        if mode is not None:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
            try:
                if hasattr(os, "fchmod"):  # the umask may have taken bits away (never adds any here)
                    os.fchmod(fd, mode)
            finally:
                os.close(fd)
        yield tmp
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def atomic_write(path: str | Path, data: bytes | str, mode: int | None = None) -> Path:
    """Write ``data`` (str as UTF-8) to ``path`` so that readers never see a partial file
    (``mode``: the file's permissions from its first byte, as :func:`atomic_path`)."""
    path = Path(path)
    with atomic_path(path, mode) as tmp:
        tmp.write_bytes(data.encode() if isinstance(data, str) else data)
    return path


def temporary_target(tmp: Path) -> Path | None:
    """The file a temporary made by :func:`temporary_path` was going to become, or None."""
    match = TEMP_PATTERN.match(tmp.name)
    return tmp.with_name(match["name"]) if match else None


def stale_temporaries(folder: str | Path, older_than_s: float = 3600.0) -> list[Path]:
    """Temporaries in ``folder`` untouched for ``older_than_s`` seconds: left by killed writers."""
    folder, now, found = Path(folder), time.time(), []
    if not folder.is_dir():
        return found
    for p in folder.iterdir():
        if TEMP_PATTERN.match(p.name):
            with contextlib.suppress(FileNotFoundError):
                if now - p.stat().st_mtime > older_than_s:
                    found.append(p)
    return found


# ----------------------------------------------------------------------------- locks

def entry_key(name: str) -> str:
    """The entry a file belongs to: its name up to the first dot (``abc.npy``, ``.abc.lock`` -> ``abc``).

    A cache entry's data file, its side files (``abc.failed.json``) and their temporaries share
    one key, and so one lock.
    """
    return name.lstrip(".").split(".", 1)[0]


def lock_path(path: str | Path) -> Path:
    """The lock file guarding the entry of ``path``."""
    path = Path(path)
    return path.with_name(f".{entry_key(path.name)}.lock")


_guard = threading.Lock()
_thread_locks: dict[str, threading.Lock] = {}


def _thread_lock(lock_file: Path) -> threading.Lock:
    with _guard:
        return _thread_locks.setdefault(str(lock_file.absolute()), threading.Lock())


def _flock(lock_file: Path, blocking: bool) -> int | None:
    """An open descriptor holding an exclusive flock on ``lock_file``; None if busy (non-blocking)."""
    while True:
        fd = os.open(lock_file, os.O_RDWR | os.O_CREAT, 0o666)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | (0 if blocking else fcntl.LOCK_NB))
            same = os.fstat(fd).st_ino == os.stat(lock_file).st_ino
        except BlockingIOError:
            os.close(fd)
            return None
        except FileNotFoundError:
            same = False
        except BaseException:
            os.close(fd)
            raise
        if same:
            return fd
        # The entry was cleared (its lock file unlinked) while we waited: lock the new file.
        os.close(fd)


@contextlib.contextmanager
def locked(path: str | Path, blocking: bool = True) -> Iterator[bool]:
    """Hold the lock of ``path``'s entry; yields True, or False when ``blocking`` is off and it is busy.

    Threads of this process and other processes on the machine exclude each other. The lock is
    released when the block ends, whatever way it ends; a killed process's flock goes with it.
    Not reentrant: a thread that holds it and asks again with ``blocking=False`` gets False.
    """
    lock_file = lock_path(path)
    thread_lock = _thread_lock(lock_file)
    if not thread_lock.acquire(blocking):
        yield False
        return
    try:
        fd = _flock(lock_file, blocking) if fcntl is not None else -1
        if fd is None:
            yield False
            return
        try:
            yield True
        finally:
            if fd >= 0:
                os.close(fd)  # closing the descriptor releases the flock
    finally:
        thread_lock.release()


def remove_unlocked_temporaries(folder: str | Path, own: str | Path | None = None) -> int:
    """Delete temporaries whose entry nobody is building; returns the bytes freed.

    Only for folders where every writer holds the entry's :func:`locked` while it writes (the
    image and face caches): a temporary whose lock is free was left by a killed writer, at any
    age. ``own`` is an entry whose lock the caller already holds; its temporaries go too.
    """
    folder, freed = Path(folder), 0
    own_key = entry_key(Path(own).name) if own is not None else None
    for tmp in list(folder.iterdir()) if folder.is_dir() else []:
        target = temporary_target(tmp)
        if target is None:
            continue
        if entry_key(target.name) == own_key:
            freed += remove_file(tmp)
            continue
        with locked(target, blocking=False) as free:
            if free:
                freed += remove_file(tmp)
    return freed


def remove_file(path: Path) -> int:
    """Remove ``path``; the bytes it held (0 if it was already gone or cannot be removed)."""
    try:
        size = path.stat().st_size
        path.unlink()
        return size
    except OSError:
        return 0


def read_small_text(path: str | Path, what: str, max_bytes: int, error: type[UserError] = UserError) -> str:
    """The text of a small UTF-8 file the user named (a recipe, a search space), or ``error``
    naming the file and what is wrong: missing, a folder, too big to be a ``what``, not UTF-8
    text, unreadable. Nothing of the file's content goes into a message."""
    path = Path(path)
    try:
        if not path.is_file():
            raise error(f"{path}: {what} file does not exist" if not path.exists() else f"{path}: is a folder, not "
                        f"{a(what)} file")
        size = path.stat().st_size
        if size > max_bytes:
            raise error(f"{path}: {size:,} bytes is too big to be {a(what)} (at most {max_bytes:,})")
        return path.read_bytes().decode("utf-8-sig")
    except UnicodeDecodeError:
        raise error(f"{path}: not {a(what)}: not UTF-8 text") from None
    except OSError as exc:
        raise error(f"{path}: cannot be read ({exc.strerror})") from None
