"""Concurrency helpers for the tests: several sessions at once, a lock held elsewhere."""

from __future__ import annotations

import contextlib
import threading
from pathlib import Path
from typing import Callable, Iterator

from core.fileio import locked


def at_once(call: Callable[[], object], n: int = 3) -> tuple[list, list[BaseException]]:
    """Run ``call`` in ``n`` threads released together (like app sessions, threads of one
    process); (results, errors) once all have ended."""
    start, results, errors = threading.Barrier(n), [], []

    def session() -> None:
        start.wait()
        try:
            results.append(call())
        except Exception as exc:  # noqa: BLE001 - returned to the test, which asserts on it
            errors.append(exc)

    threads = [threading.Thread(target=session) for _ in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return results, errors


@contextlib.contextmanager
def held_elsewhere(path: Path) -> Iterator[None]:
    """``path``'s entry lock held by another thread (a build in progress) for the block."""
    holding, release = threading.Event(), threading.Event()

    def builder() -> None:
        with locked(path):
            holding.set()
            release.wait()

    t = threading.Thread(target=builder)
    t.start()
    holding.wait()
    try:
        yield
    finally:
        release.set()
        t.join()
