"""One image: detect, explain, write its folder and its summary rows (and metrics)."""

from __future__ import annotations

import shutil
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from yolocam_core.batch.folders import image_dir, write_json_atomic
from yolocam_core.batch.settings import (
    DONE_MARKER,
    ERROR_MARKER,
    FORMAT_VERSION,
    METRIC_COLUMNS,
    SUMMARY_COLUMNS,
    TARGET_CHOICES,
    BatchSettings,
    ImageItem,
    source_stat,
)
from yolocam_core.errors import YolocamError, for_option
from yolocam_core.files import shown

if TYPE_CHECKING:
    from yolocam_core.detector import Detection
    from yolocam_core.evaluate import ImageScorer
    from yolocam_core.explainer import Explanation
    from yolocam_core.outputs import SavedExplanation
    from yolocam_core.targets import Target, TargetSpec


def resolve_targets(text: str, class_names: Sequence[str]) -> TargetSpec | None:
    """``"detections"`` -> None (every detection, one target each); ``"class:NAME"`` or
    ``"seed"`` -> its :class:`~yolocam_core.targets.TargetSpec`.

    Raises:
        YolocamError: anything else, or an unknown class; the message says what to use.
    """
    from yolocam_core.targets import TargetSpec

    if text == "detections":
        return None
    if text.partition(":")[0] not in ("class", "seed"):
        raise YolocamError(f"--targets {text!r}: use {TARGET_CHOICES}")
    try:
        return TargetSpec.parse(text, class_names)
    except YolocamError as exc:
        raise for_option(exc, "--targets") from None


def _base_row(rel: str) -> dict:
    return dict.fromkeys(SUMMARY_COLUMNS) | {"image": rel}


def error_row(rel: str, message: str, seconds: float | None = None) -> dict:
    """The summary row of an image that failed."""
    return _base_row(shown(rel)) | {"status": "error", "error": message, "seconds": seconds}


def _image_error_message(rel: str, exc: Exception) -> str:
    """``"<rel>: <what was wrong>"`` whatever way the image was read."""
    from yolocam_core.errors import ImageError

    rel = shown(rel)
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
    marker = _marker_head(item, settings)
    try:
        if folder.exists():  # stale or half-written by an interrupted run
            shutil.rmtree(folder)
        folder.mkdir(parents=True)
        rows = _explain_into(explainer, item, folder, Path(out_dir), settings, data)
        seconds = time.perf_counter() - start
        for row in rows:
            row["seconds"] = seconds
        done = marker | {"status": "ok", "error": None, "rows": rows, "seconds": seconds}
        write_json_atomic(folder / DONE_MARKER, done)  # last: the image is now complete
        return done
    except Exception as exc:  # recorded per image (a full disk too); the run goes on
        message = _image_error_message(item.rel, exc)
        return record_failure(folder, marker, message, time.perf_counter() - start)


def record_failure(folder: Path, marker: dict, message: str, seconds: float | None) -> dict:
    """``marker`` as a failure: its error row; written as ``error.json`` if possible.

    Args:
        folder: the image's output folder (created if needed).
        marker: ``format``, ``fingerprint``, ``image`` and ``source`` of the image.
        message: ``"<image>: <what was wrong>"``.
        seconds: time spent, or None.
    """
    failed = marker | {
        "status": "error",
        "error": message,
        "rows": [error_row(marker["image"], message, seconds)],
    }
    try:
        folder.mkdir(parents=True, exist_ok=True)
        write_json_atomic(folder / ERROR_MARKER, failed)
    except OSError:
        pass  # the summary still records the error from the returned marker
    return failed


def fail_image(item: ImageItem, out_dir: str | Path, settings: BatchSettings, problem: str):
    """Record an image that was not processed (a named pipe, which is never read; a
    worker that died): its failure marker, ``problem`` said after the image's name."""
    folder = image_dir(out_dir, item.rel)
    message = f"{shown(item.rel)}: {problem}"
    return record_failure(folder, _marker_head(item, settings), message, 0.0)


def _marker_head(item: ImageItem, settings: BatchSettings) -> dict:
    """What every marker of an image starts with: the settings' fingerprint and the
    source file's size and modification time (what makes the marker stale)."""
    return {
        "format": FORMAT_VERSION,
        "fingerprint": settings.fingerprint(),
        "image": shown(item.rel),
        "source": source_stat(item.path),
    }


def _read(item: ImageItem, data: bytes | None) -> bytes:
    """The file's bytes (a regular file only: a named pipe would block for ever)."""
    from yolocam_core.errors import ImageError
    from yolocam_core.files import read_regular_file

    if data is not None:
        return data
    try:
        return read_regular_file(item.path)
    except ImageError as exc:
        raise ImageError(str(exc).replace(shown(item.path), shown(item.rel), 1)) from None


@dataclass(frozen=True)
class _Job:
    """One target of one image: what is explained, its files' stem, and the detections
    whose rows show its maps (None: a row without a box)."""

    kind: str
    target: Target
    stem: str
    about: tuple[int | None, ...]


def _jobs(spec: TargetSpec | None, detections, class_names: Sequence[str]) -> list[_Job]:
    from yolocam_core.outputs import target_stem
    from yolocam_core.targets import DetectionTarget

    if spec is None:  # every detection
        return [
            _Job("detection", DetectionTarget(d), target_stem("detection", k, d.class_name), (k,))
            for k, d in enumerate(detections)
        ]
    name = class_names[spec.index] if spec.kind == "class" else ""
    about = [
        k for k, d in enumerate(detections) if spec.kind == "class" and d.class_id == spec.index
    ]
    stem = target_stem(spec.kind, spec.index, name)
    return [_Job(spec.kind, spec.build(detections), stem, tuple(about) or (None,))]


def _explain_into(explainer, item, folder, out_dir, settings, data) -> list[dict]:
    """Detect, write ``detections.json``, explain every target × method, save the files;
    the image's summary rows."""
    from yolocam_core.images import load_image
    from yolocam_core.outputs import (
        detections_report,
        explanation_prefix,
        report_notes,
        save_explanation,
    )

    image = load_image(_read(item, data))
    detector = explainer.detector
    fwd = explainer.forward(image)
    detections = explainer.detect(fwd, settings.score, settings.iou, settings.max_detections)
    image_note = detector.image_warning(image.shape[:2])
    extra = report_notes(detections, image_note)
    report = detections_report(
        item.rel,
        image.shape[:2],
        detections,
        model=settings.model.name or settings.model.source,
        score_threshold=settings.score,
        iou_threshold=settings.iou,
        max_detections=settings.max_detections,
        **extra,
    )
    write_json_atomic(folder / "detections.json", report, indent=1)
    base = _base_row(shown(item.rel)) | {
        "status": "ok",
        "width": image.shape[1],
        "height": image.shape[0],
        "n_detections": len(detections),
        "note": " ".join(text for text in (image_note, detections.note()) if text) or None,
    }
    jobs = _jobs(
        resolve_targets(settings.targets, detector.class_names), detections, detector.class_names
    )
    if not jobs:
        return [base]  # no detections: one row says so
    scales = None if settings.scales is None else list(settings.scales)
    scorer = _scorer(explainer, fwd, detections, settings) if settings.metrics else None
    rows = []
    for name in settings.methods:
        cam = settings.method_for(name, [job.kind for job in jobs])
        results = explainer.explain_many(
            fwd, [job.target for job in jobs], cam, scales, norm=settings.norm
        )
        for job, result in zip(jobs, results, strict=True):
            saved = save_explanation(
                folder,
                explanation_prefix(job.stem, result.method),
                image,
                result,
                image_name=shown(item.rel),
                colormap=settings.colormap,
                opacity=settings.opacity,
                sheet=settings.sheet,
                compress_level=1,
                model=settings.model.name or settings.model.source,
            )
            rows.extend(_rows(base, job, result, saved, detections, scorer, out_dir))
    return rows


def _scorer(explainer, fwd, detections, settings: BatchSettings) -> ImageScorer:
    from yolocam_core.evaluate import ImageScorer, ScoringSettings
    from yolocam_core.metrics import DEFAULT_STEPS

    scoring = ScoringSettings(steps=settings.metrics_steps or DEFAULT_STEPS)
    return ImageScorer(explainer.detector, fwd, detections, scoring)


def _rows(
    base: dict,
    job: _Job,
    result: Explanation,
    saved: SavedExplanation,
    detections: Sequence[Detection],
    scorer: ImageScorer | None,
    out_dir: Path,
) -> list[dict]:
    """One row per detection the job is about × explained scale."""
    from yolocam_core import render
    from yolocam_core.report import scale_fields

    rows = []
    for k in job.about:
        for scale_map, files in zip(result.maps, saved.maps, strict=True):
            fields = scale_fields(scale_map)
            row = base | {
                "target": job.kind,
                "target_label": result.target,
                "method": result.method,
                "scale": scale_map.scale,
                "grid": files.grid,
                "layer": scale_map.layer,
                "target_score": float(scale_map.score),
                "relative": fields["relative"],
                "share": fields["share"],
                "weak": fields["weak"],
                "norm": result.norm,
                "ignores_target": render.ignores_target(result.method),
                "overlay": shown(files.overlay.relative_to(out_dir).as_posix()),
                "raw_map": shown(files.raw_map.relative_to(out_dir).as_posix()),
            }
            if k is not None:
                row |= _detection_columns(k, detections[k])
            if scorer is not None:
                row |= _metric_columns(scorer, scale_map, k)
            rows.append(row)
    return rows


def _detection_columns(k: int, det: Detection) -> dict[str, Any]:
    x1, y1, x2, y2 = (float(v) for v in det.box_xyxy)
    return {
        "detection": k,
        "class_id": det.class_id,
        "class_name": det.class_name,
        "det_score": float(det.score),
        "x1": x1,
        "y1": y1,
        "x2": x2,
        "y2": y2,
        "det_scale": det.scale,
    }


def _metric_columns(scorer: ImageScorer, scale_map, k: int | None) -> dict[str, Any]:
    """The metrics of one map against detection ``k`` (empty for a row without a box)."""
    if k is None:
        return dict.fromkeys(METRIC_COLUMNS)
    return asdict(scorer.score(scale_map.scale, scale_map.heatmap, k))
