"""Regenerate the README screenshots in docs/screenshots/.

Uses two public-domain photos from Debian packages, fetched into the ignored
.cache/samples/ by scripts/fetch-samples.sh (which this runs): citrus-fruits.jpg (US
Department of Agriculture) and kites-bw.png (Riku Leino's Scribus template). No photo is
kept in the repository; the screenshots show these public-domain photos only. Needs
Debian's chromium and playwright in .venv (the dev requirements):

    .venv/bin/python scripts/screenshots.py
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

from PIL import Image
from playwright.sync_api import sync_playwright

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # the app's package, not installed
from yolocam_app.serve import child_server  # noqa: E402

OUT = ROOT / "docs" / "screenshots"
ARGS = [
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
CAPTION = "[data-testid='stImageCaption']:has-text('stride')"


def choose_sample(page, name: str) -> None:
    """Pick a sample photo in the sidebar and wait for its heatmaps."""
    page.get_by_test_id("stSelectbox").filter(has_text="Sample").click()
    page.get_by_role("option", name=name, exact=True).click()
    page.get_by_text(f"{name} ·").first.wait_for(timeout=120_000)


def main() -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    subprocess.run(["bash", str(ROOT / "scripts" / "fetch-samples.sh")], check=True)
    with child_server() as (url, _), sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path="/usr/bin/chromium", args=ARGS)
        page = browser.new_page(viewport={"width": 1400, "height": 1250})
        page.goto(url)
        page.locator(CAPTION).first.wait_for(timeout=180_000)
        choose_sample(page, "kites-bw.png")
        page.locator("[data-testid='yolocamHeatView']").first.wait_for(timeout=60_000)
        time.sleep(2)
        page.screenshot(path=str(OUT / "explore.png"))
        choose_sample(page, "citrus-fruits.jpg")
        page.get_by_text("Compare methods", exact=True).first.click()
        page.get_by_role("heading", name="Compare CAM methods").wait_for(timeout=60_000)
        page.get_by_text("citrus-fruits.jpg · the target's box highlighted").wait_for(
            timeout=120_000
        )
        page.wait_for_function(
            "document.querySelectorAll(\"[data-testid='stImage']\").length >= 15",
            timeout=120_000,
        )
        time.sleep(2)
        page.screenshot(path=str(OUT / "compare.png"))
        page.get_by_text("Model", exact=True).first.click()
        page.get_by_role("heading", name="Model · yolov4-tiny").wait_for(timeout=60_000)
        time.sleep(1)
        page.screenshot(path=str(OUT / "model.png"))
        browser.close()
    for shot in OUT.glob("*.png"):
        image = Image.open(shot).convert("RGB")
        image = image.quantize(colors=256, method=Image.Quantize.MEDIANCUT)
        image.save(shot, optimize=True)
        print(shot.relative_to(ROOT), f"{shot.stat().st_size // 1024} KB")


if __name__ == "__main__":
    main()
