"""The app in a real browser: Playwright driving Debian's Chromium (no browser download).

Screenshots of each tab go to test-artifacts/ for a person to look at.
"""

import os
from pathlib import Path

import pytest
from conftest import ROOT
from PIL import Image

CHROMIUM = "/usr/bin/chromium"
ARTIFACTS = ROOT / "test-artifacts"

pytestmark = pytest.mark.browser
if not Path(CHROMIUM).exists():
    if os.environ.get("CI"):
        raise RuntimeError("CI must install Debian's chromium (apt-get install chromium) for the browser tests")
    pytest.skip("Debian's chromium is not installed (apt-get install chromium)", allow_module_level=True)
sync_api = pytest.importorskip("playwright.sync_api")

from test_app import app_url, checkpoints  # noqa: E402,F401 - the launched app fixtures


@pytest.fixture(scope="module")
def page(app_url):  # noqa: F811
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=[
            "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
            "--disable-component-update", "--disable-sync"])
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        page.goto(app_url, wait_until="networkidle")
        yield page
        browser.close()


def _upload(page, tab_panel, path):
    tab_panel.locator("input[type=file]").first.set_input_files(str(path))


def test_tabs_uploads_slider_and_metrics(page, tmp_path, photo):
    ARTIFACTS.mkdir(exist_ok=True)
    img = tmp_path / "photo.png"
    Image.fromarray(photo).save(img)

    page.get_by_role("tab", name="Compare with bicubic").click()
    panel = page.locator("#tab-compare")
    _upload(panel, panel, img)
    panel.get_by_role("button", name="Compare").click()
    page.wait_for_function("() => /model\\s+\\d+\\.\\d+/.test(document.querySelector('#metrics').innerText)",
                           timeout=60_000)
    text = page.locator("#metrics").inner_text()
    assert "PSNR" in text and "bicubic" in text
    assert panel.locator("img").count() >= 3  # slider images and zoomed crops
    page.screenshot(path=str(ARTIFACTS / "tab-compare.png"), full_page=True)

    page.get_by_role("tab", name="Flare removal").click()
    panel = page.locator("#tab-flare")
    _upload(panel, panel, img)
    panel.get_by_role("button", name="Remove flare").click()
    panel.get_by_text("Full-resolution PNG").wait_for()
    panel.locator("a[download], a[href*='.png']").first.wait_for(timeout=60_000)
    page.screenshot(path=str(ARTIFACTS / "tab-flare.png"), full_page=True)

    page.get_by_role("tab", name="Video super-resolution").click()
    panel = page.locator("#tab-video")
    panel.get_by_text("Limits: up to").wait_for()
    assert "60 s" in panel.inner_text()
    page.screenshot(path=str(ARTIFACTS / "tab-video.png"), full_page=True)
    for name in ("tab-compare.png", "tab-flare.png", "tab-video.png"):
        assert (ARTIFACTS / name).stat().st_size > 10_000
