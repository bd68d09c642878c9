"""How many cores this process may use, and how many worker processes a job gets: the one
answer every parallel step reads (image cache, face scan, health scan, demo writer, torch threads)."""

from __future__ import annotations

import math
import os


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
