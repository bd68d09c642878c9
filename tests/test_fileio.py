"""Atomic writes with unique temporaries, entry locks, and sweeping what killed writers left."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from core import fileio
from core.fileio import (atomic_path, atomic_write, locked, remove_unlocked_temporaries, stale_temporaries,
                         temporary_path, temporary_target)
from threads import held_elsewhere

ROOT = Path(__file__).resolve().parents[1]


def _leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if ".tmp" in p.name)


def test_atomic_write_replaces_the_file_and_leaves_no_temporary(tmp_path):
    target = tmp_path / "a.json"
    atomic_write(target, "first")
    atomic_write(target, b"second")
    assert target.read_text() == "second"
    assert _leftovers(tmp_path) == []


def test_a_failed_or_interrupted_write_keeps_the_old_file_and_removes_its_temporary(tmp_path):
    target = tmp_path / "sub.csv"
    target.write_text("old")
    for exc in (ValueError("disk full"), KeyboardInterrupt()):
        with pytest.raises(type(exc)):
            with atomic_path(target) as tmp:
                tmp.write_text("half")
                raise exc
        assert target.read_text() == "old"
        assert _leftovers(tmp_path) == []


def test_temporary_names_differ_per_thread_and_call_and_name_their_target(tmp_path):
    target = tmp_path / "status.json"
    names = [temporary_path(target), temporary_path(target)]
    other = threading.Thread(target=lambda: names.append(temporary_path(target)))
    other.start()
    other.join()
    assert len(set(names)) == 3
    assert {temporary_target(n) for n in names} == {target}
    assert str(threading.get_ident()) in names[0].name and str(os.getpid()) in names[0].name
    assert temporary_target(tmp_path / "status.json") is None


def test_threads_writing_one_file_at_once_never_collide(tmp_path):
    # With a temporary named by the pid alone, one thread renamed another's file away and
    # the second got FileNotFoundError.
    target, errors = tmp_path / "ACTIVE.json", []
    start = threading.Barrier(8)

    def write(i: int) -> None:
        start.wait()
        try:
            for _ in range(20):
                atomic_write(target, f"writer {i} " * 1000)
        except Exception as exc:  # noqa: BLE001 - collected and asserted below
            errors.append(exc)

    threads = [threading.Thread(target=write, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    words = target.read_text().split()
    assert len(words) == 2000 and len(set(words)) == 2  # one writer's whole text, not a mix
    assert _leftovers(tmp_path) == []


def test_stale_temporaries_are_the_old_ones_only(tmp_path):
    old = temporary_path(tmp_path / "a.npy")
    fresh = temporary_path(tmp_path / "b.npy")
    for p in (old, fresh, tmp_path / "c.npy"):
        p.write_bytes(b"x")
    past = time.time() - 7200
    os.utime(old, (past, past))
    os.utime(tmp_path / "c.npy", (past, past))  # old but not a temporary
    assert stale_temporaries(tmp_path, older_than_s=3600) == [old]


def test_lock_excludes_other_threads_and_other_processes(tmp_path):
    entry = tmp_path / "abc.npy"
    probe = ("import sys; from core.fileio import locked\n"
             "with locked(sys.argv[1], blocking=False) as got: print(got)")

    def other_process_gets_it() -> bool:
        out = subprocess.run([sys.executable, "-c", probe, str(entry)], cwd=ROOT, capture_output=True,
                             text=True, check=True)
        return out.stdout.strip() == "True"

    def other_thread_gets_it() -> bool:
        got = []

        def probe_here() -> None:
            with locked(entry, blocking=False) as free:
                got.append(free)

        t = threading.Thread(target=probe_here)
        t.start()
        t.join()
        return got[0]

    with locked(entry) as held:
        assert held
        assert not other_thread_gets_it()
        assert not other_process_gets_it()
        # the failure note shares the cache's key, so the same lock
        with locked(tmp_path / "abc.failed.json", blocking=False) as note_free:
            assert not note_free
    assert other_process_gets_it()


def test_a_lock_file_removed_while_held_is_recreated_for_the_next_holder(tmp_path):
    entry = tmp_path / "k.csv"
    with locked(entry):
        fileio.lock_path(entry).unlink()  # what clearing an entry does while holding its lock
    with locked(entry, blocking=False) as held:
        assert held and fileio.lock_path(entry).is_file()


def test_unlocked_temporaries_are_removed_and_those_being_written_are_kept(tmp_path):
    killed = temporary_path(tmp_path / "dead.npy")
    busy = temporary_path(tmp_path / "live.npy")
    mine = temporary_path(tmp_path / "own.npy")
    for p in (killed, busy, mine):
        p.write_bytes(b"1234")
    with held_elsewhere(tmp_path / "live.npy"), locked(tmp_path / "own.npy"):
        freed = remove_unlocked_temporaries(tmp_path, own=tmp_path / "own.npy")
    assert freed == 8
    assert not killed.exists() and not mine.exists() and busy.exists()
