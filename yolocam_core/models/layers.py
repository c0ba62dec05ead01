"""Keras layers for the few Darknet operations Keras has no layer for.

They are registered as serializable so that a converted model saved as ``.keras``
loads again with Keras' safe mode on (no Python code is stored in the file).
"""

from __future__ import annotations

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="yolocam")
class ChannelSlice(keras.layers.Layer):
    """Darknet ``[route] groups=G group_id=I``: the I-th of G equal channel groups.

    Input (B, H, W, C) -> output (B, H, W, C // G).
    """

    def __init__(self, groups: int, group_id: int, **kwargs):
        super().__init__(**kwargs)
        self.groups = int(groups)
        self.group_id = int(group_id)

    def call(self, inputs):
        size = inputs.shape[-1] // self.groups
        start = size * self.group_id
        return inputs[..., start : start + size]

    def compute_output_shape(self, input_shape):
        return (*input_shape[:-1], input_shape[-1] // self.groups)

    def get_config(self):
        return {**super().get_config(), "groups": self.groups, "group_id": self.group_id}


@keras.saving.register_keras_serializable(package="yolocam")
class DarknetMaxPool(keras.layers.Layer):
    """Darknet ``[maxpool]``: pads ``padding // 2`` before and the rest after with -inf.

    Output size is ``(n + padding - size) // stride + 1`` per spatial axis, as in
    Darknet's ``maxpool_layer.c``; Keras' ``same`` padding differs for some sizes.
    Input (B, H, W, C) -> output (B, H', W', C).
    """

    def __init__(self, size: int, stride: int, padding: int, **kwargs):
        super().__init__(**kwargs)
        self.size = int(size)
        self.stride = int(stride)
        self.padding = int(padding)

    def call(self, inputs):
        before = self.padding // 2
        after = self.padding - before
        if self.padding:
            inputs = ops.pad(
                inputs,
                [[0, 0], [before, after], [before, after], [0, 0]],
                constant_values=float("-inf"),
            )
        return ops.max_pool(inputs, self.size, self.stride, padding="valid")

    def compute_output_shape(self, input_shape):
        def out(n):
            return None if n is None else (n + self.padding - self.size) // self.stride + 1

        return (input_shape[0], out(input_shape[1]), out(input_shape[2]), input_shape[3])

    def get_config(self):
        return {
            **super().get_config(),
            "size": self.size,
            "stride": self.stride,
            "padding": self.padding,
        }


CUSTOM_OBJECTS = {"ChannelSlice": ChannelSlice, "DarknetMaxPool": DarknetMaxPool}
