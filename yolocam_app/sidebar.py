"""The one sidebar every page shares, drawn once per run by ``app.py``."""

from __future__ import annotations

from dataclasses import dataclass

import streamlit as st

from yolocam_app import resources
from yolocam_core.cams import get_method, method_names
from yolocam_core.render import COLORMAPS
from yolocam_core.zoo import DEFAULT_MODEL, ZOO

UPLOAD_TYPES = ["jpg", "jpeg", "png", "webp", "bmp"]
NORM_LABELS = {"per-map": "Per map (as the article)", "shared": "Shared across scales"}


@dataclass(frozen=True)
class Settings:
    """What the sidebar chose."""

    model_name: str
    image_name: str
    image_bytes: bytes | None  # None: an upload was asked for but none given yet
    score: float
    iou: float
    method: str
    colormap: str
    opacity: float
    norm: str


def sidebar_ui() -> Settings:
    """Draw the shared sidebar and return its values."""
    bar = st.sidebar
    bar.header("yolocam")
    model_name = bar.selectbox(
        "Model",
        list(ZOO),
        index=list(ZOO).index(DEFAULT_MODEL),
        help=ZOO[DEFAULT_MODEL].description,
    )
    source = bar.radio("Image", ["Sample photo", "Upload"], horizontal=True, key="source")
    if source == "Sample photo":
        photos = resources.samples()
        name = bar.selectbox("Sample", list(photos), key="sample")
        data: bytes | None = photos[name]
    else:
        upload = bar.file_uploader(
            "Photo (JPEG, PNG, WebP or BMP)", type=UPLOAD_TYPES, key="upload"
        )
        name = upload.name if upload is not None else ""
        data = upload.getvalue() if upload is not None else None
    bar.subheader("Detection")
    score = bar.slider("Score threshold", 0.05, 0.95, 0.25, 0.05, key="score")
    iou = bar.slider("NMS IoU threshold", 0.1, 0.9, 0.45, 0.05, key="iou")
    bar.subheader("Explanation")
    method = bar.selectbox(
        "CAM method",
        method_names(),
        index=method_names().index("gradcam"),
        format_func=lambda m: get_method(m).title,
        key="method",
        help="seed = the article's guided Grad-CAM; eigencam needs no gradients.",
    )
    norm = bar.radio(
        "Normalisation",
        list(NORM_LABELS),
        format_func=NORM_LABELS.get,
        key="norm",
        help="Per map stretches each scale to [0, 1]; shared keeps scales comparable.",
    )
    colormap = bar.selectbox("Colour map", list(COLORMAPS), key="colormap")
    opacity = bar.slider("Heatmap opacity", 0.0, 1.0, 0.5, 0.05, key="opacity")
    return Settings(model_name, name, data, score, iou, method, colormap, opacity, norm)
