"""How fast the app's server hands a new browser session what it needs.

1. Static files on one kept-alive connection, as a browser fetches Streamlit's ~100
   script chunks: ``streamlit run app.py`` against ``python -m yolocam_app.serve``
   (the same with TCP_NODELAY on the server socket; see yolocam_app/serve.py). The
   two servers are timed in alternate rounds; the ratio of medians is the number.
2. With ``--browser`` (Playwright and Debian's Chromium, as ``scripts/test.sh``
   installs them): the time from opening the page in a new browser context (nothing
   cached) to the first heatmap, on warm servers taken in turn, for the app served
   by the launcher against two apps served the same way: the same kinds of widget
   with nothing computed, and a one-image page (the floor: what any Streamlit page
   with one picture costs on this machine). Beside them, the app served by plain
   ``streamlit run`` (Nagle on), and the app in a new tab of a browser that has
   opened it before ("app, new tab": its cache kept).

Usage:
    .venv/bin/python bench/bench_serve.py [--rounds 5] [--browser] [--sessions 5]
        [--also NAME CHECKOUT]   # e.g. an earlier commit's worktree, for an A/B
"""

from __future__ import annotations

import argparse
import http.client
import os
import platform
import re
import statistics
import sys
import tempfile
import time
from contextlib import ExitStack, contextmanager
from pathlib import Path

from machine import cpu_model

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # the app's package, not installed
from yolocam_app.serve import child_server  # noqa: E402

CHROMIUM = "/usr/bin/chromium"
OVERLAY = "[data-testid='stImageCaption']:has-text('stride')"
ONE_IMAGE_APP = """import numpy as np
import streamlit as st

st.title("One image")
st.image(np.zeros((416, 416, 3), np.uint8), caption="13×13 · stride 32")
"""
#: The kinds of widget the app's sidebar and Explore page draw before the first
#: heatmap, with nothing computed: what the framework costs to draw them.
WIDGETS_APP = """import numpy as np
import streamlit as st

with st.sidebar:
    st.selectbox("Model", ["yolov4-tiny", "Your model"])
    st.radio("Image", ["Sample photo", "Upload"], horizontal=True)
    st.selectbox("Sample", ["bus.jpg", "person.jpg"])
    st.slider("Score threshold", 0.0, 1.0, 0.25)
    st.slider("NMS IoU threshold", 0.0, 1.0, 0.45)
    st.number_input("Max detections", 1, 1000, 300)
    st.selectbox("Normalisation", ["auto"])
    st.selectbox("Colour map", ["jet"])
    st.slider("Heatmap opacity", 0.0, 1.0, 0.5)
    with st.expander("Your model"):
        st.file_uploader("Model file")
st.title("Widgets")
st.radio("Explain", ["One detection", "A class"], horizontal=True)
st.selectbox("Detection", ["#0 person 0.99"])
st.selectbox("Method", ["ODAM"])
st.image(np.zeros((416, 416, 3), np.uint8), caption="13×13 · stride 32")
"""


@contextmanager
def _server(command: list[str], cwd: Path):
    """A Streamlit server started with ``command``; yields its port once it accepts
    connections."""
    with child_server(command, cwd=cwd) as (url, _):
        yield int(url.rsplit(":", 1)[1])


def _chunks(port: int) -> list[str]:
    """The script chunks index.html preloads (what every new session fetches first)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    conn.request("GET", "/")
    html = conn.getresponse().read().decode()
    conn.close()
    links = re.findall(r'href="(\./static/js/[^"]+\.js)"', html)
    return ["/" + p.removeprefix("./") for p in links]


def _fetch_all(port: int, paths: list[str]) -> list[float]:
    """Seconds per request, all on one kept-alive connection."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    times = []
    for path in paths:
        start = time.perf_counter()
        conn.request("GET", path)
        response = conn.getresponse()
        body = response.read()
        if response.status != 200 or not body:
            raise SystemExit(f"GET {path}: HTTP {response.status}")
        times.append(time.perf_counter() - start)
    conn.close()
    return times


def static_files(rounds: int) -> None:
    python = sys.executable
    plain = [python, "-m", "streamlit", "run", "app.py"]
    launcher = [python, "-m", "yolocam_app.serve"]
    per = {"streamlit run": [], "launcher": []}
    with _server(plain, ROOT) as plain_port, _server(launcher, ROOT) as launcher_port:
        paths = _chunks(launcher_port)
        for _ in range(rounds):
            per["streamlit run"] += _fetch_all(plain_port, paths)
            per["launcher"] += _fetch_all(launcher_port, paths)
    print(f"\n1. {len(paths)} script chunks on one kept-alive connection, {rounds} rounds")
    for name, times in per.items():
        print(
            f"   {name:14s} median {1000 * statistics.median(times):6.1f} ms per request, "
            f"{sum(times) / rounds:5.2f} s per round"
        )
    ratio = statistics.median(per["launcher"]) / statistics.median(per["streamlit run"])
    print(f"   launcher / streamlit run, median per request: {ratio:.3f}")


def _first_heatmaps(browser, port: int, context=None) -> float:
    """Seconds from opening the page to the first heatmap: in a new browser context
    (nothing cached), or in a new tab of ``context`` (its cache kept)."""
    own = context is None
    if own:
        context = browser.new_context(viewport={"width": 1440, "height": 1000})
    page = context.new_page()
    start = time.perf_counter()
    page.goto(f"http://127.0.0.1:{port}")
    page.locator(OVERLAY).first.wait_for(timeout=240_000)
    seconds = time.perf_counter() - start
    page.close()
    if own:
        context.close()
    return seconds


def warm_start(sessions: int, apps: dict[str, Path] | None = None) -> None:
    """New sessions on warm servers, taken in turn (the machine's load hits all alike);
    ``apps`` adds servers of other checkouts (name: repository root; one without the
    launcher is served by plain ``streamlit run``)."""
    from playwright.sync_api import sync_playwright

    sys.path.insert(0, str(ROOT / "tests"))
    from test_browser import CHROMIUM_ARGS

    def launcher(root: Path, script: Path | None = None) -> list[str]:
        if script is None:
            if not (root / "yolocam_app" / "serve.py").is_file():  # before the launcher
                return [sys.executable, "-m", "streamlit", "run", "app.py"]
            return [sys.executable, "-m", "yolocam_app.serve"]
        code = (
            "import sys; from yolocam_app import serve; "
            f"serve.APP = {str(script)!r}; serve.main(sys.argv[1:])"
        )
        return [sys.executable, "-c", code]

    with tempfile.TemporaryDirectory() as tmp, ExitStack() as stack:
        servers = {"yolocam app": stack.enter_context(_server(launcher(ROOT), ROOT))}
        plain = [sys.executable, "-m", "streamlit", "run", "app.py"]
        servers["streamlit run"] = stack.enter_context(_server(plain, ROOT))
        for name, root in (apps or {}).items():
            servers[name] = stack.enter_context(_server(launcher(root), root))
        for name, source in (("same widgets", WIDGETS_APP), ("one-image app", ONE_IMAGE_APP)):
            script = Path(tmp) / f"{name.replace(' ', '_').replace('-', '_')}.py"
            script.write_text(source)
            servers[name] = stack.enter_context(_server(launcher(ROOT, script), ROOT))
        pw = stack.enter_context(sync_playwright())
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        for port in servers.values():
            _first_heatmaps(browser, port)  # the cold start: model, first script run
        cached = browser.new_context(viewport={"width": 1440, "height": 1000})
        _first_heatmaps(browser, servers["yolocam app"], cached)
        times: dict[str, list[float]] = {name: [] for name in servers}
        times["app, new tab"] = []
        for _ in range(sessions):
            for name, port in servers.items():
                times[name].append(_first_heatmaps(browser, port))
            times["app, new tab"].append(_first_heatmaps(browser, servers["yolocam app"], cached))
        browser.close()
    print(f"\n2. new browser context to first heatmap, warm servers, {sessions} rounds")
    app = statistics.median(times["yolocam app"])
    for name, values in times.items():
        median = statistics.median(values)
        print(
            f"   {name:14s} {', '.join(f'{v:.2f}' for v in values)} s; median {median:.2f} s, "
            f"the app / this {app / median:.2f}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5, help="rounds of chunk fetches (5)")
    parser.add_argument("--browser", action="store_true", help="also time new sessions")
    parser.add_argument("--sessions", type=int, default=5, help="new sessions per app (5)")
    parser.add_argument(
        "--also",
        nargs=2,
        action="append",
        metavar=("NAME", "ROOT"),
        default=[],
        help="time the app of another checkout too (e.g. a commit's worktree)",
    )
    args = parser.parse_args()
    print(f"machine: {cpu_model()}, {os.cpu_count()} cores, Python {platform.python_version()}")
    static_files(args.rounds)
    if args.browser:
        if not Path(CHROMIUM).exists():
            raise SystemExit(f"{CHROMIUM} missing: run scripts/test-deps.sh")
        warm_start(args.sessions, {name: Path(root) for name, root in args.also})


if __name__ == "__main__":
    main()
