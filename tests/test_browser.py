"""One real browser run: `streamlit run explorer/app.py`, every page, a slider moved by keyboard, and a
tiny training started from the Train page and followed to its results."""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

import pytest

from core.recipe import recipe_params, starter_recipe
from tests.served_app import CHROMIUM, FLAGS, require_browser, served_app

START_CONTRAST = starter_recipe("train").enhance.contrast
CONTRAST_STEP = recipe_params()["enhance.contrast"].step

# Sidebar link -> (URL path, text the page shows once its script run has finished).
PAGES = {
    "Overview": ("", "Sample images"),
    "Faces and crop": ("faces", "Crops on random samples from every class"),
    "Data health": ("health", "Leave flagged photos out of training"),
    "Preprocessing": ("preprocess", "Across classes"),
    "Augmentation": ("augment", "random training draws of the same image"),
    "Oversampling": ("sampling", "Validation images (unchanged)"),
    "Train & evaluate": ("train", "No training started from the app"),
    "Runs": ("runs", "No runs yet"),
    "Label issues": ("label_issues", "No finished K-fold run"),
    "Sweep": ("sweep", "No sweep in this folder yet"),
}
SCREENSHOT_COPY = Path("/tmp/explorer_screenshot.png")  # for a person to look at
TRAIN_SCREENSHOT = Path("/tmp/explorer_train.png")
TRAIN_TIMEOUT = 180  # seconds for the tiny training to start, run and show its results


@pytest.fixture
def server(demo_root, tmp_path):
    """The app served on a free port over the demo dataset; always stopped afterwards."""
    require_browser()
    env = {"MASKLAB_DATA": str(demo_root / "train"), "MASKLAB_RUNS": str(tmp_path / "runs")}
    with served_app(env, tmp_path / "server.log") as url:
        yield url


def wait_idle(page, title: str, timeout: float = 180) -> None:
    """Wait until the page shows its last text and stops changing (or shows an exception).

    The app's status widget is not a reliable signal in headless runs, so this waits for the
    page's own final text, then for the main area (text, images, skeletons) to stay still.
    """
    main = page.locator('[data-testid="stMain"]')
    marker = PAGES[title][1]
    deadline = time.monotonic() + timeout
    while marker not in main.inner_text():
        assert page.locator('[data-testid="stException"]').count() == 0, f"{title}: exception box shown"
        assert time.monotonic() < deadline, f"{title}: {marker!r} not shown after {timeout} s"
        page.wait_for_timeout(300)
    last, still = None, 0
    while still < 4:
        now = (main.inner_text(), page.locator("img").count(), page.locator('[data-testid="stSkeleton"]').count(),
               page.locator(".js-plotly-plot").count())
        still = still + 1 if now == last and now[2] == 0 else 0
        last = now
        assert time.monotonic() < deadline, f"{title}: still changing after {timeout} s"
        page.wait_for_timeout(400)


def assert_no_error(page, title: str) -> None:
    assert page.locator('[data-testid="stException"]').count() == 0, f"{title}: exception box shown"
    alerts = page.locator('[data-testid="stAlertContentError"]').all_inner_texts()
    assert not alerts, f"{title}: error shown: {alerts}"


def after_image_src(page) -> str:
    after = page.locator('[data-testid="stImage"]', has=page.locator("text=/^After:/")).first
    return after.locator("img").get_attribute("src")


def test_every_page_and_a_live_slider_in_chromium(server, tmp_path):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=FLAGS)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            page.set_default_timeout(120_000)
            # A page URL as the very first request: app.py runs and st.navigation picks the
            # page from the URL (no pages/ folder, so no page file ever runs on its own).
            page.goto(f"{server}/augment")
            wait_idle(page, "Augmentation")
            assert_no_error(page, "Augmentation")
            assert "Dataset folder" in page.locator('[data-testid="stSidebar"]').inner_text()
            for title, (path, _) in PAGES.items():
                page.locator('[data-testid="stSidebarNav"] a', has_text=title).first.click()
                wait_idle(page, title)
                assert_no_error(page, title)
                assert page.url == f"{server}/{path}"

            # Preprocessing: move the contrast slider with the keyboard; the "after" image follows.
            page.locator('[data-testid="stSidebarNav"] a', has_text="Preprocessing").first.click()
            wait_idle(page, "Preprocessing")
            before = after_image_src(page)
            slider = page.locator('[data-testid="stSlider"]', has_text="Contrast").locator('input[type="range"]')
            slider.focus()
            for _ in range(4):
                page.keyboard.press("ArrowRight")
            deadline = time.monotonic() + 60
            while after_image_src(page) == before:
                assert time.monotonic() < deadline, "the after image did not change after the slider moved"
                page.wait_for_timeout(300)
            wait_idle(page, "Preprocessing")
            moved = round(START_CONTRAST + 4 * CONTRAST_STEP, 2)  # four steps right of the starter's value
            assert slider.get_attribute("aria-valuetext") == f"{moved:.2f}"
            snippet = page.locator('[data-testid="stCode"]').last.inner_text()
            assert f'"contrast": {moved:g}' in snippet
            assert_no_error(page, "Preprocessing")
            # The slider reran only the page's fragment, not the sidebar: its download still holds the new recipe.
            with page.expect_download() as download:
                page.locator('[data-testid="stSidebar"] [data-testid="stDownloadButton"] button').first.click()
            assert json.loads(Path(download.value.path()).read_text())["enhance"]["contrast"] == pytest.approx(moved)
            save_screenshot(page, tmp_path / "explorer.png", SCREENSHOT_COPY)

            train_from_the_page(page, tmp_path)
        finally:
            browser.close()


def save_screenshot(page, shot: Path, copy: Path) -> None:
    """The whole main area: Streamlit scrolls inside it, so grow the viewport to its height first."""
    size = page.viewport_size
    height = page.evaluate("document.querySelector('[data-testid=\"stMain\"]').scrollHeight")
    page.set_viewport_size({"width": size["width"], "height": max(size["height"], min(int(height), 8000))})
    page.wait_for_timeout(1000)
    page.screenshot(path=str(shot), full_page=True)
    page.set_viewport_size(size)
    try:
        shutil.copy(shot, copy)
    except OSError:
        pass


def train_from_the_page(page, tmp_path: Path) -> None:
    """Load a tiny recipe in the sidebar, pick smallcnn and 1 epoch, press Train & evaluate, and
    follow the background run until its results are on the page."""
    from core.recipe import Recipe

    recipe = Recipe().replace(input_size=(32, 48)).save(tmp_path / "tiny_recipe.json")
    sidebar = page.locator('[data-testid="stSidebar"]')
    sidebar.get_by_role("textbox", name="Recipe file path").fill(str(recipe))
    sidebar.get_by_role("textbox", name="Recipe file path").press("Enter")
    sidebar.get_by_role("button", name="Load", exact=True).click()
    page.wait_for_selector('[data-testid="stSidebar"] >> text=Loaded the recipe')

    page.locator('[data-testid="stSidebarNav"] a', has_text="Train & evaluate").first.click()
    wait_idle(page, "Train & evaluate")
    main = page.locator('[data-testid="stMain"]')
    assert "Input 32x48" in main.inner_text()  # the loaded recipe is what will be trained
    page.get_by_text("Command for these settings").click()  # open the expander with the command
    wait_for_text(page, "python -m core train --data", 30)
    model = page.locator('[data-testid="stSelectbox"]', has_text="Model")
    model.click()
    page.get_by_role("option", name="smallcnn", exact=True).click()
    for label, value in (("Epochs", "1"), ("Batch size", "32")):
        box = page.locator('[data-testid="stNumberInput"]', has_text=label).locator("input")
        box.fill(value)
        box.press("Enter")
        wait_for_text(page, f"--{label.lower().replace(' ', '-')} {value} ", 30)
    wait_for_text(page, "--model smallcnn --epochs 1 --batch-size 32", 30)

    page.get_by_role("button", name="Train & evaluate").click()
    wait_for_text(page, "The same training from the command line", 60)  # the live view of the launch
    wait_for_text(page, "Validation macro F1", TRAIN_TIMEOUT)  # results, after the background run
    wait_for_text(page, "Top losses", 60)
    assert_no_error(page, "Train & evaluate")
    assert page.locator('[data-testid="stDownloadButton"]', has_text="Download the best checkpoint").count() == 1
    assert page.locator(".js-plotly-plot").count() >= 3  # loss, macro F1, per-class F1
    # The confusion matrix is a clickable table (st.dataframe cell selection), with its cell's images below.
    assert main.get_by_text("Confusion matrix", exact=True).count() == 1
    assert page.locator('[data-testid="stDataFrame"]').count() >= 1
    assert main.get_by_text("correctly classified image(s)").count() + main.get_by_text("mistaken image(s)").count() >= 1
    page.get_by_role("button", name="Predict eval/ and make a submission").click()  # scored on eval/gt.csv
    wait_for_text(page, "Eval macro F1", 90)
    assert page.locator('[data-testid="stDownloadButton"]', has_text="Download submission.csv").count() == 1
    assert_no_error(page, "Train & evaluate")
    page.wait_for_timeout(1500)  # let the charts finish drawing
    save_screenshot(page, tmp_path / "explorer_train.png", TRAIN_SCREENSHOT)


def wait_for_text(page, text: str, timeout: float) -> None:
    main = page.locator('[data-testid="stMain"]')
    deadline = time.monotonic() + timeout
    while text not in main.inner_text():
        assert page.locator('[data-testid="stException"]').count() == 0, f"exception box while waiting for {text!r}"
        errors = page.locator('[data-testid="stAlertContentError"]').all_inner_texts()
        assert not errors, f"error shown while waiting for {text!r}: {errors}"
        assert time.monotonic() < deadline, f"{text!r} not shown after {timeout} s"
        page.wait_for_timeout(500)
