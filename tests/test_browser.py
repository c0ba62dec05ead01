"""The real app in a real browser: `streamlit run app.py` driven by Playwright in
Debian's Chromium. Prints the measured start-up and interaction times and the app's
peak memory with three sessions; saves screenshots under .cache/screenshots/."""

from __future__ import annotations

import os
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SHOTS = ROOT / ".cache" / "screenshots"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
OVERLAY = "[data-testid='stImageCaption']:has-text('stride')"

pytestmark = pytest.mark.browser


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmHWM in /proc status")


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """A fresh `streamlit run app.py` with an empty model cache (a cold start)."""
    if not Path(CHROMIUM).exists():
        pytest.fail("Chromium is missing: run scripts/test.sh (it installs Debian's chromium)")
    port = _free_port()
    env = dict(os.environ, XDG_CACHE_HOME=str(tmp_path_factory.mktemp("cold-cache")))
    log = tmp_path_factory.mktemp("log") / "streamlit.log"
    with open(log, "w") as out:
        proc = subprocess.Popen(
            [
                sys.executable, "-m", "streamlit", "run", "app.py",
                "--server.port", str(port), "--server.address", "127.0.0.1",
                "--server.headless", "true",
            ],
            cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT,
        )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            break
        except OSError:
            time.sleep(0.2)
    else:
        proc.kill()
        pytest.fail(f"streamlit did not start: {log.read_text()[-2000:]}")
    yield url, proc
    proc.terminate()
    proc.wait(timeout=30)


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    SHOTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as pw:
        chromium = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


def _open(browser, url):
    page = browser.new_page(viewport={"width": 1440, "height": 1000})
    start = time.perf_counter()
    page.goto(url)
    page.locator(OVERLAY).first.wait_for(timeout=120_000)
    return page, time.perf_counter() - start


def _overlay_captions(page) -> list[str]:
    return page.locator(OVERLAY).all_inner_texts()


def _wait_for_subheader(page, text: str, timeout: float = 60_000) -> float:
    start = time.perf_counter()
    page.get_by_role("heading", name=text).first.wait_for(timeout=timeout)
    return time.perf_counter() - start


def test_app_in_a_real_browser(server, browser, samples, tmp_path):
    url, proc = server
    page, cold = _open(browser, url)
    assert [c.split(" · score")[0] for c in _overlay_captions(page)] == [
        "13×13 · stride 32",
        "26×26 · stride 16",
    ]
    page.screenshot(path=str(SHOTS / "explore.png"), full_page=True)

    # Warm: a new session on the running server (model already in memory).
    page2, warm = _open(browser, url)
    page2.close()

    # Target changes: pick detections in turn, timing each until its heatmaps' heading
    # shows (the first pick of each also builds its full-size heatmaps).
    page.get_by_text("gradcam · person 0.99").first.wait_for()
    changes = []
    for k in (3, 0, 1, 2, 3, 0):  # bus.jpg has 6 detections at score ≥ 0.25
        page.locator("[data-testid='stSelectbox']").filter(has_text="Detection").click()
        option = page.get_by_role("option").nth(k)
        label = option.inner_text()  # e.g. "#3 bus 0.66 · 13×13"
        wanted = "gradcam · " + label.split(" ", 1)[1].rsplit(" · ", 1)[0]
        start = time.perf_counter()
        option.click()
        page.get_by_role("heading", name=wanted).first.wait_for(timeout=60_000)
        changes.append(time.perf_counter() - start)
        page.wait_for_timeout(500)
    assert len(_overlay_captions(page)) == 2  # still one overlay per scale

    # One scale only.
    page.get_by_text("One", exact=True).click()
    page.wait_for_function(
        "document.querySelectorAll(\"[data-testid='stImageCaption']\").length == 2"
    )
    assert len(_overlay_captions(page)) == 1

    # A class.
    page.get_by_text("A class", exact=True).click()
    _wait_for_subheader(page, "gradcam · class person")

    # Upload a photo, then a bad file.
    page.get_by_role("radiogroup", name="Image").get_by_text("Upload", exact=True).click()
    # The photo's uploader (the sidebar's "Your model" section has uploaders too).
    chooser = (
        page.get_by_test_id("stFileUploader")
        .filter(has_text="Photo (JPEG")
        .locator("[data-testid='stFileUploaderDropzoneInput']")
    )
    chooser.set_input_files(str(samples["zidane.jpg"]))
    page.get_by_text("zidane.jpg ·").first.wait_for(timeout=60_000)
    assert len(_overlay_captions(page)) >= 1
    bad = tmp_path / "notes.png"
    bad.write_text("not a picture")
    chooser.set_input_files(str(bad))
    error = page.locator("[data-testid='stAlertContentError']")
    error.wait_for(timeout=60_000)
    assert "not an image file" in error.inner_text()
    page.screenshot(path=str(SHOTS / "bad-upload.png"), full_page=True)

    # Other pages.
    page.get_by_text("Compare methods", exact=True).first.click()
    page.get_by_role("heading", name="Compare CAM methods").wait_for(timeout=60_000)
    page.get_by_text("Sample photo", exact=True).click()
    page.wait_for_function(
        "document.querySelectorAll(\"[data-testid='stImage']\").length >= 12", timeout=120_000
    )
    page.screenshot(path=str(SHOTS / "compare.png"), full_page=True)
    page.get_by_text("Model", exact=True).first.click()
    page.get_by_role("heading", name="Model · yolov4-tiny").wait_for(timeout=60_000)
    page.screenshot(path=str(SHOTS / "model.png"), full_page=True)

    # Three sessions open at once, then the server's peak memory.
    others = [_open(browser, url)[0] for _ in range(2)]
    peak = _peak_rss_mb(proc.pid)
    for other in others:
        other.close()
    page.close()
    print(
        f"\nbrowser timings: first heatmap cold {cold:.1f} s (model conversion included), "
        f"warm {warm:.1f} s; target change {changes[0]:.2f} s first, median "
        f"{statistics.median(changes):.2f} s of {len(changes)} "
        f"({', '.join(f'{c:.2f}' for c in changes)}); "
        f"peak RSS with 3 sessions {peak:.0f} MB"
    )
