"""Bytes for the download buttons (no Streamlit here, so they are testable alone)."""

from __future__ import annotations

import io
import json
import zipfile

import numpy as np
from PIL import Image

from yolocam_core import render
from yolocam_core.outputs import detections_report


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


def sheet_png(image: np.ndarray, explanation, colormap: str, opacity: float) -> bytes:
    return png_bytes(render.sheet(image, explanation, colormap, opacity))


def maps_zip(explanation) -> bytes:
    """A zip with one ``scale<k>_<h>x<w>.npy`` raw grid map per scale."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for m in explanation.maps:
            item = io.BytesIO()
            np.save(item, m.grid_map)
            h, w = m.grid_map.shape
            archive.writestr(f"scale{m.scale}_{h}x{w}.npy", item.getvalue())
    return buffer.getvalue()


def detections_json(name: str, size: tuple[int, int], detections) -> str:
    """Same schema as ``yolocam detect --json`` (one image)."""
    report = detections_report(name, size, detections)
    return json.dumps(report, indent=2, ensure_ascii=False)
