"""yolocam: Grad-CAM explanations for YOLO object detectors.

Example:
    >>> from yolocam_core import load_detector, load_image
    >>> detector = load_detector("yolov4-tiny")
    >>> detections = detector.detect(load_image("bus.jpg"))
"""

from yolocam_core.detector import Detection, Detector, Letterbox
from yolocam_core.errors import (
    ConfigError,
    ImageError,
    ModelNotFoundError,
    WeightsError,
    YolocamError,
)
from yolocam_core.heads import HeadInfo
from yolocam_core.images import load_image
from yolocam_core.zoo import DEFAULT_MODEL, load_detector, sample_images

__all__ = [
    "DEFAULT_MODEL",
    "ConfigError",
    "Detection",
    "Detector",
    "HeadInfo",
    "ImageError",
    "Letterbox",
    "ModelNotFoundError",
    "WeightsError",
    "YolocamError",
    "load_detector",
    "load_image",
    "sample_images",
]
