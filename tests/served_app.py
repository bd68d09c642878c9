"""`streamlit run explorer/app.py` on a free local port, for the real-browser tests."""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Iterator

import pytest

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = Path("/usr/bin/chromium")
FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
         "--disable-sync", "--no-first-run"]


def require_browser() -> None:
    """Skip, saying why, where Debian's chromium is missing (``make test`` installs it when run as
    root). Under CI (``CI=true``) a missing browser fails instead: CI must run the browser tests.
    playwright is a required test dependency (requirements-dev.txt), so it is imported, not skipped."""
    import playwright.sync_api  # noqa: F401 - required: a missing install is an error, not a skip

    if not CHROMIUM.exists():
        why = (f"{CHROMIUM} is missing: `make test` installs Debian's chromium when run as root "
               "(apt-get install chromium); the browser tests need it")
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(why + " (CI=true: the browser tests may not be skipped here)")
        pytest.skip(why)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def served_app(env: dict[str, str], log: Path) -> Iterator[str]:
    """The app served with ``env`` added to this process's environment; yields its URL and
    always stops the server afterwards."""
    port = free_port()
    env = dict(os.environ, **env)
    env.pop("MASKLAB_RAISE", None)
    with open(log, "w") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "streamlit", "run", str(ROOT / "explorer" / "app.py"), "--server.headless", "true",
             "--server.port", str(port), "--server.address", "127.0.0.1", "--browser.gatherUsageStats", "false"],
            cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)
        try:
            url = f"http://127.0.0.1:{port}"
            deadline = time.monotonic() + 90
            while True:
                if proc.poll() is not None:
                    pytest.fail(f"streamlit exited with {proc.returncode}: {log.read_text()}")
                try:
                    urllib.request.urlopen(f"{url}/_stcore/health", timeout=2)
                    break
                except OSError:
                    if time.monotonic() > deadline:
                        pytest.fail("streamlit did not answer /_stcore/health within 90 s")
                    time.sleep(0.5)
            yield url
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def errors_shown(page) -> list[str]:
    """Exception boxes and error alerts on a page (what no test run should show)."""
    boxes = page.locator('[data-testid="stException"]').all_inner_texts()
    return boxes + page.locator('[data-testid="stAlertContentError"]').all_inner_texts()
