"""Bytes for the download buttons (no Streamlit here, so they are testable alone)."""

from __future__ import annotations

import io
import json
import zipfile

import numpy as np
from PIL import Image

from yolocam_core import render
from yolocam_core.outputs import detections_report
from yolocam_core.report import explanation_metadata, html_report


def png_bytes(image: np.ndarray) -> bytes:
    """(H, W, 3) uint8 RGB -> PNG bytes."""
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format="PNG")
    return buffer.getvalue()


def jpeg_bytes(image: np.ndarray, quality: int = 85) -> bytes:
    """(H, W, 3) uint8 RGB -> JPEG bytes."""
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format="JPEG", quality=quality)
    return buffer.getvalue()


def sheet_png(
    image: np.ndarray, explanation, colormap: str, opacity: float, model: str | None = None
) -> bytes:
    """The side-by-side sheet (scores, normalisation, colour bar, model, version)."""
    return png_bytes(render.sheet(image, explanation, colormap, opacity, model=model))


def maps_zip(
    explanation,
    model: str | None = None,
    image_name: str | None = None,
    extra: dict | None = None,
) -> bytes:
    """A zip with one ``scale<k>_<h>x<w>.npy`` raw grid map per scale and
    ``metadata.json`` (:func:`yolocam_core.report.explanation_metadata`: what each map
    explains, its scale's score and share, the normalisation, model and version)."""
    buffer = io.BytesIO()
    files = {}
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for m in explanation.maps:
            item = io.BytesIO()
            np.save(item, m.grid_map)
            h, w = m.grid_map.shape
            files[m.scale] = f"scale{m.scale}_{h}x{w}.npy"
            archive.writestr(files[m.scale], item.getvalue())
        meta = explanation_metadata(
            explanation, model=model, image_name=image_name, files=files, extra=extra
        )
        meta["note"] = (
            "Each .npy is the raw map at its layer's grid (rows, cols), float32, before "
            "resizing and normalisation."
        )
        archive.writestr("metadata.json", json.dumps(meta, indent=2, ensure_ascii=False))
    return buffer.getvalue()


def report_html(image: np.ndarray, explanation, **options) -> bytes:
    """The self-contained HTML report (:func:`yolocam_core.report.html_report`), UTF-8."""
    return html_report(image, explanation, **options).encode("utf-8")


def detections_json(name: str, size: tuple[int, int], detections) -> str:
    """Same schema as ``yolocam detect --json`` (one image)."""
    report = detections_report(name, size, detections)
    return json.dumps(report, indent=2, ensure_ascii=False)
