"""A parsed cfg -> a plan (shapes, names, convolutions, heads; validated and bounded)
-> a Keras functional model whose outputs are the raw head tensors.

Convolutions carry a bias and no BatchNormalization layer: batch norm is folded into
kernel and bias when weights are loaded (inference only).
"""

from __future__ import annotations

from dataclasses import dataclass

import keras

from yolocam_core.errors import ConfigError
from yolocam_core.heads import HeadInfo
from yolocam_core.models.darknet.cfg import DarknetConfig
from yolocam_core.models.darknet.sections import SECTIONS, ConvSpec, LayerPlan, PlanSoFar
from yolocam_core.models.options import (
    check_activation_bytes,
    check_input_side,
    check_parameters,
)

#: Most layer sections a cfg may hold (yolov4.cfg: 161).
MAX_SECTIONS = 2000
#: Most input channels (images have 3).
MAX_CHANNELS = 64


@dataclass(frozen=True)
class DarknetPlan:
    """Everything known about a cfg's model before any Keras layer exists.

    Attributes:
        layers: one :class:`LayerPlan` per section after ``[net]``, in Darknet order.
        input_shape: (height, width, channels) of the network input.
        letterbox: the cfg's ``letter_box``.
    """

    layers: tuple[LayerPlan, ...]
    input_shape: tuple[int, int, int]
    letterbox: bool

    @property
    def input_size(self) -> tuple[int, int]:
        return self.input_shape[0], self.input_shape[1]

    @property
    def convs(self) -> list[ConvSpec]:
        """The convolutions in weights-file order."""
        return [layer.conv for layer in self.layers if layer.conv is not None]

    @property
    def heads(self) -> list[HeadInfo]:
        return [layer.head for layer in self.layers if layer.head is not None]

    @property
    def activation_bytes(self) -> int:
        """float32 bytes of every tensor of one forward pass on one image."""
        h, w, c = self.input_shape
        return 4 * (h * w * c + sum(layer.elements for layer in self.layers))

    @property
    def num_parameters(self) -> int:
        return sum(conv.num_parameters for conv in self.convs)


@dataclass
class DarknetModel:
    """A built (not yet weighted) model and what is needed to fill and decode it."""

    model: keras.Model
    heads: list[HeadInfo]
    convs: list[ConvSpec]
    input_size: tuple[int, int]
    letterbox: bool


def plan_model(config: DarknetConfig, label: str = "the cfg") -> DarknetPlan:
    """Validate a parsed cfg and plan its model, refusing what is too large to build.

    Args:
        config: from :func:`~yolocam_core.models.darknet.cfg.parse_cfg`.
        label: how messages name the model (e.g. the cfg's file name).

    Returns:
        The plan.

    Raises:
        ConfigError: a section that cannot be built (section, key, line and value
            named), no ``[yolo]``, or a model beyond the limits of
            :mod:`yolocam_core.models.options` (input side, parameters, activation
            memory) — the limit is named.
    """
    size = config.input_size
    check_input_side(size, f"{config.net.where('width')}: the input", ConfigError)
    channels = config.channels
    if not 1 <= channels <= MAX_CHANNELS:
        raise ConfigError(
            f"{config.net.where('channels')}: channels={channels} must be between 1 and "
            f"{MAX_CHANNELS} (3 for RGB images)"
        )
    if len(config.layers) > MAX_SECTIONS:
        raise ConfigError(
            f"{label} has {len(config.layers):,} layer sections; yolocam builds at most "
            f"{MAX_SECTIONS:,} (yolov4.cfg has 161)"
        )
    try:
        so_far = _plan_layers(config, (size[0], size[1], channels))
    except ConfigError:
        _check_stride(config, size, channels)  # the likely cause, said plainly
        raise
    plan = DarknetPlan(tuple(so_far.layers), so_far.input_shape, config.letterbox)
    if not plan.heads:
        raise ConfigError("the cfg has no [yolo] section: yolocam needs at least one YOLO head")
    check_parameters(plan.num_parameters, label, ConfigError)
    check_activation_bytes(plan.activation_bytes, label, size, ConfigError)
    return plan


def _plan_layers(config: DarknetConfig, input_shape: tuple[int, int, int]) -> PlanSoFar:
    so_far = PlanSoFar(input_shape=input_shape)
    for section in config.layers:
        layer = SECTIONS[section.type].plan(section, so_far)
        so_far.layers.append(layer)
        so_far.heads += layer.head is not None
    return so_far


#: The input side at which :func:`_check_stride` measures the network's stride (a plan
#: only: nothing is allocated).
_PROBE_SIDE = 1 << 12


def _check_stride(config: DarknetConfig, size: tuple[int, int], channels: int) -> None:
    """Refuse an input (height, width) that is not a multiple of the network's stride,
    how many times it divides the input's side at most (32 for YOLOv3 and v4): layers a
    ``[route]`` or ``[shortcut]`` joins then differ by a pixel. Called when the plan
    failed (a network that joins no such layers works at any size).

    Raises:
        ConfigError: the side named, with the stride and the nearest size that fits.
    """
    try:
        layers = _plan_layers(config, (_PROBE_SIDE, _PROBE_SIDE, channels)).layers
    except ConfigError:  # measured nothing: the plan at the real size says why
        return
    sides = [min(layer.shape[:2]) for layer in layers if min(layer.shape[:2]) > 0]
    stride = max([1, *(_PROBE_SIDE // side for side in sides)])
    for key, side in (("width", size[1]), ("height", size[0])):
        if side % stride:
            fit = max(stride, round(side / stride) * stride)
            raise ConfigError(
                f"{config.net.where(key)}: {key}={side} is not a multiple of {stride}, the "
                f"network's stride (its largest downsampling); use e.g. {key}={fit}"
            )


def build_model(config: DarknetConfig | DarknetPlan, name: str = "darknet") -> DarknetModel:
    """Build the Keras graph of a parsed cfg (or of its plan).

    Args:
        config: from :func:`~yolocam_core.models.darknet.cfg.parse_cfg`, or its
            :func:`plan_model`.
        name: the Keras model's name.

    Returns:
        The model, with input (B, height, width, channels) float32 in [0, 1] and one
        output per ``[yolo]`` of shape (B, H, W, A·(5+C)); its heads; its convolutions.

    Raises:
        ConfigError: see :func:`plan_model`.
    """
    plan = config if isinstance(config, DarknetPlan) else plan_model(config)
    inputs = keras.Input(plan.input_shape, name="image")
    outputs: list = []  # Darknet layer index -> Keras tensor
    x = inputs
    for layer in plan.layers:
        x = SECTIONS[layer.section.type].build(layer, x, outputs)
        outputs.append(x)
    head_outputs = [outputs[layer.section.index] for layer in plan.layers if layer.head]
    model = keras.Model(inputs, head_outputs, name=name)
    return DarknetModel(model, plan.heads, plan.convs, plan.input_size, plan.letterbox)
