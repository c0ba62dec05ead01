"""Regenerate the README screenshots in docs/screenshots/.

Uses public-domain / CC0 photos from scikit-image's bundled sample data (the
astronaut Eileen Collins, NASA, public domain; coffee, CC0 by Rachel Michetti), so
that no third-party photo is committed. Needs Debian's chromium, playwright and
scikit-image in .venv:

    .venv/bin/pip install scikit-image && .venv/bin/python scripts/screenshots.py
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from PIL import Image
from playwright.sync_api import sync_playwright
from skimage import data

ROOT = Path(__file__).resolve().parents[1]
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


def main() -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    photos = Path(tempfile.mkdtemp())
    Image.fromarray(data.astronaut()).save(photos / "astronaut.png")
    Image.fromarray(data.coffee()).save(photos / "coffee.png")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = subprocess.Popen(
        [sys.executable, "-m", "streamlit", "run", "app.py", "--server.port", str(port)],
        cwd=ROOT,
        env=dict(os.environ),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        time.sleep(5)
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path="/usr/bin/chromium", args=ARGS)
            page = browser.new_page(viewport={"width": 1400, "height": 1100})
            page.goto(f"http://127.0.0.1:{port}")
            caption = "[data-testid='stImageCaption']:has-text('stride')"
            page.locator(caption).first.wait_for(timeout=180_000)
            page.get_by_role("radiogroup", name="Image").get_by_text("Upload", exact=True).click()
            upload = (
                page.get_by_test_id("stFileUploader")
                .filter(has_text="Photo (JPEG")
                .locator("[data-testid='stFileUploaderDropzoneInput']")
            )
            upload.set_input_files(str(photos / "coffee.png"))
            page.get_by_text("coffee.png ·").first.wait_for(timeout=60_000)
            page.locator(".js-plotly-plot").first.wait_for(timeout=60_000)
            time.sleep(2)
            page.screenshot(path=str(OUT / "explore.png"))
            upload.set_input_files(str(photos / "astronaut.png"))
            page.get_by_text("astronaut.png ·").first.wait_for(timeout=60_000)
            page.get_by_text("Compare methods", exact=True).first.click()
            page.get_by_role("heading", name="Compare CAM methods").wait_for(timeout=60_000)
            page.wait_for_function(
                "document.querySelectorAll(\"[data-testid='stImage']\").length >= 12",
                timeout=120_000,
            )
            time.sleep(2)
            page.screenshot(path=str(OUT / "compare.png"))
            page.get_by_text("Model", exact=True).first.click()
            page.get_by_role("heading", name="Model · yolov4-tiny").wait_for(timeout=60_000)
            time.sleep(1)
            page.screenshot(path=str(OUT / "model.png"))
            browser.close()
    finally:
        server.terminate()
        server.wait(timeout=30)
    for shot in OUT.glob("*.png"):
        image = Image.open(shot).convert("RGB")
        image = image.quantize(colors=256, method=Image.Quantize.MEDIANCUT)
        image.save(shot, optimize=True)
        print(shot.relative_to(ROOT), f"{shot.stat().st_size // 1024} KB")


if __name__ == "__main__":
    main()
