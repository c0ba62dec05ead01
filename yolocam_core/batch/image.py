"""One image: detect, explain, write its folder and its summary rows (and metrics)."""

from __future__ import annotations

import hashlib
import json
import shutil
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from yolocam_core.batch.folders import image_dir, safe_name, write_json_atomic
from yolocam_core.batch.settings import (
    DONE_MARKER,
    ERROR_MARKER,
    FORMAT_VERSION,
    METRIC_COLUMNS,
    SUMMARY_COLUMNS,
    BatchSettings,
    ImageItem,
    source_stat,
)
from yolocam_core.errors import YolocamError


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
    source = source_stat(item.path)
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
        write_json_atomic(folder / DONE_MARKER, done)  # last: the image is now complete
        return done
    except Exception as exc:  # recorded per image (a full disk too); the run goes on
        seconds = time.perf_counter() - start
        message = _image_error_message(item.rel, exc)
        marker |= {"status": "error", "error": message, "rows": [error_row(item.rel, message)]}
        marker["rows"][0]["seconds"] = seconds
        try:
            folder.mkdir(parents=True, exist_ok=True)
            write_json_atomic(folder / ERROR_MARKER, marker)
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
            prefix = safe_name(f"{stem}_{method}")
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


class _ImageMetrics:
    """The metrics of one image's maps, each against one detection's box.

    As ``yolocam evaluate``: deletion/insertion perturb the image in the order of the
    image-resolution heatmap, ties broken by the seed-0 random map of the scale's grid;
    identical maps (EigenCAM's, a class map shared by several boxes) are perturbed once.
    """

    def __init__(self, explainer, fwd, detections, settings: BatchSettings):
        from yolocam_core import metrics  # here: keeps cv2 out of `yolocam --help`

        self.metrics = metrics
        self.explainer = explainer
        self.fwd = fwd
        self.detections = detections
        self.steps = settings.metrics_steps or self.metrics.DEFAULT_STEPS
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
            "pointing_game": bool(self.metrics.pointing_game(heatmap, box)),
            "energy_pointing_game": float(self.metrics.energy_pointing_game(heatmap, box)),
            "deletion_auc": float(curves.deletion_auc[k]),
            "insertion_auc": float(curves.insertion_auc[k]),
        }

    def _curves_of(self, scale_map):
        if self._perturb is None:
            self._perturb = self.metrics.PerturbationCurves(
                self.explainer.detector, self.fwd.image, self.detections, self.steps
            )
        heatmap = scale_map.heatmap
        key = (scale_map.scale, hashlib.blake2b(heatmap.tobytes(), digest_size=16).digest())
        if key not in self._curves:
            if scale_map.scale not in self._ties:
                grid = self.explainer.detector.heads[scale_map.scale].grid
                self._ties[scale_map.scale] = self.metrics.random_heatmap(
                    heatmap.shape,
                    0,
                    grid,
                    lambda g: self.explainer.to_image(g, self.fwd.letterbox),
                )
            self._curves[key] = self._perturb.curves(heatmap, self._ties[scale_map.scale])
        return self._curves[key]
