"""Serve the web app: ``python -m yolocam_app.serve [streamlit run options]``.

This is ``streamlit run app.py`` with one fix to how the server sends. Streamlit 1.67
creates its listening socket as ``socket.socket(family)``, so its protocol number is
0. asyncio disables Nagle's algorithm only on sockets whose protocol is
``IPPROTO_TCP``, so the connections it accepts keep Nagle on. Uvicorn writes a
response's headers and body separately. On a kept-alive connection the small body
then waits for the browser's delayed ACK of the headers, about 40 ms. A new session
fetches about 100 small script chunks over six connections and pays that wait for
almost every one; the updates sent over the WebSocket pay it too.
``bench/bench_serve.py`` measures the difference.

The fix sets ``TCP_NODELAY`` on the listening socket. Linux copies it to every
accepted socket.
"""

from __future__ import annotations

import logging
import socket
import sys
from collections.abc import Sequence
from pathlib import Path

APP = Path(__file__).resolve().parents[1] / "app.py"

_log = logging.getLogger(__name__)


def nodelay_listener() -> bool:
    """Make the Streamlit server's listening socket disable Nagle's algorithm.

    Wraps Streamlit's private ``starlette_server._bind_socket``; it is idempotent.

    Returns:
        Whether the fix is in place. It is False when this Streamlit has no such
        function; the app still works then, but it pays the delayed-ACK wait.
    """
    try:
        from streamlit.web.server.starlette import starlette_server
    except ImportError:
        return False
    bind = getattr(starlette_server, "_bind_socket", None)
    if bind is None:
        _log.warning("streamlit has no _bind_socket: serving without TCP_NODELAY")
        return False
    if getattr(bind, "yolocam_nodelay", False):
        return True

    def bind_nodelay(address: str, port: int, backlog: int) -> socket.socket:
        sock = bind(address, port, backlog)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return sock

    bind_nodelay.yolocam_nodelay = True  # type: ignore[attr-defined]
    starlette_server._bind_socket = bind_nodelay
    return True


def main(argv: Sequence[str] | None = None) -> None:
    """Run ``streamlit run app.py`` with :func:`nodelay_listener`; ``argv`` are more
    ``streamlit run`` options (default: the command line's)."""
    from streamlit.web import cli

    nodelay_listener()
    args = list(sys.argv[1:] if argv is None else argv)
    cli.main(["run", str(APP), *args], prog_name="streamlit")


if __name__ == "__main__":
    main()
