"""Where caches go. One spot, so tests (and later multi-rank runs) can redirect it."""

from __future__ import annotations

import os
from pathlib import Path


def cache_dir(sub: str = "") -> Path:
    """The cache folder (``$MASKLAB_CACHE``, else ``~/.cache/masklab``), created on demand."""
    base = Path(os.environ.get("MASKLAB_CACHE") or Path.home() / ".cache" / "masklab")
    path = base / sub if sub else base
    path.mkdir(parents=True, exist_ok=True)
    return path
