"""What we know about each YOLO head, and how its raw output decodes into boxes."""

from __future__ import annotations

from dataclasses import asdict, dataclass

import tensorflow as tf


@dataclass(frozen=True)
class HeadInfo:
    """One YOLO head (one scale) of a detector.

    Attributes:
        index: position of the head among the model's outputs (0 = first).
        output_name: name of the Keras layer whose output is the raw head tensor,
            shape (B, H, W, A * (5 + C)).
        grid: (H, W) of the head's grid, e.g. (13, 13) for a 416 input at stride 32.
        stride: input pixels per grid cell.
        anchors: the head's (masked) anchors, (width, height) in input pixels.
        num_classes: C.
        scale_x_y: Darknet's ``scale_x_y`` (1.0 = plain sigmoid offsets).
        cam_layer: name of the layer whose activations feed the head's final 1×1
            convolution; Grad-CAM uses it for this scale.
    """

    index: int
    output_name: str
    grid: tuple[int, int]
    stride: int
    anchors: tuple[tuple[float, float], ...]
    num_classes: int
    scale_x_y: float
    cam_layer: str

    @property
    def num_anchors(self) -> int:
        return len(self.anchors)

    @property
    def label(self) -> str:
        """Human caption, e.g. ``"13×13 · stride 32"``."""
        return f"{self.grid[0]}×{self.grid[1]} · stride {self.stride}"

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> HeadInfo:
        return cls(
            index=int(data["index"]),
            output_name=str(data["output_name"]),
            grid=(int(data["grid"][0]), int(data["grid"][1])),
            stride=int(data["stride"]),
            anchors=tuple((float(w), float(h)) for w, h in data["anchors"]),
            num_classes=int(data["num_classes"]),
            scale_x_y=float(data["scale_x_y"]),
            cam_layer=str(data["cam_layer"]),
        )


def decode_head(
    raw: tf.Tensor, head: HeadInfo, input_size: tuple[int, int]
) -> dict[str, tf.Tensor]:
    """Decode one head's raw output, differentiably, as Darknet's ``[yolo]`` layer does.

    Args:
        raw: (B, h, w, A * (5 + C)) raw head tensor: the whole (H, W) grid, or a crop of
            it, whose box centres are then relative to the crop's first cell.
        head: the head's metadata.
        input_size: (height, width) of the network input in pixels.

    Returns:
        ``boxes`` (B, h, w, A, 4) as (cx, cy, w, h) in units of the network input
        (0..1); ``objectness`` (B, h, w, A); ``class_probs`` (B, h, w, A, C), sigmoid
        per class; ``scores`` (B, h, w, A, C) = objectness × class probability.
    """
    grid_h, grid_w = head.grid
    rows_in = raw.shape[1] if raw.shape[1] is not None else tf.shape(raw)[1]
    cols_in = raw.shape[2] if raw.shape[2] is not None else tf.shape(raw)[2]
    num_anchors = head.num_anchors
    raw = tf.reshape(raw, (-1, rows_in, cols_in, num_anchors, 5 + head.num_classes))
    xy_raw, wh_raw, obj_raw, cls_raw = tf.split(raw, (2, 2, 1, head.num_classes), axis=-1)

    cols, rows = tf.meshgrid(tf.range(cols_in), tf.range(rows_in))
    cell_xy = tf.cast(tf.stack([cols, rows], axis=-1), raw.dtype)[None, :, :, None, :]
    scale = head.scale_x_y
    xy = tf.sigmoid(xy_raw) * scale - 0.5 * (scale - 1.0) + cell_xy
    xy = xy / tf.constant([grid_w, grid_h], dtype=raw.dtype)

    anchors = tf.constant(head.anchors, dtype=raw.dtype)  # (A, 2) as (w, h)
    in_h, in_w = input_size
    wh = tf.exp(wh_raw) * anchors / tf.constant([in_w, in_h], dtype=raw.dtype)

    objectness = tf.sigmoid(obj_raw[..., 0])
    class_probs = tf.sigmoid(cls_raw)
    return {
        "boxes": tf.concat([xy, wh], axis=-1),
        "objectness": objectness,
        "class_probs": class_probs,
        "scores": objectness[..., None] * class_probs,
    }
