"""Models: the one model description (:class:`ModelSpec`), named models and loading.

Example:
    >>> from yolocam_core.models import ModelSpec
    >>> detector = ModelSpec.from_options("yolov3.cfg", input_size=608).load()
"""

from __future__ import annotations

from yolocam_core.models.spec import DEFAULT_MODEL, ModelSpec
from yolocam_core.zoo import ZOO, load_detector, sample_images

__all__ = ["DEFAULT_MODEL", "ZOO", "ModelSpec", "load_detector", "sample_images"]
