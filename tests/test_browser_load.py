"""Five browser sessions at once on one server, while a tiny training runs in the background.

Each session visits every page in chromium; one chooses SMOTE on the Oversampling page (which
builds the preprocessed-image cache) while the others move on. Meanwhile ``python -m core
train`` (started through core.launch, as the Train page does) writes its run directory and
its own image cache into the same folders. Afterwards: no session showed an exception or an
error, the training finished, and no temporary file (``*.tmp*``) is left in the cache or runs
folder.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

from core import launch
from core.recipe import Recipe
from core.training import TrainConfig
from tests.served_app import CHROMIUM, FLAGS, errors_shown, require_browser, served_app

SESSIONS = 5
# Sidebar link -> texts, one of which the page shows once its script run has finished.
PAGES = {
    "Overview": ("Sample images",),
    "Faces and crop": ("Crops on random samples from every class",),
    "Preprocessing": ("Across classes",),
    "Augmentation": ("random training draws of the same image",),
    "Oversampling": ("Validation images (unchanged)",),
    "Train & evaluate": ("The same training from the command line", "Top losses"),
    "Runs": ("No runs yet", "The command that repeats this run"),
}
PAGE_TIMEOUT = 120  # seconds for all sessions to finish one page on a loaded 2-core machine
TRAIN_TIMEOUT = 120


def finished(page, markers: tuple[str, ...], last: dict) -> bool:
    """Whether ``page`` shows one of ``markers``, no skeleton, and the same text as on the last poll."""
    text = page.locator('[data-testid="stMain"]').inner_text()
    shown = any(m in text for m in markers) and page.locator('[data-testid="stSkeleton"]').count() == 0
    still = shown and last.get(page) == text
    last[page] = text
    return still


def wait_all(pages: list, title: str, markers: tuple[str, ...] | None = None) -> None:
    """Wait until every session has finished ``title``; fail on any exception box or error."""
    markers = markers or PAGES[title]
    waiting, last = list(pages), {}
    deadline = time.monotonic() + PAGE_TIMEOUT
    while waiting:
        for page in list(waiting):
            assert not errors_shown(page), f"{title}, session {pages.index(page)}: {errors_shown(page)}"
            if finished(page, markers, last):
                waiting.remove(page)
        assert time.monotonic() < deadline, f"{title}: sessions {[pages.index(p) for p in waiting]} not done"
        pages[0].wait_for_timeout(400)


def go(page, title: str) -> None:
    page.locator('[data-testid="stSidebarNav"] a', has_text=title).first.click()


def synthetic_images(page) -> int:
    metric = page.locator('[data-testid="stMetric"]', has_text="Synthetic (SMOTE) images")
    return int(metric.locator('[data-testid="stMetricValue"]').inner_text().replace(",", ""))


def choose_smote(page) -> None:
    """Pick SMOTE on the Oversampling page and wait for its synthetic images."""
    page.locator('[data-testid="stRadio"]', has_text="Method").get_by_text("SMOTE", exact=True).click()
    deadline = time.monotonic() + PAGE_TIMEOUT
    while not (page.get_by_text("Synthetic images and their parents").count() and synthetic_images(page) > 0):
        assert not errors_shown(page), errors_shown(page)
        assert time.monotonic() < deadline, "SMOTE's synthetic images not shown"
        page.wait_for_timeout(400)


def start_training(data: Path, runs: Path, cache: Path) -> launch.Launch:
    cfg = TrainConfig(data=str(data), out=str(runs), model="smallcnn", epochs=1, batch_size=32, lr=2e-3)
    return launch.start(cfg, Recipe().replace(input_size=(32, 48)), runs, env=dict(os.environ, MASKLAB_CACHE=str(cache)))


def temporaries(*folders: Path) -> list[Path]:
    return [p for folder in folders for p in folder.rglob("*") if ".tmp" in p.name]


def test_five_sessions_and_a_training_at_once(demo_root, tmp_path):
    require_browser()
    from playwright.sync_api import sync_playwright

    runs, cache = tmp_path / "runs", tmp_path / "cache"
    env = {"MASKLAB_DATA": str(demo_root / "train"), "MASKLAB_RUNS": str(runs), "MASKLAB_CACHE": str(cache)}
    with served_app(env, tmp_path / "server.log") as url, sync_playwright() as p:
        record = start_training(demo_root / "train", runs, cache)
        browser = p.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=FLAGS)
        try:
            pages = [browser.new_context(viewport={"width": 1280, "height": 900}).new_page() for _ in range(SESSIONS)]
            for page in pages:
                page.set_default_timeout(60_000)
                page.goto(url)
            wait_all(pages, "Overview")
            for title in list(PAGES)[1:]:
                for page in pages:
                    go(page, title)
                if title == "Oversampling":
                    wait_all(pages[:1], title)
                    choose_smote(pages[0])  # while the other sessions run the same page
                wait_all(pages, title)
            now = launch.poll(record)
            deadline = time.monotonic() + TRAIN_TIMEOUT
            while now.live:
                assert time.monotonic() < deadline, f"training still {now.state} after {TRAIN_TIMEOUT} s"
                time.sleep(0.5)
                now = launch.poll(record)
            go(pages[1], "Runs")  # the finished run, read while the other sessions stay open
            wait_all(pages[1:2], "Runs", ("The command that repeats this run",))
        finally:
            browser.close()
    assert now.state == "done", (now.message, now.log_tail)
    assert not temporaries(cache, runs)
    assert "Traceback" not in (tmp_path / "server.log").read_text()
