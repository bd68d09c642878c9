"""Shared fixtures. Nothing here touches the network or the user's ~/.cache."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


@pytest.fixture(scope="session", autouse=True)
def _isolated_cache(tmp_path_factory):
    """Every cache the code writes (faces, preprocessed images) goes to a temp folder."""
    cache = tmp_path_factory.mktemp("masklab-cache")
    old = os.environ.get("MASKLAB_CACHE")
    os.environ["MASKLAB_CACHE"] = str(cache)
    yield cache
    if old is None:
        os.environ.pop("MASKLAB_CACHE", None)
    else:
        os.environ["MASKLAB_CACHE"] = old


@pytest.fixture(scope="session")
def demo_root(tmp_path_factory) -> Path:
    """A small demo dataset (30 train people, 10 eval people), made once per session."""
    from core.demo import make_demo

    out = tmp_path_factory.mktemp("demo")
    make_demo(out, people=30, seed=0, eval_people=10)
    return out
