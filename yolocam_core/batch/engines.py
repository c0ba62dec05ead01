"""Engines: this process, a local pool of processes, or a Ray Data actor pool."""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from yolocam_core.batch.image import fail_image, process_image
from yolocam_core.batch.settings import RAY_LOG, BatchSettings, ImageItem, source_stat
from yolocam_core.errors import YolocamError
from yolocam_core.runtime import available_cpus, start_tensorflow

_LOADED: dict[str, Any] = {}
_LOADED_LOCK = threading.Lock()


def load_explainer(settings: BatchSettings):
    """The explainer of ``settings.model``, loaded with :meth:`ModelSpec.load`: the one
    way this process, the local pool's processes and the Ray actors get their model.

    The last one is kept per process (keyed by the spec and its files' size and
    modification time), so that runs one after another in one process load it once.
    """
    from yolocam_core.explainer import Explainer

    key = (settings.model, tuple(str(source_stat(p)) for p in settings.model_files()))
    with _LOADED_LOCK:
        if _LOADED.get("key") != key:
            _LOADED.clear()
            _LOADED.update(key=key, explainer=Explainer(settings.model.load()))
        return _LOADED["explainer"]


_WORKER: dict[str, Any] = {}


def _pool_init(settings: BatchSettings, threads: int) -> None:
    """Initializer of a local pool worker: load the model once."""
    import signal

    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent handles Ctrl-C
    start_tensorflow(threads=threads)
    _WORKER["explainer"] = load_explainer(settings)


def _pool_task(item: ImageItem, out_dir: str, settings: BatchSettings) -> dict:
    return process_image(_WORKER["explainer"], item, out_dir, settings)


def run_local(
    pending: list[ImageItem],
    out_dir: Path,
    settings: BatchSettings,
    workers: int,
    explainer,
    on_result: Callable[[ImageItem, dict], None],
) -> None:
    if workers <= 1 or len(pending) <= 1:
        for item in pending:
            on_result(item, process_image(explainer, item, out_dir, settings))
        return
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor, as_completed
    from concurrent.futures.process import BrokenProcessPool

    workers = min(workers, len(pending))
    threads = max(1, available_cpus() // workers)
    pool = ProcessPoolExecutor(
        max_workers=workers,
        mp_context=multiprocessing.get_context("spawn"),
        initializer=_pool_init,
        initargs=(settings, threads),
    )
    try:
        futures = {pool.submit(_pool_task, item, str(out_dir), settings): item for item in pending}
        for future in as_completed(futures):
            item = futures[future]
            try:
                result = future.result()
            except BrokenProcessPool:
                problem = "not processed: a worker process died (out of memory?)"
                result = fail_image(item, out_dir, settings, problem)
            on_result(item, result)
    except BaseException:
        pool.shutdown(wait=True, cancel_futures=True)  # let running images finish
        raise
    pool.shutdown(wait=True)


class RayExplainActor:
    """Ray Data actor: holds the model once and explains one image per call.

    Called by ``map_batches(batch_size=1)`` on batches of ``read_binary_files`` rows
    (``bytes``, ``path``); returns ``image`` (relative path) and ``result`` (the
    marker as JSON), after writing the image's folder exactly as the local engine.
    """

    def __init__(self, root: str, out_dir: str, settings: BatchSettings, threads: int = 1):
        start_tensorflow(threads=threads)
        self.root = root
        self.out_dir = out_dir
        self.settings = settings
        self.explainer = load_explainer(settings)

    def __call__(self, batch: dict) -> dict:
        import numpy as np

        images, results = [], []
        for data, path in zip(batch["bytes"], batch["path"], strict=True):
            rel = Path(os.path.relpath(str(path), self.root)).as_posix()
            item = ImageItem(str(path), rel)
            marker = process_image(self.explainer, item, self.out_dir, self.settings, bytes(data))
            images.append(rel)
            results.append(json.dumps(marker, ensure_ascii=False))
        return {"image": np.array(images, dtype=object), "result": np.array(results, dtype=object)}


def run_ray(
    pending: list[ImageItem],
    root: Path,
    out_dir: Path,
    settings: BatchSettings,
    workers: int,
    address: str | None,
    on_result: Callable[[ImageItem, dict], None],
) -> None:
    import logging

    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    try:
        import ray
        import ray.data
    except ImportError:
        raise YolocamError(
            "--engine ray needs Ray Data; install it with: pip install 'yolocam[ray]' "
            "(or pip install 'ray[data]>=2.9')"
        ) from None
    started = False
    if not ray.is_initialized():
        kwargs: dict[str, Any] = {
            "include_dashboard": False,
            "logging_level": logging.ERROR,
            "log_to_driver": False,
        }
        if address:
            kwargs["address"] = address
        else:
            kwargs["num_cpus"] = max(workers, 1)
        try:
            ray.init(**kwargs)
        except Exception as exc:  # e.g. no cluster at --address
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise YolocamError(f"cannot start or reach Ray ({first})") from None
        started = True
    logging.getLogger("ray.data").setLevel(logging.WARNING)
    context = ray.data.DataContext.get_current()
    context.enable_progress_bars = False
    try:
        abs_root = os.path.abspath(root)
        by_rel = {item.rel: item for item in pending}
        paths = [os.path.join(abs_root, *item.rel.split("/")) for item in pending]
        # Reads reserve no CPU: they wait on the disk, and with a CPU each they would
        # starve once the actors hold every CPU (a deadlock with workers == CPUs). As
        # many reads run at once as there are actors (unbounded, Ray would start a
        # worker process per file).
        ds = ray.data.read_binary_files(
            paths,
            include_paths=True,
            ignore_missing_paths=True,
            num_cpus=0,
            concurrency=max(1, workers),
        )
        ds = ds.map_batches(
            RayExplainActor,
            fn_constructor_kwargs={
                "root": abs_root,
                "out_dir": os.path.abspath(out_dir),
                "settings": settings,
                "threads": 1,
            },
            compute=ray.data.ActorPoolStrategy(size=workers),
            batch_size=1,
            num_cpus=1,
        )
        for row in ds.iter_rows():
            item = by_rel.get(str(row["image"]))
            if item is not None:
                on_result(item, json.loads(row["result"]))
    except (KeyboardInterrupt, YolocamError):
        raise
    except Exception as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise YolocamError(
            f"the Ray run failed ({type(exc).__name__}: {first}); Ray's own messages are "
            f"in {Path(out_dir) / RAY_LOG} and its session logs under /tmp/ray"
        ) from None
    finally:
        if started:
            ray.shutdown()
