"""Screenshots of the app's three tabs for README.md, with the shipped weights.

    python docs/make_screenshots.py

Launches app.py on 127.0.0.1, drives Debian's Chromium with Playwright (no browser
download), runs each tab on the made examples, and writes docs/screenshot-*.png.
"""

import socket
import sys
from pathlib import Path

from playwright.sync_api import sync_playwright

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import app  # noqa: E402


ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
        "--disable-component-update", "--disable-sync"]


def main() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    demo = app.build()
    demo.launch(server_name="127.0.0.1", server_port=port, prevent_thread_lock=True, quiet=True)
    out = ROOT / "docs"
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path="/usr/bin/chromium", headless=True, args=ARGS)
            page = browser.new_page(viewport={"width": 1280, "height": 860})
            page.goto(demo.local_url, wait_until="networkidle")

            page.get_by_role("tab", name="Compare with bicubic").click()
            panel = page.locator("#tab-compare")
            panel.locator("input[type=file]").first.set_input_files(str(ROOT / "examples" / "street-sign.png"))
            panel.get_by_role("button", name="Compare").click()
            page.wait_for_function("() => /model\\s+\\d+\\.\\d+/.test(document.querySelector('#metrics').innerText)",
                                   timeout=120_000)
            page.wait_for_timeout(1500)
            page.screenshot(path=str(out / "screenshot-compare.png"))

            page.get_by_role("tab", name="Flare removal").click()
            panel = page.locator("#tab-flare")
            if panel.get_by_role("button", name="Remove flare").is_enabled():
                panel.locator("input[type=file]").first.set_input_files(
                    str(ROOT / "examples" / "flare" / "night-lamps.png"))
                panel.get_by_role("button", name="Remove flare").click()
                panel.locator("a[download], a[href*='.png']").first.wait_for(timeout=120_000)
                page.wait_for_timeout(1500)
            page.screenshot(path=str(out / "screenshot-flare.png"))

            page.get_by_role("tab", name="Video super-resolution").click()
            panel = page.locator("#tab-video")
            clip = ROOT / "examples" / "video" / "street-pan.mp4"  # the tab's own example (CC0)
            panel.locator("input[type=file]").first.set_input_files(str(clip))
            panel.get_by_role("button", name="Upscale").click()
            page.locator("#video-out video").wait_for(timeout=180_000)
            page.wait_for_timeout(2000)
            page.screenshot(path=str(out / "screenshot-video.png"))
            browser.close()
    finally:
        demo.close()
    print("wrote", sorted(p.name for p in out.glob("screenshot-*.png")))


if __name__ == "__main__":
    main()
