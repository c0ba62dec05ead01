"""yolocam: Grad-CAM explanations for YOLO object detectors.

Names are imported lazily, so that ``import yolocam_core.cli`` (and ``yolocam --help``)
does not pay for importing TensorFlow.

Example:
    >>> from yolocam_core import load_detector, load_image
    >>> detector = load_detector("yolov4-tiny")
    >>> detections = detector.detect(load_image("bus.jpg"))
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

_EXPORTS = {
    "DEFAULT_MODEL": "yolocam_core.models",
    "ModelSpec": "yolocam_core.models",
    "load_detector": "yolocam_core.models",
    "sample_images": "yolocam_core.models",
    "Detection": "yolocam_core.detector",
    "Detections": "yolocam_core.detector",
    "Detector": "yolocam_core.detector",
    "Letterbox": "yolocam_core.detector",
    "HeadInfo": "yolocam_core.heads",
    "load_image": "yolocam_core.images",
    "detector_from_keras_model": "yolocam_core.models.keras_import",
    "load_keras_detector": "yolocam_core.models.keras_import",
    "ConfigError": "yolocam_core.errors",
    "ImageError": "yolocam_core.errors",
    "ModelFileError": "yolocam_core.errors",
    "ModelNotFoundError": "yolocam_core.errors",
    "UnsafeModelError": "yolocam_core.errors",
    "WeightsError": "yolocam_core.errors",
    "YolocamError": "yolocam_core.errors",
}

__all__ = [  # noqa: RUF022 - same order as _EXPORTS
    "DEFAULT_MODEL",
    "ModelSpec",
    "load_detector",
    "sample_images",
    "Detection",
    "Detections",
    "Detector",
    "Letterbox",
    "HeadInfo",
    "load_image",
    "detector_from_keras_model",
    "load_keras_detector",
    "ConfigError",
    "ImageError",
    "ModelFileError",
    "ModelNotFoundError",
    "UnsafeModelError",
    "WeightsError",
    "YolocamError",
]


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        value = getattr(importlib.import_module(_EXPORTS[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'yolocam_core' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_EXPORTS))


if TYPE_CHECKING:
    from yolocam_core.detector import Detection, Detections, Detector, Letterbox
    from yolocam_core.errors import (
        ConfigError,
        ImageError,
        ModelFileError,
        ModelNotFoundError,
        UnsafeModelError,
        WeightsError,
        YolocamError,
    )
    from yolocam_core.heads import HeadInfo
    from yolocam_core.images import load_image
    from yolocam_core.models import DEFAULT_MODEL, ModelSpec, load_detector, sample_images
    from yolocam_core.models.keras_import import detector_from_keras_model, load_keras_detector
