"""A 3×3 detector whose gradients, ODAM maps and attributes are worked out by hand.

Layers (all linear, no activation)::

    image (3, 3, 3) uint8 / 255
    neck     1×1 conv, no bias: A = image channels 0 and 1           (3, 3, 2)
    spatial  3×3 conv (after a ZeroPadding2D(1)), no bias: B = w * A (3, 3, 1)
    head     1×1 conv: (tx, ty, tw, th, obj, cls) = B · (1, 0, 0, 1, 1, 1) + bias
             bias = (−4, 0, 0, −4, −4, −4)

One anchor of (2, 3) pixels, one class. With the photo :data:`IMAGE`, B at the centre
cell is 4.0 (worked out below), so every logit that reads B is 0 there: objectness
and class probability are σ(0) = 0.5 and the centre prediction's score is 0.25.
"""

from __future__ import annotations

import keras
import numpy as np

from yolocam_core.detector import Detection, Detector
from yolocam_core.heads import HeadInfo

#: A = image[..., :2] / 255 (rows i, columns j)
A0 = np.array([[0.2, 0.4, 0.2], [0.0, 1.0, 0.2], [0.6, 0.0, 0.4]])
A1 = np.array([[1.0, 0.0, 0.2], [0.4, 0.2, 0.0], [0.0, 0.8, 0.6]])
#: spatial kernel w[dy, dx, k]: B(p) = sum w[dy, dx, k] A[p + (dy − 1, dx − 1), k]
W0 = np.array([[1.0, 0.0, -1.0], [0.0, 2.0, 0.0], [1.0, 0.0, 0.0]])
W1 = np.array([[0.0, 1.0, 0.0], [1.0, -1.0, 0.0], [0.0, 0.0, 2.0]])
# B(1, 1) = channel 0: 1·0.2 + (−1)·0.2 + 2·1.0 + 1·0.6 = 2.6
#           channel 1: 1·0.0 + 1·0.4 + (−1)·0.2 + 2·0.6 = 1.4      -> 4.0
B_CENTRE = 4.0
IMAGE = np.round(np.stack([A0, A1, np.zeros((3, 3))], axis=-1) * 255).astype(np.uint8)


def hand_detector() -> Detector:
    inputs = keras.Input((3, 3, 3), name="image")
    neck = keras.layers.Conv2D(2, 1, use_bias=False, name="neck")(inputs)
    padded = keras.layers.ZeroPadding2D(1, name="spatial_pad")(neck)
    spatial = keras.layers.Conv2D(1, 3, use_bias=False, name="spatial")(padded)
    head = keras.layers.Conv2D(6, 1, name="head")(spatial)
    model = keras.Model(inputs, head, name="hand")
    model.get_layer("neck").set_weights([np.eye(3, 2, dtype=np.float32)[None, None]])
    model.get_layer("spatial").set_weights([np.stack([W0, W1], axis=-1)[..., None].astype("f4")])
    kernel = np.array([1, 0, 0, 1, 1, 1], np.float32)[None, None, None, :]
    bias = np.array([-B_CENTRE, 0, 0, -B_CENTRE, -B_CENTRE, -B_CENTRE], np.float32)
    model.get_layer("head").set_weights([kernel, bias])
    head_info = HeadInfo(
        index=0,
        output_name="head",
        grid=(3, 3),
        stride=1,
        anchors=((2.0, 3.0),),
        num_classes=1,
        scale_x_y=1.0,
        cam_layer="spatial",
    )
    return Detector(model, [head_info], ["thing"], name="hand")


def detection_at(row: int, col: int, score: float = 0.25, scale: int = 0) -> Detection:
    """A detection of class 0 at a cell (its box is the cell, in image pixels)."""
    return Detection(
        box_xyxy=(float(col), float(row), col + 1.0, row + 1.0),
        class_id=0,
        class_name="thing",
        score=score,
        objectness=0.5,
        scale=scale,
        cell=(row, col),
        anchor=0,
    )
