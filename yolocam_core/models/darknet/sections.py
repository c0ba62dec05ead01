"""One small builder per Darknet section type, in a table (:data:`SECTIONS`).

Each builder has two steps, kept apart as keras-hub keeps config, graph and weights:

- ``plan(section, so_far)``: pure Python, from the cfg alone. Validates the section
  (errors name the section, key, line and the value received), computes its output
  shape (H, W, C), the name of the Keras layer that will produce it, the convolution
  it reads from the weights file, and for ``[yolo]`` the head's
  :class:`~yolocam_core.heads.HeadInfo`. Nothing is allocated, so a cfg asking for a
  huge model is refused before anything is built.
- ``build(layer, x, outputs)``: the Keras layers for one planned section.

Porting the weights into the built layers is :mod:`yolocam_core.models.darknet.weights`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Protocol

import keras

from yolocam_core.errors import ConfigError
from yolocam_core.heads import HeadInfo
from yolocam_core.models.darknet.cfg import Section
from yolocam_core.models.layers import ChannelSlice, DarknetMaxPool
from yolocam_core.models.options import MAX_CLASSES

#: Darknet activation name -> how it is built (Keras ``Activation`` name, or leaky).
ACTIVATIONS = {
    "leaky": "leaky",
    "mish": "mish",
    "swish": "silu",
    "logistic": "sigmoid",
    "linear": None,
    "relu": "relu",
}

Shape = tuple[int, int, int]
"""(height, width, channels) of one image's tensor."""


@dataclass(frozen=True)
class ConvSpec:
    """What the weights file holds for one convolution, in file order."""

    layer_name: str
    filters: int
    in_channels: int
    size: int
    batch_normalize: bool

    @property
    def num_values(self) -> int:
        """float32 values this convolution reads from the weights file."""
        extra = 4 * self.filters if self.batch_normalize else self.filters
        return extra + self.filters * self.in_channels * self.size * self.size

    @property
    def num_parameters(self) -> int:
        """Parameters of the built (batch-norm folded) convolution: kernel and bias."""
        return self.filters * (self.in_channels * self.size * self.size + 1)


@dataclass(frozen=True)
class LayerPlan:
    """One section, planned.

    Attributes:
        section: the cfg section.
        shape: its output (H, W, C).
        name: the Keras layer producing its output (``"image"`` for the input).
        elements: float values of every tensor its Keras layers create, one image.
        sources: the Darknet layer indices it reads besides the previous layer.
        conv: the convolution it reads from the weights file, if any.
        head: the head it declares (``[yolo]``), if any.
        padding: zero padding before a convolution (pixels per side).
    """

    section: Section
    shape: Shape
    name: str
    elements: int
    sources: tuple[int, ...] = ()
    conv: ConvSpec | None = None
    head: HeadInfo | None = None
    padding: int = 0


@dataclass
class PlanSoFar:
    """The planned layers before the current section and the network input."""

    input_shape: Shape
    layers: list[LayerPlan] = field(default_factory=list)
    heads: int = 0

    @property
    def shape(self) -> Shape:
        return self.layers[-1].shape if self.layers else self.input_shape

    @property
    def name(self) -> str:
        return self.layers[-1].name if self.layers else "image"

    def ref(self, section: Section, value: int, key: str) -> int:
        """A ``layers=`` / ``from=`` value as an absolute index of an earlier layer."""
        target = section.index + value if value < 0 else value
        if not 0 <= target < section.index:
            raise ConfigError(
                f"{section.where(key)}: layer reference {value} points to layer {target}, "
                f"which is not an earlier layer (this is layer {section.index})"
            )
        return target


class SectionBuilder(Protocol):
    def plan(self, section: Section, so_far: PlanSoFar) -> LayerPlan: ...

    def build(self, layer: LayerPlan, x, outputs: list): ...


def _size(shape: Shape) -> int:
    return shape[0] * shape[1] * shape[2]


def _positive(section: Section, key: str, value: int, minimum: int = 1) -> int:
    if value < minimum:
        raise ConfigError(
            f"{section.where(key)}: {key}={value} must be {'positive' if minimum else '≥ 0'}"
        )
    return value


def _activation_name(section: Section, default: str) -> str:
    name = section.get_str("activation", default).lower()
    if name not in ACTIVATIONS:
        raise ConfigError(
            f"{section.where('activation')}: activation '{name}' is not supported "
            f"(supported: {', '.join(ACTIVATIONS)})"
        )
    return name


def _apply_activation(x, activation: str, base: str):
    """The activation layer named ``{base}_{activation}`` (none for linear)."""
    kind = ACTIVATIONS[activation]
    if kind is None:
        return x
    if kind == "leaky":
        return keras.layers.LeakyReLU(negative_slope=0.1, name=f"{base}_{activation}")(x)
    return keras.layers.Activation(kind, name=f"{base}_{activation}")(x)


def _activated(base: str, activation: str) -> str:
    return base if activation == "linear" else f"{base}_{activation}"


def _spatial(section: Section, n: int, size: int, stride: int, pad_total: int, axis: str) -> int:
    out = (n + pad_total - size) // stride + 1
    if out < 1:
        raise ConfigError(
            f"{section.where('size')}: size={size} is larger than its padded input "
            f"({n} + {pad_total} pixels in {axis}): the output would be empty"
        )
    return out


class Convolutional:
    """``[convolutional]``: zero padding, a biased Conv2D (batch norm folded in when the
    weights are loaded), then the activation."""

    def plan(self, section: Section, so_far: PlanSoFar) -> LayerPlan:
        filters = _positive(section, "filters", section.get_int("filters"))
        size = _positive(section, "size", section.get_int("size"))
        stride = _positive(section, "stride", section.get_int("stride", 1))
        pad = section.get_int("pad", 0)
        padding = (
            size // 2 if pad else _positive(section, "padding", section.get_int("padding", 0), 0)
        )
        activation = _activation_name(section, "logistic")
        h, w, c = so_far.shape
        out = (
            _spatial(section, h, size, stride, 2 * padding, "height"),
            _spatial(section, w, size, stride, 2 * padding, "width"),
            filters,
        )
        base = f"conv_{section.index}"
        padded = (h + 2 * padding) * (w + 2 * padding) * c if padding else 0
        return LayerPlan(
            section,
            out,
            _activated(base, activation),
            padded + _size(out) * (1 if activation == "linear" else 2),
            conv=ConvSpec(base, filters, c, size, section.get_int("batch_normalize", 0) == 1),
            padding=padding,
        )

    def build(self, layer: LayerPlan, x, outputs: list):
        conv = layer.conv
        assert conv is not None
        if layer.padding:
            x = keras.layers.ZeroPadding2D(layer.padding, name=f"{conv.layer_name}_pad")(x)
        stride = layer.section.get_int("stride", 1)
        x = keras.layers.Conv2D(
            conv.filters, conv.size, strides=stride, padding="valid", use_bias=True,
            name=conv.layer_name,
        )(x)  # fmt: skip
        return _apply_activation(x, _activation_name(layer.section, "logistic"), conv.layer_name)


class Route:
    """``[route]``: one earlier layer (optionally one channel group of it) or several
    concatenated along channels."""

    def plan(self, section: Section, so_far: PlanSoFar) -> LayerPlan:
        refs = tuple(so_far.ref(section, v, "layers") for v in section.get_ints("layers"))
        if not refs:
            raise ConfigError(f"{section.where('layers')}: layers= lists no layer")
        groups = section.get_int("groups", 1)
        group_id = section.get_int("group_id", 0)
        if groups < 1 or not 0 <= group_id < groups:
            raise ConfigError(
                f"{section.where('group_id')}: group_id={group_id} must be in [0, groups={groups})"
            )
        shapes = []
        for r in refs:
            h, w, c = so_far.layers[r].shape
            if c % groups:
                raise ConfigError(
                    f"{section.where('groups')}: layer {r} has {c} channels, "
                    f"not divisible into groups={groups}"
                )
            shapes.append((h, w, c // groups))
        if len({s[:2] for s in shapes}) > 1:
            raise ConfigError(
                f"{section.where('layers')}: routed layers {list(refs)} have different "
                f"spatial sizes {sorted({s[:2] for s in shapes})}"
            )
        out = (shapes[0][0], shapes[0][1], sum(s[2] for s in shapes))
        i = section.index
        if len(refs) == 1:
            name = so_far.layers[refs[0]].name if groups == 1 else f"route_{i}_slice0"
            elements = 0 if groups == 1 else _size(out)
        else:
            name = f"route_{i}"
            elements = _size(out) * (2 if groups > 1 else 1)
        return LayerPlan(section, out, name, elements, sources=refs)

    def build(self, layer: LayerPlan, x, outputs: list):
        groups = layer.section.get_int("groups", 1)
        group_id = layer.section.get_int("group_id", 0)
        i = layer.section.index
        parts = []
        for n, r in enumerate(layer.sources):
            part = outputs[r]
            if groups > 1:
                part = ChannelSlice(groups, group_id, name=f"route_{i}_slice{n}")(part)
            parts.append(part)
        if len(parts) == 1:
            return parts[0]
        return keras.layers.Concatenate(axis=-1, name=f"route_{i}")(parts)


class Shortcut:
    """``[shortcut]``: the previous layer plus an earlier one of the same shape."""

    def plan(self, section: Section, so_far: PlanSoFar) -> LayerPlan:
        source = so_far.ref(section, section.get_int("from"), "from")
        other = so_far.layers[source].shape
        if other != so_far.shape:
            raise ConfigError(
                f"{section.where('from')}: shortcut adds layer {source} of shape {other} "
                f"to shape {so_far.shape}; they must match"
            )
        activation = _activation_name(section, "linear")
        base = f"shortcut_{section.index}"
        elements = _size(other) * (1 if activation == "linear" else 2)
        return LayerPlan(section, other, _activated(base, activation), elements, sources=(source,))

    def build(self, layer: LayerPlan, x, outputs: list):
        base = f"shortcut_{layer.section.index}"
        x = keras.layers.Add(name=base)([x, outputs[layer.sources[0]]])
        return _apply_activation(x, _activation_name(layer.section, "linear"), base)


class Maxpool:
    """``[maxpool]``: Darknet's padding (``padding // 2`` before, the rest after)."""

    def plan(self, section: Section, so_far: PlanSoFar) -> LayerPlan:
        stride = _positive(section, "stride", section.get_int("stride", 1))
        size = _positive(section, "size", section.get_int("size", stride))
        padding = _positive(section, "padding", section.get_int("padding", size - 1), 0)
        h, w, c = so_far.shape
        out = (
            _spatial(section, h, size, stride, padding, "height"),
            _spatial(section, w, size, stride, padding, "width"),
            c,
        )
        padded = (h + padding) * (w + padding) * c if padding else 0
        return LayerPlan(section, out, f"maxpool_{section.index}", padded + _size(out))

    def build(self, layer: LayerPlan, x, outputs: list):
        section = layer.section
        stride = section.get_int("stride", 1)
        size = section.get_int("size", stride)
        padding = section.get_int("padding", size - 1)
        return DarknetMaxPool(size, stride, padding, name=f"maxpool_{section.index}")(x)


class Upsample:
    """``[upsample]``: nearest-neighbour upsampling by ``stride``."""

    def plan(self, section: Section, so_far: PlanSoFar) -> LayerPlan:
        stride = _positive(section, "stride", section.get_int("stride", 2))
        h, w, c = so_far.shape
        out = (h * stride, w * stride, c)
        return LayerPlan(section, out, f"upsample_{section.index}", _size(out))

    def build(self, layer: LayerPlan, x, outputs: list):
        stride = layer.section.get_int("stride", 2)
        return keras.layers.UpSampling2D(
            stride, interpolation="nearest", name=f"upsample_{layer.section.index}"
        )(x)


class Yolo:
    """``[yolo]``: declares a head on the previous layer (the raw output of a linear
    convolution); adds no Keras layer."""

    def plan(self, section: Section, so_far: PlanSoFar) -> LayerPlan:
        previous = so_far.layers[-1] if so_far.layers else None
        if (
            previous is None
            or previous.conv is None
            or _activation_name(previous.section, "logistic") != "linear"
        ):
            raise ConfigError(
                f"{section.where()}: a [yolo] section must follow a [convolutional] with "
                "activation=linear (the head's final convolution)"
            )
        classes = section.get_int("classes", 20)
        if not 1 <= classes <= MAX_CLASSES:
            raise ConfigError(
                f"{section.where('classes')}: classes={classes} must be between 1 and "
                f"{MAX_CLASSES:,}"
            )
        num = _positive(section, "num", section.get_int("num", 1))
        mask = section.get_ints("mask") if "mask" in section.options else list(range(num))
        pairs = self._anchors(section, num)
        if any(not 0 <= m < len(pairs) for m in mask):
            raise ConfigError(f"{section.where('mask')}: mask {mask} refers to missing anchors")
        h, w, channels = so_far.shape
        if channels != len(mask) * (5 + classes):
            raise ConfigError(
                f"{section.where()}: the convolution before it has {channels} filters, but "
                f"{len(mask)} anchors × (5 + {classes} classes) = {len(mask) * (5 + classes)}"
            )
        scale_x_y = section.get_float("scale_x_y", 1.0)
        if not (math.isfinite(scale_x_y) and scale_x_y > 0):
            raise ConfigError(
                f"{section.where('scale_x_y')}: scale_x_y={scale_x_y} must be a positive number"
            )
        i = section.index
        head = HeadInfo(
            index=so_far.heads,
            output_name=previous.conv.layer_name,
            grid=(h, w),
            stride=so_far.input_shape[1] // w,
            anchors=tuple(pairs[m] for m in mask),
            num_classes=classes,
            scale_x_y=scale_x_y,
            cam_layer=so_far.layers[i - 2].name if i >= 2 else "image",
        )
        return LayerPlan(section, so_far.shape, so_far.name, 0, head=head)

    @staticmethod
    def _anchors(section: Section, num: int) -> list[tuple[float, float]]:
        flat = section.get_floats("anchors")
        if len(flat) % 2 or len(flat) // 2 < num:
            raise ConfigError(
                f"{section.where('anchors')}: anchors must hold num={num} (width, height) "
                f"pairs, got {len(flat)} numbers"
            )
        bad = [v for v in flat if not (math.isfinite(v) and v > 0)]
        if bad:
            raise ConfigError(
                f"{section.where('anchors')}: anchors must be positive sizes in pixels; "
                f"got {bad[0]:g}"
            )
        return [(flat[2 * k], flat[2 * k + 1]) for k in range(len(flat) // 2)]

    def build(self, layer: LayerPlan, x, outputs: list):
        return x


SECTIONS: dict[str, SectionBuilder] = {
    "convolutional": Convolutional(),
    "route": Route(),
    "shortcut": Shortcut(),
    "maxpool": Maxpool(),
    "upsample": Upsample(),
    "yolo": Yolo(),
}
"""Section type -> its builder (``[net]`` is the input, not a layer)."""
