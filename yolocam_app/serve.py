"""Serve the web app: ``python -m yolocam_app.serve [streamlit run options]``.

This is ``streamlit run app.py`` with one fix to how the server sends. Streamlit 1.67
creates its listening socket as ``socket.socket(family)``, so its protocol number is
0. asyncio disables Nagle's algorithm only on sockets whose protocol is
``IPPROTO_TCP``, so the connections it accepts keep Nagle on. Uvicorn writes a
response's headers and body separately. On a kept-alive connection the small body
then waits for the browser's delayed ACK of the headers, about 40 ms. A new session
fetches over a hundred small script chunks (58 preloaded by ``index.html``, the rest
as the page's elements need them) over six connections, and pays that wait for
almost every one. ``bench/bench_serve.py`` measures the difference.

The fix sets ``TCP_NODELAY`` on the listening socket; Linux (and the BSDs) copy it to
every accepted socket. Without it (another Streamlit, another platform) the app is
served as ``streamlit run`` serves it, with a warning in the log.
"""

from __future__ import annotations

import functools
import logging
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager, nullcontext
from pathlib import Path
from typing import NoReturn

APP = Path(__file__).resolve().parents[1] / "app.py"

_log = logging.getLogger(__name__)


def nodelay_listener() -> bool:
    """Make the Streamlit server's listening socket disable Nagle's algorithm.

    Wraps Streamlit's private ``starlette_server._bind_socket`` (which its server calls
    to bind); idempotent.

    Returns:
        Whether the fix is in place. It is False when this Streamlit has no such
        function; the app still works then, but it pays the delayed-ACK wait.
    """
    try:
        from streamlit.web.server.starlette import starlette_server
    except ImportError:
        _log.warning("streamlit has no Starlette server module: serving without TCP_NODELAY")
        return False
    bind = getattr(starlette_server, "_bind_socket", None)
    if bind is None:
        _log.warning("streamlit has no _bind_socket: serving without TCP_NODELAY")
        return False
    if getattr(bind, "yolocam_nodelay", False):
        return True

    @functools.wraps(bind)
    def bind_nodelay(*args, **kwargs) -> socket.socket:
        sock = bind(*args, **kwargs)
        try:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        except OSError as exc:  # not a TCP socket: serve as Streamlit would
            _log.warning("could not set TCP_NODELAY on the server socket: %s", exc)
        return sock

    bind_nodelay.yolocam_nodelay = True  # type: ignore[attr-defined]
    starlette_server._bind_socket = bind_nodelay
    return True


def main(argv: Sequence[str] | None = None) -> NoReturn:
    """Run ``streamlit run app.py`` with :func:`nodelay_listener`; exits with its code.

    Args:
        argv: ``streamlit run`` options, e.g. ``["--server.port", "8502"]`` (default:
            the command line's); arguments for the app itself go after ``--``.
    """
    from streamlit.web import cli

    nodelay_listener()
    args = list(sys.argv[1:] if argv is None else argv)
    cli.main(["run", str(APP), *args], prog_name="streamlit")
    raise SystemExit(0)  # click exits the process itself; never reached


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def child_server(
    command: Sequence[str] | None = None,
    *,
    cwd: Path = APP.parent,
    env: Mapping[str, str] | None = None,
    log: Path | None = None,
    timeout: float = 120.0,
) -> Iterator[tuple[str, subprocess.Popen]]:
    """A Streamlit server in a child process on a free local port, for the browser
    tests, ``bench/bench_serve.py`` and ``scripts/screenshots.py``.

    Args:
        command: what to run before the port options (default: this launcher, i.e.
            ``python -m yolocam_app.serve``).
        env: the child's environment (default: this one's, TensorFlow's log quieted).
        log: where its output goes (default: discarded).
        timeout: seconds to wait for it to accept connections.

    Yields:
        ``(url, process)`` once the server accepts connections; the process is
        terminated (killed after 30 s) on exit.

    Raises:
        RuntimeError: it exited or did not listen within ``timeout`` (with the end of
            its log, if any).
    """
    port = free_port()
    command = list(command or [sys.executable, "-m", "yolocam_app.serve"])
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2") if env is None else dict(env)
    options = ["--server.port", str(port), "--server.address", "127.0.0.1"]
    sink = open(log, "w") if log is not None else nullcontext(subprocess.DEVNULL)
    with sink as out:  # the child keeps its own copy of the file
        proc = subprocess.Popen(
            [*command, *options, "--server.headless", "true"],
            cwd=cwd, env=env, stdout=out, stderr=subprocess.STDOUT,
        )  # fmt: skip
    try:
        deadline = time.monotonic() + timeout
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if time.monotonic() > deadline or proc.poll() is not None:
                    tail = log.read_text()[-2000:] if log is not None else ""
                    raise RuntimeError(
                        f"the server did not start ({' '.join(command)}): {tail}"
                    ) from None
                time.sleep(0.2)
        yield f"http://127.0.0.1:{port}", proc
    finally:
        proc.terminate()
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


if __name__ == "__main__":
    main()
