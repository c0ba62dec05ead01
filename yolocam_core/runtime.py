"""TensorFlow start-up, in one place: thread limits and quiet native logging.

TensorFlow's C++ start-up writes lines such as "failed call to cuInit: … UNKNOWN ERROR",
"Could not find cuda drivers on your machine" or "This TensorFlow binary is optimized
to use …" straight to file descriptor 2, before any Python log level applies. On a CPU
machine they are normal, but they alarm users and bury the one-line errors of the CLI.
:func:`start_tensorflow` imports TensorFlow once with descriptor 2 sent to
``/dev/null`` and initialises its devices there; warnings and errors that come later
are still shown.

Every front end calls it before it loads a model: the ``yolocam`` command, the batch
workers (local pool processes and Ray actors, with one or a few threads each), and the
Streamlit app at start-up.

Example:
    >>> from yolocam_core.runtime import start_tensorflow
    >>> start_tensorflow(threads=2)   # before anything imports tensorflow
"""

from __future__ import annotations

import contextlib
import os
import sys
import threading
from collections.abc import Iterator

_lock = threading.Lock()
_started = False


def limit_threads(threads: int) -> None:
    """Cap TensorFlow's intra-op pool at ``threads`` and its inter-op pool at 2.

    TensorFlow reads these variables when it starts: call this before it is imported
    (a process started for one worker of several). Afterwards it changes nothing.
    """
    os.environ["TF_NUM_INTRAOP_THREADS"] = str(max(1, threads))
    os.environ["TF_NUM_INTEROP_THREADS"] = str(max(1, min(2, threads)))


def available_cpus() -> int:
    """CPUs this process may run on (its affinity mask, else the machine's count)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def start_tensorflow(threads: int | None = None, quiet: bool = True) -> None:
    """Import TensorFlow and initialise its devices, once per process.

    Args:
        threads: cap the thread pools (see :func:`limit_threads`); None keeps
            TensorFlow's default (all CPUs). Only effective on the first call, before
            anything else imported TensorFlow.
        quiet: send file descriptor 2 to ``/dev/null`` while TensorFlow starts (its
            native start-up lines); ``TF_CPP_MIN_LOG_LEVEL`` defaults to 2 (warnings
            and errors of TensorFlow's own Python logging stay visible).

    Later calls return at once. Safe to call from several threads.
    """
    global _started
    with _lock:
        if _started:
            return
        if threads is not None and "tensorflow" not in sys.modules:
            limit_threads(threads)
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
        if quiet:
            with _native_stderr_silenced():
                _import_and_init()
        else:
            _import_and_init()
        _started = True


def _import_and_init() -> None:
    import tensorflow as tf

    tf.constant(0.0)  # device initialisation (the CUDA probing) happens here


@contextlib.contextmanager
def _native_stderr_silenced() -> Iterator[None]:
    """File descriptor 2 to ``/dev/null`` for a while (Python's ``sys.stderr`` flushed)."""
    try:
        sys.stderr.flush()
        saved = os.dup(2)
    except (OSError, ValueError):  # no descriptor 2 (a daemon): nothing to silence
        yield
        return
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)
