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
import math
import os
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

_lock = threading.Lock()
_started = False


def limit_threads(threads: int) -> None:
    """Cap TensorFlow's intra-op pool at ``threads`` and its inter-op pool at 2.

    TensorFlow reads these variables when it starts: call this before it is imported
    (a process started for one worker of several). Afterwards it changes nothing.
    """
    os.environ["TF_NUM_INTRAOP_THREADS"] = str(max(1, threads))
    os.environ["TF_NUM_INTEROP_THREADS"] = str(max(1, min(2, threads)))


def available_cpus(cgroup: Path = Path("/sys/fs/cgroup")) -> int:
    """CPUs this process may use: its affinity mask (else the machine's count), capped
    by a cgroup CPU quota (a container's ``--cpus``), rounded up."""
    try:
        cpus = len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        cpus = os.cpu_count() or 1
    quota = _cgroup_quota(cgroup)
    return max(1, min(cpus, math.ceil(quota))) if quota else cpus


def _cgroup_quota(root: Path) -> float | None:
    """The cgroup's CPU quota in CPUs (v2 ``cpu.max``, else v1 ``cpu.cfs_quota_us`` /
    ``cpu.cfs_period_us``), or None when there is none or it cannot be read."""
    try:
        quota, period = (root / "cpu.max").read_text().split()[:2]
        return None if quota == "max" else int(quota) / int(period)
    except (OSError, ValueError):
        pass
    try:
        quota_us = int((root / "cpu" / "cpu.cfs_quota_us").read_text())
        period_us = int((root / "cpu" / "cpu.cfs_period_us").read_text())
    except (OSError, ValueError):
        return None
    return quota_us / period_us if quota_us > 0 and period_us > 0 else None


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
