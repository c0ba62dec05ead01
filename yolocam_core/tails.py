"""Tails: the part of a model between an explained layer and one head's output.

The gradient of a head's score with respect to a layer ``L`` only needs the layers on
the paths from ``L`` to the head output (the *tail*); every other tensor the tail
reads (a *side input*, e.g. the other branch of a concatenation) does not depend on
``L`` and is a constant for that gradient. A :class:`Tail` runs those layers, in
graph order, on tensors of any spatial size (a Keras functional sub-model would
insist on the full map's shape), which lets the explainer run it on crops.

Why crops: one prediction's gradient at ``L`` is non-zero only inside the receptive
field of its cell. :attr:`Tail.radius` bounds that field (in network-input pixels)
from the layer types; a crop of ``L`` (and of each side input) that covers the
target's cells plus that radius, kept inside the map so the map's true borders keep
their zero padding, reproduces the head output at those cells exactly, and so the
gradient. Crops are aligned to the tail's largest stride so that pooling windows and
upsampled cells line up as in the full map.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import keras
import numpy as np
import tensorflow as tf

from yolocam_core.errors import YolocamError
from yolocam_core.keras_internals import call_count, input_node, parent_layers, producer_name

#: Layers that act on each location alone (no spatial extent), by class name.
_POINTWISE = {
    "Activation",
    "LeakyReLU",
    "ReLU",
    "PReLU",
    "ELU",
    "Softmax",
    "BatchNormalization",
    "LayerNormalization",
    "Concatenate",
    "Add",
    "Subtract",
    "Multiply",
    "Average",
    "Maximum",
    "Minimum",
    "ChannelSlice",
    "Dropout",
    "SpatialDropout2D",
    "GaussianNoise",
    "Identity",
    "Rescaling",
}
#: Layers whose padding only shifts coordinates (the next layer's extent covers it).
_PADDING = {"ZeroPadding2D"}


def _producer(tensor):
    """The node that produced a KerasTensor, or None for a model input."""
    return input_node(tensor)


def _spatial(tensor) -> tuple[int, int] | None:
    shape = tensor.shape
    if len(shape) != 4 or shape[1] is None or shape[2] is None:
        return None
    return int(shape[1]), int(shape[2])


@dataclass(frozen=True)
class TailCrop:
    """Where one batch of crops lies in each tensor of a tail (all the same size).

    Attributes:
        pixels: (N, 2) int (y0, x0) of each crop in network-input pixels.
        size: (height, width) of the crops in network-input pixels.
    """

    pixels: np.ndarray
    size: tuple[int, int]

    def cells(self, stride: tuple[int, int]) -> tuple[np.ndarray, tuple[int, int]]:
        """(N, 2) origins and (h, w) size of the crops on a grid of this stride."""
        sy, sx = stride
        origins = np.stack([self.pixels[:, 0] // sy, self.pixels[:, 1] // sx], axis=1)
        return origins.astype(np.int64), (self.size[0] // sy, self.size[1] // sx)


class Tail:
    """The layers from ``source`` to ``head_output``, runnable on any spatial size.

    Args:
        model: the detector's Keras model.
        source: name of the explained layer (its output is the tail's input).
        head_output: name of the layer whose output is the raw head tensor.
        input_size: (height, width) of the network input.

    Raises:
        YolocamError: the head does not depend on ``source``, or a layer on the way
            is called more than once (shared layers are not supported).
    """

    def __init__(
        self, model: keras.Model, source: str, head_output: str, input_size: tuple[int, int]
    ):
        self.source = source
        self.head_output = head_output
        self.input_size = input_size
        src_layer = model.get_layer(source)
        out_layer = model.get_layer(head_output)
        for layer in (src_layer, out_layer):
            if call_count(layer) != 1:
                raise YolocamError(
                    f"layer {layer.name!r} is used {call_count(layer)} times in the "
                    "model; choose a layer that is called once"
                )
        self._source_tensor = src_layer.output
        source_id = id(self._source_tensor)

        depends: dict[int, bool] = {source_id: True}

        def depends_on_source(tensor) -> bool:
            key = id(tensor)
            if key not in depends:
                depends[key] = False  # guards cycles (none in a DAG) and marks visits
                node = _producer(tensor)
                depends[key] = node is not None and any(
                    depends_on_source(t) for t in node.input_tensors
                )
            return depends[key]

        head_tensor = out_layer.output
        if not depends_on_source(head_tensor):
            raise YolocamError(
                f"layer {source!r} does not feed the head output {head_output!r}; choose a "
                "layer before that head"
            )
        order: list = []
        seen: set[int] = set()
        sides: dict[int, object] = {}

        def visit(tensor) -> None:
            if id(tensor) == source_id:
                return
            node = _producer(tensor)
            if id(node) in seen:
                return
            seen.add(id(node))
            for t in node.input_tensors:
                if depends_on_source(t):
                    visit(t)
                else:
                    sides[id(t)] = t
            order.append(node)

        visit(head_tensor)
        for node in order:
            if call_count(node.operation) != 1:
                raise YolocamError(
                    f"layer {node.operation.name!r} is used more than once in the model; "
                    "the explainer cannot isolate its head's tail"
                )
        self._nodes = tuple(order)
        self._head_tensor = head_tensor
        self._side_tensors = tuple(sides.values())
        #: names of the layers whose outputs the tail reads besides ``source``
        self.side_inputs: tuple[str, ...] = tuple(producer_name(t) for t in self._side_tensors)
        #: every layer of the tail, in graph order (the head output last)
        self.layers: tuple[str, ...] = tuple(node.operation.name for node in order)
        self.radius, self.max_stride = self._receptive_radius()

    # -- geometry --------------------------------------------------------------------

    def stride_of(self, tensor) -> tuple[int, int]:
        grid = _spatial(tensor)
        if grid is None:
            raise YolocamError(f"tensor {tensor.name} has no fixed spatial size")
        return self.input_size[0] // grid[0], self.input_size[1] // grid[1]

    @property
    def source_stride(self) -> tuple[int, int]:
        return self.stride_of(self._source_tensor)

    @property
    def head_stride(self) -> tuple[int, int]:
        return self.stride_of(self._head_tensor)

    @property
    def side_strides(self) -> tuple[tuple[int, int], ...]:
        return tuple(self.stride_of(t) for t in self._side_tensors)

    def _receptive_radius(self) -> tuple[int | None, tuple[int, int]]:
        """An upper bound of how far (in input pixels) a head cell's value reaches
        into ``source``, from the layer types; None when a layer's reach is unknown.

        Also the largest stride (y, x) of the tail's tensors, to which crops align.
        Padding layers keep their input's stride (their output is the input plus a
        border, which the next layer's extent accounts for)."""
        in_h, in_w = self.input_size

        def grid_stride(tensor) -> tuple[int, int] | None:
            grid = _spatial(tensor)
            if grid is None or in_h % grid[0] or in_w % grid[1]:
                return None
            return in_h // grid[0], in_w // grid[1]

        strides: dict[int, tuple[int, int] | None] = {
            id(t): grid_stride(t) for t in (self._source_tensor, *self._side_tensors)
        }
        reach: dict[int, float] = {id(self._source_tensor): 0.0}
        unknown = False
        for node in self._nodes:
            op = node.operation
            kind = type(op).__name__
            ins = [strides.get(id(t)) for t in node.input_tensors]
            out_stride = ins[0] if kind in _PADDING and ins else None
            for t in node.outputs:
                strides[id(t)] = out_stride or grid_stride(t)
            inputs = [t for t in node.input_tensors if id(t) in reach]
            known = [strides[id(t)] for t in inputs if strides.get(id(t)) is not None]
            if not inputs or len(known) != len(inputs):
                unknown = True
                continue
            before = max(reach[id(t)] for t in inputs)
            stride_in = max(max(s) for s in known)
            if kind in _POINTWISE or kind in _PADDING:
                grow = 0.0
            elif isinstance(op, keras.layers.Conv2D | keras.layers.DepthwiseConv2D) or kind in (
                "DarknetMaxPool",
                "MaxPooling2D",
                "AveragePooling2D",
            ):
                if hasattr(op, "kernel_size"):
                    size = max(op.kernel_size)
                    dilation = max(getattr(op, "dilation_rate", (1, 1)))
                    step = max(op.strides)
                elif kind == "DarknetMaxPool":
                    size, dilation, step = op.size, 1, op.stride
                else:
                    size, dilation, step = max(op.pool_size), 1, max(op.strides)
                grow = (math.ceil((size - 1) * dilation / 2) + step - 1) * stride_in
            elif kind == "UpSampling2D":
                grow = 2.0 * stride_in
            else:
                unknown = True
                continue
            for t in node.outputs:
                reach[id(t)] = before + grow
        known_strides = [s for s in strides.values() if s is not None]
        max_stride = (max(s[0] for s in known_strides), max(s[1] for s in known_strides))
        if (
            unknown
            or any(s is None for s in strides.values())
            or id(self._head_tensor) not in reach
        ):
            return None, max_stride
        return math.ceil(reach[id(self._head_tensor)]), max_stride

    def crops(self, cell_boxes: np.ndarray) -> TailCrop | None:
        """Crop windows for targets whose weights cover these head cells.

        Args:
            cell_boxes: (N, 4) int (row0, col0, row1, col1), inclusive, on the head grid.

        Returns:
            One window size for all N (the largest needed), each window covering its
            cells plus :attr:`radius`, aligned to :attr:`max_stride` and shifted inside
            the map; None when the reach is unknown or a crop would not be smaller
            than the map.
        """
        if self.radius is None:
            return None
        in_h, in_w = self.input_size
        hy, hx = self.head_stride
        my, mx = self.max_stride
        r = self.radius
        y0 = cell_boxes[:, 0] * hy - r
        x0 = cell_boxes[:, 1] * hx - r
        y1 = (cell_boxes[:, 2] + 1) * hy + r
        x1 = (cell_boxes[:, 3] + 1) * hx + r
        y0 = np.clip(np.floor_divide(y0, my) * my, 0, in_h)
        x0 = np.clip(np.floor_divide(x0, mx) * mx, 0, in_w)
        y1 = np.clip(-np.floor_divide(-y1, my) * my, 0, in_h)
        x1 = np.clip(-np.floor_divide(-x1, mx) * mx, 0, in_w)
        size_h = int((y1 - y0).max())
        size_w = int((x1 - x0).max())
        if size_h * size_w >= in_h * in_w:
            return None
        # shift each window inside the map, keeping its alignment
        y0 = np.minimum(y0, in_h - size_h)
        x0 = np.minimum(x0, in_w - size_w)
        return TailCrop(np.stack([y0, x0], axis=1).astype(np.int64), (size_h, size_w))

    # -- running ---------------------------------------------------------------------

    def __call__(self, source: tf.Tensor, sides: Sequence[tf.Tensor] = ()) -> tf.Tensor:
        """Run the tail.

        Args:
            source: (B, h, w, K) values of the source layer (any h, w the layers take).
            sides: values of :attr:`side_inputs`, same batch, matching spatial crops.

        Returns:
            (B, h', w', A·(5+C)) raw head output.
        """
        if len(sides) != len(self._side_tensors):
            raise ValueError(f"expected {len(self._side_tensors)} side inputs, got {len(sides)}")
        values = {id(self._source_tensor): source}
        for t, v in zip(self._side_tensors, sides, strict=True):
            values[id(t)] = v
        for node in self._nodes:
            args, kwargs = node.arguments.fill_in(values)
            outputs = node.operation(*args, **kwargs)
            outputs = outputs if isinstance(outputs, list | tuple) else [outputs]
            for t, v in zip(node.outputs, outputs, strict=True):
                values[id(t)] = v
        return values[id(self._head_tensor)]


def spatial_layers_before_head(model: keras.Model, head_output: str) -> list[str]:
    """Walking back from a head output: the chain of single-input layers down to (and
    including) the input of the first layer that mixes neighbouring locations.

    Returns:
        Layer names from the head output back to that input, e.g. for yolov4-tiny's
        13×13 head ``["conv_29", "conv_28_leaky", "conv_28", "conv_28_pad",
        "conv_27_leaky"]``: ``conv_28`` is a 3×3 convolution, so ``conv_27_leaky``
        (the neck output the head reads) is the last entry.

        A layer with several inputs (a concatenation, an addition) met before any
        spatial layer ends the chain instead: it is where the neck's branches meet,
        and all the head reads (a head of 1×1 layers over it sees one location).

    Raises:
        YolocamError: the head output itself has several inputs, or a layer on the
            way has none (the head is not fed by the model's input).
    """
    layer = model.get_layer(head_output)
    chain = [layer.name]
    while True:
        parents = parent_layers(layer)
        if len(parents) > 1 and len(chain) > 1:
            return chain
        if len(parents) != 1:
            raise YolocamError(
                f"layer {layer.name!r} before head {head_output!r} has {len(parents)} inputs; "
                "choose the explained layer with layer="
            )
        parent = parents[0]
        spatial = _mixes_locations(layer)
        if spatial:
            # the input of the spatial layer, skipping its own padding layer
            while type(parent).__name__ in _PADDING:
                chain.append(parent.name)
                parent = parent_layers(parent)[0]
            chain.append(parent.name)
            return chain
        chain.append(parent.name)
        layer = parent


def _mixes_locations(layer) -> bool:
    kind = type(layer).__name__
    if kind in _POINTWISE or kind in _PADDING or kind == "InputLayer":
        return False
    if hasattr(layer, "kernel_size"):
        return max(layer.kernel_size) > 1 or max(getattr(layer, "strides", (1, 1))) > 1
    return True
