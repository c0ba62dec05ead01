"""Batch runs: explain every image of a folder, locally or on Ray, resumably.

Layout of an output folder::

    OUT_DIR/
      summary.csv, summary.parquet     one row per image × detection × method × scale
      images/<name>-<hash>/            one folder per input image
        detections.json                the image's size and detections
        <target>_<method>_s<scale>_<h>x<w>.png / .npy   overlay and raw grid map
        <target>_<method>_sheet.png    all scales side by side (``sheet=True`` only)
        done.json                      written LAST, by atomic rename: the image is
                                       complete iff this marker exists (and matches)
        error.json                     instead of done.json when the image failed

Resume semantics: an image is skipped iff its ``done.json`` exists, was written with
the same settings (a fingerprint of model, thresholds, methods, targets, scales,
normalisation, colour map, opacity, sheet and metrics) and for the same source file
(size and modification time). The marker holds the image's summary rows, so a resumed
run rebuilds the whole summary without recomputing anything. Anything else (no
marker, a stale marker, a half-written folder from an interrupted run) is recomputed
from scratch: its folder is emptied first. Failed images get ``error.json`` and are
**retried on every run** (a failure may be transient: a file still being copied, a
full disk, a worker killed for memory; a corrupt file fails again in milliseconds
once the model is loaded), and stay in the summary as ``status == "error"`` rows. A run
with nothing left to do does not load the model.

Engines: ``local`` runs in this process (``workers=1``) or in a pool of ``spawn``-ed
processes that each load the model once (TensorFlow is not fork-safe); ``ray`` reads
the files with Ray Data in parallel and explains them in an actor pool whose actors
each hold the model once, so the same call runs on a Ray cluster (``address=``), as
long as every node sees ``OUT_DIR`` and the input folder at the same paths (a shared
file system) and has yolocam installed.

Example:
    >>> from yolocam_core.batch import BatchSettings, run_batch
    >>> report = run_batch("photos/", "out/", BatchSettings(methods=("gradcam",)))
    >>> report.failed, report.summary_csv
    (0, PosixPath('out/summary.csv'))
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import sys
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from yolocam_core.errors import YolocamError

#: Bump when the per-image folder layout or the rows change: older markers then
#: count as stale and their images are recomputed.
FORMAT_VERSION = 1

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".webp", ".bmp", ".tif", ".tiff", ".gif")
DONE_MARKER, ERROR_MARKER = "done.json", "error.json"
IMAGES_SUBDIR = "images"
SUMMARY_CSV, SUMMARY_PARQUET = "summary.csv", "summary.parquet"
RAY_LOG = "ray-driver.log"  # what Ray's native code printed during an ``engine="ray"`` run
ENGINES = ("local", "ray")

#: Summary columns and their pandas dtypes, in order. Metric columns (``--metrics``,
#: :data:`METRIC_COLUMNS`) follow them.
SUMMARY_COLUMNS: dict[str, str] = {
    "image": "string",  # path relative to the input folder, '/'-separated
    "status": "string",  # "ok" or "error"
    "error": "string",  # the error, for status == "error"
    "width": "Int64",
    "height": "Int64",
    "n_detections": "Int64",
    "target": "string",  # "detection", "class" or "seed"
    "target_label": "string",  # e.g. "person 0.99", "class dog"
    "detection": "Int64",  # index K into detections.json (the box the row is about)
    "class_id": "Int64",
    "class_name": "string",
    "det_score": "Float64",
    "x1": "Float64",
    "y1": "Float64",
    "x2": "Float64",
    "y2": "Float64",
    "det_scale": "Int64",  # the scale that predicted the detection
    "method": "string",
    "scale": "Int64",
    "grid": "string",  # e.g. "13x13"
    "layer": "string",
    "target_score": "Float64",  # the explained score at this scale
    "overlay": "string",  # relative to OUT_DIR
    "raw_map": "string",  # relative to OUT_DIR
    "seconds": "Float64",  # wall time of the whole image (timing: differs run to run)
}
#: Columns that measure time and so differ between otherwise identical runs.
TIMING_COLUMNS = ("seconds",)
#: Metric columns and their dtypes, in order, when ``metrics=True`` (the names of
#: ``yolocam evaluate``; empty for rows without a box, e.g. ``seed`` targets).
METRIC_COLUMNS: dict[str, str] = {
    "pointing_game": "boolean",  # the map's peak is inside the box
    "energy_pointing_game": "Float64",  # share of the map's mass inside the box
    "deletion_auc": "Float64",  # lower = more faithful
    "insertion_auc": "Float64",  # higher = more faithful
}


@dataclass(frozen=True)
class BatchSettings:
    """What to compute for every image; everything here is part of the fingerprint.

    Attributes:
        model: a zoo model name or a model file (see :func:`yolocam_core.zoo.load_detector`).
        model_options: other keyword arguments of ``load_detector`` as (name, value)
            pairs, e.g. ``(("weights", "/abs/yolov4.weights"), ("classes", "coco"))``;
            give file paths absolute (workers may run elsewhere).
        score: detection score threshold.
        iou: NMS IoU threshold.
        methods: CAM method names (see :func:`yolocam_core.cams.method_names`).
        targets: ``"detections"`` (every detected box), ``"class:NAME"`` (one class;
            its rows are repeated per detection of that class, or one row per scale
            if there is none) or ``"seed"`` (the article's whole head output).
        scales: head indices, or None for all.
        norm: ``"per-map"`` or ``"shared"``.
        colormap: overlay colour map.
        opacity: overlay opacity.
        sheet: also write a side-by-side sheet per target × method.
        metrics: add pointing game, energy-based pointing game and deletion/insertion
            AUC per row with a box (:mod:`yolocam_core.metrics`, computed as
            ``yolocam evaluate`` does, without its random baseline and sanity check).
        metrics_steps: deletion/insertion steps (2·(steps−1) forward passes per map);
            None: ``yolocam_core.metrics.DEFAULT_STEPS``, as ``yolocam evaluate``.
    """

    model: str = "yolov4-tiny"
    model_options: tuple[tuple[str, Any], ...] = ()
    score: float = 0.25
    iou: float = 0.45
    methods: tuple[str, ...] = ("gradcam",)
    targets: str = "detections"
    scales: tuple[int, ...] | None = None
    norm: str = "per-map"
    colormap: str = "jet"
    opacity: float = 0.5
    sheet: bool = False
    metrics: bool = False
    metrics_steps: int | None = None

    def fingerprint(self) -> str:
        """A short hash of the settings, the output format version and the size and
        modification time of any model file named (a retrained model is new work)."""
        data = asdict(self)
        data["format"] = FORMAT_VERSION
        data["files"] = [
            _source_stat(str(value))
            for value in (self.model, *(v for _, v in self.model_options))
            if isinstance(value, str) and os.path.isfile(value)
        ]
        text = json.dumps(data, sort_keys=True, default=list)
        return hashlib.sha256(text.encode()).hexdigest()[:16]


@dataclass(frozen=True)
class ImageItem:
    """One input image: its path and its name relative to the input folder."""

    path: str
    rel: str


@dataclass
class BatchReport:
    """What a :func:`run_batch` call did.

    Attributes:
        total: images found.
        computed: images processed in this run (successfully or not).
        skipped: images already complete from an earlier run.
        failed: images whose summary rows are errors (this run or, for none, earlier).
        failures: (image, error) of the failed images.
        summary_csv, summary_parquet: where the summary was written.
        seconds: wall time of the call.
        interrupted: the run was interrupted; finished images are kept.
    """

    total: int = 0
    computed: int = 0
    skipped: int = 0
    failed: int = 0
    failures: list[tuple[str, str]] = field(default_factory=list)
    summary_csv: Path | None = None
    summary_parquet: Path | None = None
    seconds: float = 0.0
    interrupted: bool = False


# -- input listing and markers -----------------------------------------------------------


def list_images(input_dir: str | Path, exclude: str | Path | None = None) -> list[ImageItem]:
    """Image files under ``input_dir`` (recursively), sorted by relative path.

    Files are chosen by extension (:data:`IMAGE_EXTENSIONS`, any case), so a text file
    named ``.jpg`` is listed (and will fail, recorded); hidden files and folders and
    anything under ``exclude`` (the output folder) are skipped.

    Raises:
        YolocamError: the folder does not exist, is not a folder or holds no images.
    """
    root = Path(input_dir)
    if not root.exists():
        raise YolocamError(f"{root}: no such folder")
    if not root.is_dir():
        raise YolocamError(f"{root}: not a folder; `yolocam batch` takes a folder of images")
    excluded = Path(exclude).resolve() if exclude is not None else None
    items = []
    for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
        here = Path(dirpath)
        dirnames[:] = sorted(
            d
            for d in dirnames
            if not d.startswith(".") and (excluded is None or (here / d).resolve() != excluded)
        )
        for name in filenames:
            if name.startswith(".") or not name.lower().endswith(IMAGE_EXTENSIONS):
                continue
            path = here / name
            items.append(ImageItem(str(path), path.relative_to(root).as_posix()))
    items.sort(key=lambda item: item.rel)
    if not items:
        raise YolocamError(
            f"{root}: no image files found (looked for {', '.join(IMAGE_EXTENSIONS)})"
        )
    return items


def image_dir(out_dir: str | Path, rel: str) -> Path:
    """The output folder of one image: a readable name plus a hash of its relative path
    (so ``a/b.jpg`` and ``a_b.jpg`` never collide)."""
    readable = _safe(rel.replace("/", "__"))[:80]
    digest = hashlib.sha1(rel.encode("utf-8")).hexdigest()[:8]
    return Path(out_dir) / IMAGES_SUBDIR / f"{readable}-{digest}"


def _safe(text: str) -> str:
    return "".join(c if c.isalnum() or c in "-_+." else "_" for c in text)


def _source_stat(path: str) -> dict | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return {"size": st.st_size, "mtime_ns": st.st_mtime_ns}


def _write_json_atomic(path: Path, data: Any) -> None:
    """Write JSON to a temporary file in the same folder, fsync it, rename it into place."""
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    with open(tmp, "w", encoding="utf-8") as handle:
        json.dump(data, handle, ensure_ascii=False)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, path)


def read_marker(folder: Path, fingerprint: str, source: dict | None) -> dict | None:
    """The image's ``done.json`` if it is valid for these settings and this source file."""
    try:
        marker = json.loads((folder / DONE_MARKER).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if (
        not isinstance(marker, dict)
        or marker.get("fingerprint") != fingerprint
        or source is None
        or marker.get("source") != source
        or not isinstance(marker.get("rows"), list)
    ):
        return None
    return marker


# -- one image ------------------------------------------------------------------------


def resolve_targets(spec: str, class_names: Sequence[str]):
    """``"detections"`` | ``"class:NAME"`` | ``"seed"`` -> (kind, Target or None).

    Raises:
        YolocamError: anything else, or an unknown class; the message says what to use.
    """
    from yolocam_core.targets import ClassTarget, SeedTarget

    kind, _, value = spec.partition(":")
    if spec == "detections":
        return "detection", None
    if spec == "seed":
        return "seed", SeedTarget()
    if kind == "class" and value:
        lowered = [n.lower() for n in class_names]
        if value.lower() in lowered:
            return "class", ClassTarget(lowered.index(value.lower()))
        if value.isdigit() and int(value) < len(class_names):
            return "class", ClassTarget(int(value))
        raise YolocamError(
            f"--targets {spec!r}: unknown class; the model's classes include "
            f"{', '.join(class_names[:10])}, …"
        )
    raise YolocamError(f"--targets {spec!r}: use detections, class:NAME or seed")


def _base_row(rel: str) -> dict:
    return dict.fromkeys(SUMMARY_COLUMNS) | {"image": rel}


def error_row(rel: str, message: str, seconds: float | None = None) -> dict:
    """The summary row of an image that failed."""
    return _base_row(rel) | {"status": "error", "error": message, "seconds": seconds}


def _image_error_message(rel: str, exc: Exception) -> str:
    """``"<rel>: <what was wrong>"`` whatever way the image was read."""
    from yolocam_core.errors import ImageError

    text = str(exc)
    if isinstance(exc, ImageError):
        for prefix in ("uploaded file: ", f"{rel}: "):
            if text.startswith(prefix):
                return f"{rel}: {text[len(prefix) :]}"
        return f"{rel}: {text}"
    return f"{rel}: {type(exc).__name__}: {text}"


def process_image(
    explainer,
    item: ImageItem,
    out_dir: str | Path,
    settings: BatchSettings,
    data: bytes | None = None,
) -> dict:
    """Explain one image and write its folder; never raises for a bad image.

    Args:
        explainer: an :class:`~yolocam_core.explainer.Explainer` (shared, read-only).
        item: the image.
        out_dir: the run's output folder.
        settings: what to compute.
        data: the file's bytes if already read (Ray reads them); else read from
            ``item.path``.

    Returns:
        The marker written (``done.json`` or ``error.json``): ``{"status": "ok" |
        "error", "error", "rows": [summary row dicts], ...}``.
    """
    start = time.perf_counter()
    folder = image_dir(out_dir, item.rel)
    source = _source_stat(item.path)
    marker = {
        "format": FORMAT_VERSION,
        "fingerprint": settings.fingerprint(),
        "image": item.rel,
        "source": source,
    }
    try:
        if folder.exists():  # stale or half-written by an interrupted run
            shutil.rmtree(folder)
        folder.mkdir(parents=True)
        rows = _explain_into(explainer, item, folder, Path(out_dir), settings, data)
        seconds = time.perf_counter() - start
        for row in rows:
            row["seconds"] = seconds
        done = marker | {"status": "ok", "error": None, "rows": rows, "seconds": seconds}
        _write_json_atomic(folder / DONE_MARKER, done)  # last: the image is now complete
        return done
    except Exception as exc:  # recorded per image (a full disk too); the run goes on
        seconds = time.perf_counter() - start
        message = _image_error_message(item.rel, exc)
        marker |= {"status": "error", "error": message, "rows": [error_row(item.rel, message)]}
        marker["rows"][0]["seconds"] = seconds
        try:
            folder.mkdir(parents=True, exist_ok=True)
            _write_json_atomic(folder / ERROR_MARKER, marker)
        except OSError:
            pass  # the summary still records the error from the returned marker
        return marker


def _explain_into(explainer, item, folder, out_dir, settings, data) -> list[dict]:
    import numpy as np
    from PIL import Image

    from yolocam_core import render
    from yolocam_core.images import load_image
    from yolocam_core.targets import DetectionTarget

    if data is None:
        try:
            data = Path(item.path).read_bytes()
        except OSError as exc:
            from yolocam_core.errors import ImageError

            raise ImageError(f"{item.rel}: cannot read file ({exc.strerror or exc})") from None
    image = load_image(data)
    detector = explainer.detector
    fwd = explainer.forward(image)
    detections = explainer.detect(fwd, settings.score, settings.iou)
    height, width = image.shape[:2]
    (folder / "detections.json").write_text(
        json.dumps(
            {
                "image": item.rel,
                "width": width,
                "height": height,
                "model": settings.model,
                "score_threshold": settings.score,
                "iou_threshold": settings.iou,
                "detections": [d.to_dict() for d in detections],
            },
            indent=1,
            ensure_ascii=False,
        ),
        encoding="utf-8",
    )
    kind, fixed_target = resolve_targets(settings.targets, detector.class_names)
    base = _base_row(item.rel) | {
        "status": "ok",
        "width": width,
        "height": height,
        "n_detections": len(detections),
    }
    if kind == "detection":
        # (target, file stem, [detection indices the rows are about])
        jobs = [
            (DetectionTarget(d), f"det{k:02d}-{d.class_name}", [k])
            for k, d in enumerate(detections)
        ]
    else:
        about = [
            k
            for k, d in enumerate(detections)
            if kind == "class" and d.class_id == fixed_target.class_id
        ]
        stem = f"class-{detector.class_names[fixed_target.class_id]}" if kind == "class" else "seed"
        jobs = [(fixed_target, stem, about or [None])]
    if not jobs:
        return [base]  # no detections: one row says so
    scales = None if settings.scales is None else list(settings.scales)
    metrics = _ImageMetrics(explainer, fwd, detections, settings) if settings.metrics else None
    rows = []
    for method in settings.methods:
        results = explainer.explain_many(
            fwd, [job[0] for job in jobs], method, scales, norm=settings.norm
        )
        for (_, stem, about), result in zip(jobs, results, strict=True):
            prefix = _safe(f"{stem}_{method}")
            panels = render.explanation_overlays(image, result, settings.colormap, settings.opacity)
            files = []
            for scale_map, panel in zip(result.maps, panels, strict=True):
                grid = f"{scale_map.grid_map.shape[0]}x{scale_map.grid_map.shape[1]}"
                png = folder / f"{prefix}_s{scale_map.scale}_{grid}.png"
                npy = folder / f"{prefix}_s{scale_map.scale}_{grid}.npy"
                Image.fromarray(panel).save(png, compress_level=1)
                np.save(npy, scale_map.grid_map)
                files.append((scale_map, grid, png, npy))
            if settings.sheet:
                sheet = render.sheet(image, result, settings.colormap, settings.opacity)
                Image.fromarray(sheet).save(folder / f"{prefix}_sheet.png", compress_level=1)
            for k in about:
                det = detections[k] if k is not None else None
                for scale_map, grid, png, npy in files:
                    row = base | {
                        "target": kind,
                        "target_label": result.target,
                        "method": method,
                        "scale": scale_map.scale,
                        "grid": grid,
                        "layer": scale_map.layer,
                        "target_score": float(scale_map.score),
                        "overlay": png.relative_to(out_dir).as_posix(),
                        "raw_map": npy.relative_to(out_dir).as_posix(),
                    }
                    if det is not None:
                        row |= {
                            "detection": k,
                            "class_id": det.class_id,
                            "class_name": det.class_name,
                            "det_score": float(det.score),
                            "x1": float(det.box_xyxy[0]),
                            "y1": float(det.box_xyxy[1]),
                            "x2": float(det.box_xyxy[2]),
                            "y2": float(det.box_xyxy[3]),
                            "det_scale": det.scale,
                        }
                    if metrics is not None:
                        row |= metrics.row(scale_map, k)
                    rows.append(row)
    return rows


# -- metrics (yolocam_core/metrics.py, written separately) ------------------------------


def _metrics_module():
    """:mod:`yolocam_core.metrics`; YolocamError (one line) if it or a function is missing."""
    import importlib

    try:
        metrics = importlib.import_module("yolocam_core.metrics")
    except ModuleNotFoundError as exc:
        if exc.name != "yolocam_core.metrics":
            raise
        raise YolocamError(
            "--metrics needs yolocam_core/metrics.py (pointing game, energy in box, "
            "deletion/insertion AUC), which this installation does not have; "
            "run without --metrics"
        ) from None
    needed = ("pointing_game", "energy_pointing_game", "PerturbationCurves", "random_heatmap")
    missing = [name for name in needed if not callable(getattr(metrics, name, None))]
    if not isinstance(getattr(metrics, "DEFAULT_STEPS", None), int):
        missing.append("DEFAULT_STEPS")
    if missing:
        raise YolocamError(
            f"--metrics: yolocam_core.metrics lacks {', '.join(missing)}; run without --metrics"
        )
    return metrics


def check_metrics_available() -> None:
    """Raise YolocamError (one line) now if ``--metrics`` cannot work, before any work."""
    _metrics_module()


class _ImageMetrics:
    """The metrics of one image's maps, each against one detection's box.

    As ``yolocam evaluate``: deletion/insertion perturb the image in the order of the
    image-resolution heatmap, ties broken by the seed-0 random map of the scale's grid;
    identical maps (EigenCAM's, a class map shared by several boxes) are perturbed once.
    """

    def __init__(self, explainer, fwd, detections, settings: BatchSettings):
        self.module = _metrics_module()
        self.explainer = explainer
        self.fwd = fwd
        self.detections = detections
        self.steps = settings.metrics_steps or self.module.DEFAULT_STEPS
        self._perturb = None
        self._ties: dict[int, Any] = {}
        self._curves: dict[tuple[int, bytes], Any] = {}

    def row(self, scale_map, k: int | None) -> dict:
        if k is None:
            return dict.fromkeys(METRIC_COLUMNS)
        box = self.detections[k].box_xyxy
        heatmap = scale_map.heatmap
        curves = self._curves_of(scale_map)
        return {
            "pointing_game": bool(self.module.pointing_game(heatmap, box)),
            "energy_pointing_game": float(self.module.energy_pointing_game(heatmap, box)),
            "deletion_auc": float(curves.deletion_auc[k]),
            "insertion_auc": float(curves.insertion_auc[k]),
        }

    def _curves_of(self, scale_map):
        if self._perturb is None:
            self._perturb = self.module.PerturbationCurves(
                self.explainer.detector, self.fwd.image, self.detections, self.steps
            )
        heatmap = scale_map.heatmap
        key = (scale_map.scale, hashlib.blake2b(heatmap.tobytes(), digest_size=16).digest())
        if key not in self._curves:
            if scale_map.scale not in self._ties:
                grid = self.explainer.detector.heads[scale_map.scale].grid
                self._ties[scale_map.scale] = self.module.random_heatmap(
                    heatmap.shape,
                    0,
                    grid,
                    lambda g: self.explainer.to_image(g, self.fwd.letterbox),
                )
            self._curves[key] = self._perturb.curves(heatmap, self._ties[scale_map.scale])
        return self._curves[key]


# -- engines -------------------------------------------------------------------------


def _load_detector(settings: BatchSettings):
    from yolocam_core.zoo import load_detector

    return load_detector(settings.model, **dict(settings.model_options))


def _load_explainer(settings: BatchSettings):
    from yolocam_core.explainer import Explainer

    return Explainer(_load_detector(settings))


def _limit_tf_threads(threads: int) -> None:
    """Cap TensorFlow's thread pools (read when TF starts; call before importing it)."""
    os.environ["TF_NUM_INTRAOP_THREADS"] = str(max(1, threads))
    os.environ["TF_NUM_INTEROP_THREADS"] = str(max(1, min(2, threads)))


def _available_cpus() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


_WORKER: dict[str, Any] = {}


def _pool_init(settings: BatchSettings, threads: int) -> None:
    """Initializer of a local pool worker: load the model once."""
    import signal

    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent handles Ctrl-C
    _limit_tf_threads(threads)
    from yolocam_core.cli import _quiet_tensorflow

    _quiet_tensorflow()
    _WORKER["explainer"] = _load_explainer(settings)


def _pool_task(item: ImageItem, out_dir: str, settings: BatchSettings) -> dict:
    return process_image(_WORKER["explainer"], item, out_dir, settings)


def _run_local(
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
    threads = max(1, _available_cpus() // workers)
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
                message = f"{item.rel}: not processed: a worker process died (out of memory?)"
                result = {
                    "status": "error",
                    "error": message,
                    "rows": [error_row(item.rel, message)],
                }
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
        _limit_tf_threads(threads)
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
        self.root = root
        self.out_dir = out_dir
        self.settings = settings
        self.explainer = _load_explainer(settings)

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


def _run_ray(
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


# -- driver --------------------------------------------------------------------------


def run_batch(
    input_dir: str | Path,
    out_dir: str | Path,
    settings: BatchSettings,
    *,
    engine: str = "local",
    workers: int = 1,
    address: str | None = None,
    detector_factory: Callable[[], Any] | None = None,
    progress: bool | None = None,
    log: Callable[[str], None] | None = None,
) -> BatchReport:
    """Explain every image under ``input_dir`` into ``out_dir`` and write the summary.

    Args:
        input_dir: folder of images (searched recursively).
        out_dir: output folder (created); a previous run's output is resumed.
        settings: what to compute.
        engine: ``"local"`` or ``"ray"``.
        workers: local processes, or Ray actors.
        address: a Ray cluster's address (``engine="ray"``); None starts a local Ray.
        detector_factory: loads the detector in this process (default: the zoo model
            ``settings.model``); called only when there is work to do.
        progress: show a progress bar (None: only on a terminal).
        log: called with one line per failed image (default: on stderr).

    Returns:
        A :class:`BatchReport`. The summary has every listed image: its rows from its
        marker, or one error row.

    Raises:
        YolocamError: bad input folder, bad settings, engine problems (one line).
    """
    start = time.perf_counter()
    if engine not in ENGINES:
        raise YolocamError(f"--engine {engine!r}: use one of {', '.join(ENGINES)}")
    if workers < 1:
        raise YolocamError(f"--workers {workers}: must be at least 1")
    if address and engine != "ray":
        raise YolocamError("--address is for --engine ray")
    out = Path(out_dir)
    items = list_images(input_dir, exclude=out)
    if settings.metrics:
        check_metrics_available()
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise YolocamError(
            f"{out}: cannot create the output folder ({exc.strerror or exc})"
        ) from None
    fingerprint = settings.fingerprint()
    results: dict[str, dict] = {}
    pending: list[ImageItem] = []
    for item in items:
        marker = read_marker(image_dir(out, item.rel), fingerprint, _source_stat(item.path))
        if marker is not None:
            results[item.rel] = marker
        else:
            pending.append(item)
    report = BatchReport(total=len(items), skipped=len(results))
    explainer = None
    if pending:  # load the model here only when there is work: validates the settings
        explainer = _make_explainer(settings, detector_factory)

    with contextlib.ExitStack() as stack:
        stream = sys.stderr
        if pending and engine == "ray":
            # Ray's C++ core writes warnings straight to file descriptor 2, and its
            # driver prints the raylet's warnings on stdout; keep both in a log file so
            # that the terminal has only the bar and our one-line messages.
            stream = stack.enter_context(_native_stderr_to(out / RAY_LOG))
            stack.enter_context(
                contextlib.redirect_stdout(
                    stack.enter_context(open(out / RAY_LOG, "a", encoding="utf-8"))
                )
            )
        say = log or (lambda line: print(line, file=stream, flush=True))
        bar = _progress_bar(len(items), len(results), progress, stream)

        def on_result(item: ImageItem, marker: dict) -> None:
            results[item.rel] = marker
            report.computed += 1
            if marker.get("status") != "ok":
                line = f"yolocam: error: {marker.get('error')}"
                if bar is not None and not bar.disable and log is None:
                    bar.write(line, file=stream)
                else:
                    say(line)
            if bar is not None:
                bar.update(1)

        try:
            if pending and engine == "local":
                _run_local(pending, out, settings, workers, explainer, on_result)
            elif pending:
                explainer = None  # the actors load their own
                _run_ray(pending, Path(input_dir), out, settings, workers, address, on_result)
        except KeyboardInterrupt:
            report.interrupted = True
        except YolocamError:
            # The engine failed part-way: keep what finished in the summary, then report.
            _finish(report, items, results, out, interrupted=True)
            raise
        finally:
            if bar is not None:
                bar.close()
    _finish(report, items, results, out, interrupted=report.interrupted)
    report.seconds = time.perf_counter() - start
    return report


@contextlib.contextmanager
def _native_stderr_to(path: Path):
    """Send file descriptor 2 (native libraries' output) to ``path`` for a while; yield a
    stream for our own messages that still reaches the real stderr."""
    sys.stderr.flush()
    saved = os.dup(2)
    target = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    own = None
    try:
        own = sys.stderr
        if _fileno(sys.stderr) == 2:  # a terminal or a pipe, not a capture object
            own = os.fdopen(os.dup(saved), "w", buffering=1, encoding="utf-8", errors="replace")
        os.dup2(target, 2)
        yield own
    finally:
        sys.stderr.flush()
        os.dup2(saved, 2)
        os.close(saved)
        os.close(target)
        if own is not None and own is not sys.stderr:
            own.close()


def _fileno(stream) -> int | None:
    try:
        return stream.fileno()
    except (AttributeError, OSError, ValueError):
        return None


def _make_explainer(settings: BatchSettings, detector_factory):
    """Load the detector in this process, check the settings against it (one-line
    YolocamError) and return an explainer."""
    from yolocam_core.cams import get_method
    from yolocam_core.explainer import Explainer

    for method in settings.methods:
        try:
            get_method(method)
        except ValueError as exc:
            raise YolocamError(str(exc)) from None
    if not settings.methods:
        raise YolocamError("--methods: give at least one method")
    detector = detector_factory() if detector_factory else _load_detector(settings)
    resolve_targets(settings.targets, detector.class_names)
    if settings.scales is not None:
        bad = [s for s in settings.scales if not 0 <= s < len(detector.heads)]
        if bad or not settings.scales:
            raise YolocamError(
                f"--scales: this model has scales 0..{len(detector.heads) - 1}; got {bad or 'none'}"
            )
    return Explainer(detector)


def _progress_bar(total: int, initial: int, progress: bool | None, stream):
    try:
        from tqdm import tqdm
    except ImportError:  # the bar is a nicety; never a reason to fail
        return None
    return tqdm(
        total=total,
        initial=initial,
        unit="img",
        desc="yolocam batch",
        disable=None if progress is None else not progress,
        file=stream,
        dynamic_ncols=True,
    )


def _finish(report, items, results, out, interrupted: bool) -> None:
    rows: list[dict] = []
    for item in items:
        marker = results.get(item.rel)
        if marker is None:
            if interrupted:
                continue  # not reached before the interruption; the next run does it
            message = f"{item.rel}: not processed (the engine returned no result)"
            marker = {"status": "error", "error": message, "rows": [error_row(item.rel, message)]}
        if marker.get("status") != "ok":
            report.failures.append((item.rel, str(marker.get("error"))))
        rows.extend(marker["rows"])
    report.failed = len(report.failures)
    report.summary_csv, report.summary_parquet = write_summary(rows, out)


def summary_frame(rows: Iterable[dict]):
    """The summary rows as a pandas DataFrame with the columns of :data:`SUMMARY_COLUMNS`
    (then any metric columns), typed, in a deterministic order."""
    import pandas as pd

    frame = pd.DataFrame(list(rows))
    extra = [c for c in METRIC_COLUMNS if c in frame.columns]
    extra += sorted(c for c in frame.columns if c not in SUMMARY_COLUMNS and c not in extra)
    for column in SUMMARY_COLUMNS:
        if column not in frame.columns:
            frame[column] = None
    frame = frame[[*SUMMARY_COLUMNS, *extra]]
    dtypes = dict(SUMMARY_COLUMNS) | {c: METRIC_COLUMNS.get(c, "Float64") for c in extra}
    frame = frame.astype(dtypes)
    return frame.reset_index(drop=True)


def write_summary(rows: Sequence[dict], out_dir: Path) -> tuple[Path, Path]:
    """Write ``summary.csv`` and ``summary.parquet`` (each by atomic rename)."""
    frame = summary_frame(rows)
    csv_path, parquet_path = out_dir / SUMMARY_CSV, out_dir / SUMMARY_PARQUET
    for path, write in (
        (csv_path, lambda p: frame.to_csv(p, index=False)),
        (parquet_path, lambda p: frame.to_parquet(p, index=False)),
    ):
        tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
        write(tmp)
        os.replace(tmp, path)
    return csv_path, parquet_path


# -- command line ----------------------------------------------------------------------


def _positive(text: str) -> int:
    import argparse

    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{value} must be at least 1")
    return value


def add_batch_parser(sub):
    """Add ``yolocam batch`` to the subparsers of :func:`yolocam_core.cli.build_parser`."""
    from yolocam_core.cli import _add_model_options, _probability

    batch = sub.add_parser(
        "batch",
        help="explain every image of a folder (resumable; locally or on Ray)",
        description="Per image, a folder with its detections (detections.json), one overlay "
        "PNG and raw map (.npy) per target × method × scale and a done.json marker; a "
        "summary table (summary.csv, summary.parquet) with one row per image × detection × "
        "method × scale. A second run skips finished images and retries failed ones.",
    )
    batch.add_argument("input_dir", metavar="INPUT_DIR", help="folder of images (recursive)")
    batch.add_argument("--out", required=True, metavar="OUT_DIR", help="output folder")
    _add_model_options(batch)
    batch.add_argument(
        "--methods",
        nargs="+",
        default=["gradcam"],
        metavar="METHOD",
        help="CAM methods, space- or comma-separated, or 'all' (default gradcam)",
    )
    batch.add_argument(
        "--targets",
        default="detections",
        help="detections (every detected box; default), class:NAME or seed",
    )
    batch.add_argument(
        "--scales", default="all", help="'all' or comma-separated head indices, e.g. 0,1"
    )
    batch.add_argument("--norm", default="per-map", choices=("per-map", "shared"))
    batch.add_argument("--colormap", default="jet", choices=("jet", "turbo", "viridis"))
    batch.add_argument("--opacity", type=_probability, default=0.5)
    batch.add_argument("--sheet", action="store_true", help="also write a sheet per target")
    batch.add_argument(
        "--metrics",
        action="store_true",
        help="add pointing game, energy pointing game and deletion/insertion AUC per row "
        "(slow: 2·(steps−1) forward passes per map)",
    )
    batch.add_argument(
        "--metrics-steps",
        type=_positive,
        default=None,
        metavar="N",
        help="deletion/insertion steps with --metrics (default: yolocam evaluate's)",
    )
    batch.add_argument(
        "--workers", type=_positive, default=1, help="processes or Ray actors (default 1)"
    )
    batch.add_argument("--engine", default="local", choices=ENGINES, help="default local")
    batch.add_argument(
        "--address",
        default=None,
        help="Ray cluster address for --engine ray (default: start a local Ray)",
    )
    return batch


def _parse_methods(values: Sequence[str]) -> tuple[str, ...]:
    from yolocam_core.cams import method_names

    names = [m.strip() for text in values for m in text.split(",") if m.strip()]
    if "all" in names:
        return tuple(method_names())
    unknown = [m for m in names if m not in method_names()]
    if unknown or not names:
        raise YolocamError(
            f"--methods: unknown {', '.join(map(repr, unknown)) or 'none given'}; "
            f"choose from {', '.join(method_names())} or all"
        )
    return tuple(dict.fromkeys(names))


#: The "your own model" options of ``yolocam_core.cli._add_model_options``, passed on to
#: ``load_detector`` in every worker (as ``cli.detector_from_args`` does in one process).
MODEL_OPTIONS = (
    "weights",
    "classes",
    "anchors",
    "anchor_masks",
    "input_size",
    "letterbox",
    "trust_model_code",
)


def _absolute_if_file(value):
    """Workers (Ray actors especially) may run in another folder: make file paths absolute."""
    if isinstance(value, str) and os.path.isfile(value):
        return os.path.abspath(value)
    return value


def _model_options(args) -> tuple[tuple[str, Any], ...]:
    options = []
    for name in MODEL_OPTIONS:
        value = getattr(args, name, None)
        if value is None or (name == "trust_model_code" and not value):
            continue  # load_detector's default (--no-letterbox, False, is kept)
        options.append((name, _absolute_if_file(value)))
    return tuple(options)


def run(args) -> int:
    """``yolocam batch``: see :func:`yolocam_core.cli.build_parser`."""
    from yolocam_core.cli import EXIT_FAILED, EXIT_OK, detector_from_args

    methods = _parse_methods(args.methods)
    scales = None
    if args.scales != "all":  # the range is checked against the model before any work
        try:
            scales = tuple(int(v) for v in args.scales.split(",") if v.strip())
        except ValueError:
            raise YolocamError(f"--scales {args.scales!r}: use 'all' or indices like 0,1") from None
    settings = BatchSettings(
        model=_absolute_if_file(args.model),
        model_options=_model_options(args),
        score=args.score,
        iou=args.iou,
        methods=methods,
        targets=args.targets,
        scales=scales,
        norm=args.norm,
        colormap=args.colormap,
        opacity=args.opacity,
        sheet=args.sheet,
        metrics=args.metrics,
        metrics_steps=args.metrics_steps
        or (_metrics_module().DEFAULT_STEPS if args.metrics else None),
    )
    report = run_batch(
        args.input_dir,
        args.out,
        settings,
        engine=args.engine,
        workers=args.workers,
        address=args.address,
        detector_factory=lambda: detector_from_args(args),
    )
    where = report.summary_csv
    if report.interrupted:
        done = report.skipped + report.computed
        print(
            f"yolocam: error: interrupted; {done} of {report.total} image(s) are complete and "
            f"kept; run the same command again to resume (summary so far: {where})",
            file=sys.stderr,
        )
        return 130
    print(
        f"{report.total} image(s): {report.computed} processed, {report.skipped} already "
        f"complete, {report.failed} failed, in {report.seconds:.1f} s; summary: "
        f"{report.summary_csv} and {report.summary_parquet.name}"
    )
    if report.failed:
        print(
            f"yolocam: error: {report.failed} of {report.total} image(s) failed; their errors "
            f"are in {where} (status 'error'); run again to retry them",
            file=sys.stderr,
        )
        return EXIT_FAILED
    return EXIT_OK
