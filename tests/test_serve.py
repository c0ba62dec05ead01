"""The app's launcher (yolocam_app/serve.py): connections to the server Streamlit binds
have Nagle's algorithm off, and the launcher runs `streamlit run app.py`."""

from __future__ import annotations

import socket
import subprocess
import sys
from pathlib import Path

import pytest
from streamlit.web.server.starlette import starlette_server

from yolocam_app import serve

ROOT = Path(__file__).resolve().parents[1]


def _accepted_nodelay() -> int:
    """TCP_NODELAY on the server side of one connection to a socket bound as
    Streamlit's server binds it."""
    listener = starlette_server._bind_socket("127.0.0.1", 0, 8)
    try:
        listener.setblocking(True)
        with socket.create_connection(listener.getsockname()[:2], timeout=5):
            accepted, _ = listener.accept()
            with accepted:
                return accepted.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY)
    finally:
        listener.close()


@pytest.fixture
def restore_bind(monkeypatch):
    """Streamlit's own _bind_socket back after the test."""
    monkeypatch.setattr(starlette_server, "_bind_socket", starlette_server._bind_socket)


def test_streamlit_alone_leaves_nagle_on():
    # The cause the launcher works around (asyncio skips sockets whose protocol is 0).
    # When this fails, Streamlit sets TCP_NODELAY itself and serve.py's fix can go.
    assert _accepted_nodelay() == 0


def test_streamlit_binds_its_server_through_bind_socket():
    # The function the launcher wraps is the one the server binds with (looked up on
    # the module at call time, so the wrapper is what it calls).
    assert "_bind_socket" in starlette_server._bind_server_socket.__code__.co_names


def test_the_launcher_turns_nagle_off_on_accepted_connections(restore_bind):
    assert serve.nodelay_listener()
    wrapped = starlette_server._bind_socket
    assert serve.nodelay_listener()
    assert starlette_server._bind_socket is wrapped  # idempotent: wrapped once
    assert _accepted_nodelay() != 0


def test_main_wraps_then_runs_streamlit_on_app_py(restore_bind, monkeypatch):
    from streamlit.web import cli

    calls = []

    def fake_main(args, prog_name):
        calls.append(
            (args, prog_name, getattr(starlette_server._bind_socket, "yolocam_nodelay", False))
        )
        raise SystemExit(0)

    monkeypatch.setattr(cli, "main", fake_main)
    with pytest.raises(SystemExit):
        serve.main(["--server.port", "8599"])
    assert calls == [(["run", str(ROOT / "app.py"), "--server.port", "8599"], "streamlit", True)]


def test_the_launcher_is_streamlit_run_on_app_py():
    assert serve.APP == ROOT / "app.py" and serve.APP.is_file()
    result = subprocess.run(
        [sys.executable, "-m", "yolocam_app.serve", "--help"],
        capture_output=True, text=True, timeout=120, cwd=ROOT,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "Usage: streamlit run" in result.stdout and "--server.port" in result.stdout


_LISTENER = (
    "import socket, sys, time; port = int(sys.argv[sys.argv.index('--server.port') + 1]); "
    "s = socket.socket(); s.bind(('127.0.0.1', port)); s.listen(); time.sleep(120)"
)


def test_child_server_yields_once_listening_and_stops_the_process(tmp_path):
    with serve.child_server([sys.executable, "-c", _LISTENER], log=tmp_path / "log") as (url, proc):
        assert url.startswith("http://127.0.0.1:") and proc.poll() is None
        port = int(url.rsplit(":", 1)[1])
        socket.create_connection(("127.0.0.1", port), timeout=5).close()
    assert proc.poll() is not None  # terminated on exit


def test_child_server_that_exits_raises_with_its_log(tmp_path):
    command = [sys.executable, "-c", "print('no such option'); raise SystemExit(2)"]
    with pytest.raises(RuntimeError, match=r"did not start.*no such option"):
        with serve.child_server(command, log=tmp_path / "log", timeout=30):
            pass
