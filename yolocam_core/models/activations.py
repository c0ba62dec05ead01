"""Activations the Keras YOLO projects save by name, and everything passed to Keras
as ``custom_objects`` when a model file is loaded.

keras-YOLOv3-model-set and friends save ``mish``, ``swish``, ``hard_swish``,
``hard_sigmoid`` and ``relu6`` by name; these are registered so that such files load
(the module a file names is never imported). Departure: ``hard_sigmoid`` is read as
``relu6(x + 3) / 6`` (keras-YOLOv3-model-set's MobileNetV3 definition, and Keras 3's),
not tf.keras 2's built-in ``0.2·x + 0.5``.
"""

from __future__ import annotations

import keras
from keras import ops

from yolocam_core.models.layers import CUSTOM_OBJECTS as LAYER_OBJECTS


@keras.saving.register_keras_serializable(package="yolocam", name="mish")
def mish(x):
    """``x · tanh(softplus(x))`` (YOLOv4)."""
    return x * ops.tanh(ops.softplus(x))


@keras.saving.register_keras_serializable(package="yolocam", name="swish")
def swish(x):
    """``x · sigmoid(x)`` (EfficientNet; Keras' ``silu``)."""
    return x * ops.sigmoid(x)


@keras.saving.register_keras_serializable(package="yolocam", name="hard_sigmoid")
def hard_sigmoid(x):
    """``relu6(x + 3) / 6`` (MobileNetV3)."""
    return ops.relu6(x + 3.0) / 6.0


@keras.saving.register_keras_serializable(package="yolocam", name="hard_swish")
def hard_swish(x):
    """``x · relu6(x + 3) / 6`` (MobileNetV3)."""
    return x * ops.relu6(x + 3.0) / 6.0


@keras.saving.register_keras_serializable(package="yolocam", name="relu6")
def relu6(x):
    """``min(max(x, 0), 6)``."""
    return ops.relu6(x)


ACTIVATIONS = {
    "mish": mish,
    "swish": swish,
    "hard_sigmoid": hard_sigmoid,
    "hard_swish": hard_swish,
    "relu6": relu6,
}
CUSTOM_OBJECTS = {**ACTIVATIONS, **LAYER_OBJECTS}
"""Everything passed as ``custom_objects`` when loading: the activations above and
yolocam's own Darknet layers (so converted models load too)."""
