"""Everything the app caches. Models are shared by every session (``cache_resource``,
keyed by a model name); results are cached per image hash and parameters
(``cache_data``). Drawing (colour map, opacity) is never cached here, so changing
it never recomputes gradients."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import cv2
import numpy as np
import streamlit as st

from yolocam_core.detector import Detection
from yolocam_core.explainer import Explainer, Explanation
from yolocam_core.images import load_image
from yolocam_core.targets import ClassTarget, DetectionTarget, SeedTarget, Target
from yolocam_core.zoo import load_detector, sample_images


@dataclass(frozen=True)
class TargetSpec:
    """A hashable description of a target: ("detection", k) / ("class", id) / ("seed",)."""

    kind: str
    index: int = -1

    def build(self, detections: list[Detection]) -> Target:
        if self.kind == "detection":
            return DetectionTarget(detections[self.index])
        if self.kind == "class":
            return ClassTarget(self.index)
        return SeedTarget()


@st.cache_resource(show_spinner="Loading the model (converted once, then cached on disk)…")
def get_explainer(model_name: str) -> Explainer:
    """One explainer per model for the whole server; read-only and thread-safe."""
    return Explainer(load_detector(model_name))


@st.cache_data(show_spinner=False)
def samples() -> dict[str, bytes]:
    """Sample photos shipped with the default model's package, name -> bytes."""
    return {name: path.read_bytes() for name, path in sample_images().items()}


def image_key(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()[:32]


# The app works on a copy whose longer side is at most this (the network sees 416 px
# anyway); it keeps heatmaps, caches and browser payloads small.
DISPLAY_MAX_SIDE = 1280


@st.cache_data(max_entries=16, show_spinner=False)
def decode_image(key: str, _data: bytes) -> tuple[np.ndarray, tuple[int, int]]:
    """The image for display, (H, W, 3) uint8 RGB, and its original (height, width).

    Raises ImageError for anything that is not a usable image.
    """
    image = load_image(_data)
    original = image.shape[:2]
    scale = DISPLAY_MAX_SIDE / max(original)
    if scale < 1:
        size = (round(original[1] * scale), round(original[0] * scale))
        image = cv2.resize(image, size, interpolation=cv2.INTER_AREA)
    return image, original


@st.cache_data(max_entries=64, show_spinner=False)
def detect(model_name: str, key: str, _image: np.ndarray, score: float, iou: float):
    explainer = get_explainer(model_name)
    return explainer.detect(explainer.forward(_image), score, iou)


@st.cache_data(max_entries=24, show_spinner=False)
def explain(
    model_name: str,
    key: str,
    _image: np.ndarray,
    score: float,
    iou: float,
    target: TargetSpec,
    method: str,
    scales: tuple[int, ...],
    norm: str,
    layers: tuple[tuple[int, str], ...] = (),
) -> Explanation:
    """One target's explanation. Detections come from :func:`explain_detections`, which
    explains all of them in one pass, so that switching between them is instant."""
    detections = detect(model_name, key, _image, score, iou)
    if target.kind == "detection" and target.index < MAX_BATCH:
        every = explain_detections(
            model_name, key, _image, score, iou, method, scales, norm, layers
        )
        return every[target.index]
    return get_explainer(model_name).explain(
        _image,
        target.build(detections),
        method=method,
        scales=list(scales),
        layer=dict(layers) or None,
        norm=norm,
    )


# Explaining detections in one batch pays off up to this many; more go one by one.
MAX_BATCH = 30


@st.cache_data(max_entries=3, show_spinner=False)
def explain_detections(
    model_name: str,
    key: str,
    _image: np.ndarray,
    score: float,
    iou: float,
    method: str,
    scales: tuple[int, ...],
    norm: str,
    layers: tuple[tuple[int, str], ...] = (),
) -> list[Explanation]:
    """Every detection explained from one forward pass (``Explainer.explain_many``)."""
    detections = detect(model_name, key, _image, score, iou)
    count = min(len(detections), MAX_BATCH)
    targets = [TargetSpec("detection", k).build(detections) for k in range(count)]
    return get_explainer(model_name).explain_many(
        _image, targets, method=method, scales=list(scales), layer=dict(layers) or None, norm=norm
    )
