"""How many cores this process may use, and how many worker processes a job gets: the one
answer every parallel step reads (image cache, face scan, health scan, demo writer, torch threads)."""

from __future__ import annotations

import math
import os
from multiprocessing import get_context
from typing import Any, Callable


def usable_cores() -> int:
    """Cores this process may run on (its CPU affinity, e.g. a container's share), at least 1."""
    try:
        return len(os.sched_getaffinity(0)) or 1
    except (AttributeError, OSError):  # no affinity API (macOS, Windows)
        return os.cpu_count() or 1


def pool_size(n: int, workers: int | None, parallel_min: int, chunk: int) -> int:
    """Processes for ``n`` items in tasks of ``chunk``: ``workers`` when given (0 or None: every
    usable core), but one (no pool) below ``parallel_min`` items, where starting workers costs
    more than it saves, and never more than there are tasks."""
    if workers:
        return workers
    if n < parallel_min:
        return 1
    return max(1, min(usable_cores(), math.ceil(n / chunk)))


def map_items(fn: Callable[[Any], Any], items: list, *, workers: int | None, parallel_min: int, chunk: int,
              progress: Callable[[int, int], None] | None = None, initializer: Callable[[], None] | None = None,
              ) -> list:
    """``[fn(x) for x in items]``, in worker processes when there are enough items (:func:`pool_size`),
    reporting progress(done, total) about every ``chunk`` items.

    The pool is spawned, not forked: forking a threaded process (the Streamlit server, AppTest)
    can copy a held lock into the child and hang it. ``fn`` must be picklable (a module-level
    function or a partial of one); ``initializer`` runs once in each worker (for per-process
    objects such as a detector).
    """
    n = len(items)
    processes = pool_size(n, workers, parallel_min, chunk)
    every = max(1, chunk // 2)
    results: list = []

    def tick(i: int) -> None:
        if progress and (i % every == 0 or i == n - 1):
            progress(i + 1, n)

    if processes == 1:
        for i, item in enumerate(items):
            results.append(fn(item))
            tick(i)
        return results
    with get_context("spawn").Pool(processes, initializer) as pool:
        for i, result in enumerate(pool.imap(fn, items, chunksize=chunk)):
            results.append(result)
            tick(i)
    return results
