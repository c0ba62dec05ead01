"""Models: the one model description (:class:`ModelSpec`), named models and loading.

Importing this package does not import TensorFlow; loading a model does.

Modules:
    spec: :class:`ModelSpec` and :func:`load_detector`.
    loading: the one dispatcher from a spec to a Detector (named model, cfg, Keras).
    options: the input-size parser and the limits a model file must stay within.
    anchors, classes: the anchors / masks and class-names options.
    zoo: named models and their files; cache: the converted-model cache.
    files: checks every model, weights and names file passes before it is read.
    darknet: cfg parsing, the per-section builders, weights.
    keras_files, keras_safety, keras_import: reading Keras files with bounded sizes,
        the code check, and making a Detector of a Keras model.
    layers, activations: yolocam's registered Keras layers and activations.

Example:
    >>> from yolocam_core.models import ModelSpec
    >>> detector = ModelSpec.from_options("yolov3.cfg", input_size=608).load()
"""

from __future__ import annotations

from yolocam_core.models.anchors import parse_anchors, parse_masks
from yolocam_core.models.classes import parse_classes
from yolocam_core.models.options import parse_input_size
from yolocam_core.models.spec import ModelSpec, load_detector
from yolocam_core.models.zoo import DEFAULT_MODEL, ZOO, sample_images

__all__ = [
    "DEFAULT_MODEL",
    "ZOO",
    "ModelSpec",
    "load_detector",
    "parse_anchors",
    "parse_classes",
    "parse_input_size",
    "parse_masks",
    "sample_images",
]
