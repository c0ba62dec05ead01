"""Darknet cfg + weights -> Keras model with raw YOLO head outputs.

Three separate steps, each testable alone:

1. :func:`parse_cfg` reads the cfg text into :class:`Section` objects and rejects any
   section or key we do not support, naming it and its line.
2. :func:`build_model` turns the sections into a Keras functional model whose outputs
   are the raw head tensors (one per ``[yolo]``, shape (B, H, W, A·(5+C))), plus a
   :class:`~yolocam_core.heads.HeadInfo` per head.
3. :func:`load_weights` reads a ``.weights`` file (header, then per convolution
   biases / batch-norm parameters / kernels), checks its size exactly and writes the
   parameters into the model with batch norm folded into the convolution.

Supported sections: ``[net]``, ``[convolutional]``, ``[route]``, ``[shortcut]``,
``[maxpool]``, ``[upsample]``, ``[yolo]`` — everything yolov3, yolov3-tiny,
yolov3-spp, yolov4 and yolov4-tiny use.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

import keras
import numpy as np

from yolocam_core.errors import ConfigError, WeightsError
from yolocam_core.heads import HeadInfo
from yolocam_core.layers import ChannelSlice, DarknetMaxPool

# Darknet's batch-norm epsilon (normalize_cpu: sqrt(variance + .000001f)); OpenCV's too.
BN_EPSILON = 1e-6

ACTIVATIONS = ("leaky", "mish", "swish", "logistic", "linear", "relu")

# Keys that only matter for training: accepted and ignored.
_NET_TRAINING_KEYS = frozenset(
    """batch subdivisions momentum decay angle saturation exposure hue learning_rate
    learning_rate_min batches_per_cycle batches_cycle_mult burn_in max_batches policy
    steps scales step scale seq_scales gamma power max_chart_loss mosaic mosaic_bound
    flip blur gaussian_noise mixup cutmix min_crop max_crop aspect adam b1 b2 eps
    label_smooth_eps resize_step time_steps track augment_speed
    init_sequential_subdivisions sequential_subdivisions try_fix_nan
    weights_reject_freq equidistant_point badlabels_rejection_percentage
    num_sigmas_reject_badlabels ema_alpha loss_scale dynamic_minibatch
    optimized_memory workspace_size_limit_mb contrastive contrastive_jit_flip
    contrastive_color unsupervised attention adversarial_lr""".split()
)
_YOLO_TRAINING_KEYS = frozenset(
    """jitter ignore_thresh truth_thresh random resize iou_normalizer cls_normalizer
    obj_normalizer iou_loss iou_thresh iou_thresh_kind nms_kind beta_nms max_delta
    counters_per_class label_smooth_eps focal_loss objectness_smooth max map
    show_details track_history_size sim_thresh dets_for_track dets_for_show
    track_ciou_norm embedding_layer""".split()
)

# Per section: keys we use, training keys we ignore, and keys accepted only at a value
# that changes nothing (anything else is an error naming key and line).
_SUPPORTED = {
    "net": ({"width", "height", "channels", "letter_box", "inputs"}, _NET_TRAINING_KEYS, {}),
    "convolutional": (
        {"filters", "size", "stride", "pad", "padding", "activation", "batch_normalize"},
        frozenset(),
        {"groups": "1", "dilation": "1", "binary": "0", "xnor": "0"},
    ),
    "route": ({"layers", "groups", "group_id"}, frozenset(), {}),
    "shortcut": ({"from", "activation"}, frozenset(), {"weights_type": "none"}),
    "maxpool": ({"size", "stride", "padding"}, frozenset(), {"maxpool_depth": "0"}),
    "upsample": ({"stride"}, frozenset(), {"scale": "1"}),
    "yolo": (
        {"mask", "anchors", "classes", "num", "scale_x_y"},
        _YOLO_TRAINING_KEYS,
        {"new_coords": "0"},
    ),
}


@dataclass
class Section:
    """One ``[type]`` block of a cfg file.

    Attributes:
        type: section name without brackets, e.g. ``"convolutional"``.
        line: 1-based line number of the ``[type]`` header.
        options: key -> raw string value.
        key_lines: key -> 1-based line number where the key was set.
        index: Darknet layer index (0 = first section after ``[net]``; -1 for net).
    """

    type: str
    line: int
    options: dict[str, str] = field(default_factory=dict)
    key_lines: dict[str, int] = field(default_factory=dict)
    index: int = -1

    def where(self, key: str | None = None) -> str:
        line = self.key_lines.get(key, self.line) if key else self.line
        return f"[{self.type}] at line {line}"

    def get_int(self, key: str, default: int | None = None) -> int:
        return int(self._get(key, default, int))

    def get_float(self, key: str, default: float | None = None) -> float:
        return float(self._get(key, default, float))

    def get_ints(self, key: str) -> list[int]:
        raw = self._get(key, None, str)
        try:
            return [int(v) for v in str(raw).split(",") if v.strip()]
        except ValueError:
            raise ConfigError(
                f"{self.where(key)}: {key}={raw!r} should be a comma-separated list of integers"
            ) from None

    def get_str(self, key: str, default: str | None = None) -> str:
        return str(self._get(key, default, str))

    def _get(self, key, default, kind):
        if key not in self.options:
            if default is None:
                raise ConfigError(f"{self.where()}: missing required key '{key}'")
            return default
        raw = self.options[key]
        try:
            return kind(raw)
        except ValueError:
            raise ConfigError(
                f"{self.where(key)}: {key}={raw!r} is not a valid {kind.__name__}"
            ) from None


@dataclass
class DarknetConfig:
    """A parsed cfg: the ``[net]`` section and the layer sections in order."""

    net: Section
    layers: list[Section]

    @property
    def input_size(self) -> tuple[int, int]:
        """(height, width) of the network input."""
        return self.net.get_int("height"), self.net.get_int("width")

    @property
    def channels(self) -> int:
        return self.net.get_int("channels", 3)

    @property
    def letterbox(self) -> bool:
        return self.net.get_int("letter_box", 0) == 1


_SECTION_RE = re.compile(r"^\[([A-Za-z_]+)\]$")


def parse_cfg(text: str) -> DarknetConfig:
    """Parse Darknet cfg text and validate every section and key.

    Args:
        text: the cfg file's content.

    Returns:
        The parsed config.

    Raises:
        ConfigError: for an unknown section or key, a malformed line, or a missing
            ``[net]``; the message names the section, key and line.
    """
    sections: list[Section] = []
    for number, raw_line in enumerate(text.splitlines(), start=1):
        line = raw_line.split("#", 1)[0].split(";", 1)[0].strip()
        if not line:
            continue
        match = _SECTION_RE.match(line)
        if match:
            kind = match.group(1).lower()
            if kind == "conv":
                kind = "convolutional"
            elif kind == "network":
                kind = "net"
            if kind not in _SUPPORTED:
                raise ConfigError(
                    f"line {number}: section [{match.group(1)}] is not supported "
                    f"(supported: {', '.join('[' + s + ']' for s in _SUPPORTED)})"
                )
            sections.append(Section(type=kind, line=number))
            continue
        if "=" not in line:
            raise ConfigError(f"line {number}: expected 'key=value' or '[section]', got {line!r}")
        if not sections:
            raise ConfigError(f"line {number}: key {line!r} appears before any [section]")
        key, value = (part.strip() for part in line.split("=", 1))
        section = sections[-1]
        section.options[key.lower()] = value
        section.key_lines[key.lower()] = number

    if not sections or sections[0].type != "net":
        raise ConfigError("the cfg must start with a [net] section (none found)")
    for section in sections:
        _check_keys(section)
    net, layers = sections[0], sections[1:]
    for index, section in enumerate(layers):
        if section.type == "net":
            raise ConfigError(f"line {section.line}: a second [net] section is not allowed")
        section.index = index
    for key in ("width", "height"):
        net.get_int(key)
    return DarknetConfig(net=net, layers=layers)


def _check_keys(section: Section) -> None:
    used, ignored, only_default = _SUPPORTED[section.type]
    for key, value in section.options.items():
        if key in used or key in ignored:
            continue
        if key in only_default:
            if value.strip().lower() == only_default[key]:
                continue
            raise ConfigError(
                f"{section.where(key)}: {key}={value} is not supported "
                f"(only {key}={only_default[key]})"
            )
        raise ConfigError(f"{section.where(key)}: key '{key}' is not supported in [{section.type}]")


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


@dataclass
class DarknetModel:
    """A built (not yet weighted) model and what is needed to fill and decode it."""

    model: keras.Model
    heads: list[HeadInfo]
    convs: list[ConvSpec]
    input_size: tuple[int, int]
    letterbox: bool


def _activation(x, name: str, section: Section, layer_name: str):
    if name == "linear":
        return x
    if name == "leaky":
        return keras.layers.LeakyReLU(negative_slope=0.1, name=f"{layer_name}_leaky")(x)
    if name == "logistic":
        return keras.layers.Activation("sigmoid", name=f"{layer_name}_logistic")(x)
    if name in ("mish", "relu"):
        return keras.layers.Activation(name, name=f"{layer_name}_{name}")(x)
    if name == "swish":
        return keras.layers.Activation("silu", name=f"{layer_name}_swish")(x)
    raise ConfigError(
        f"{section.where('activation')}: activation '{name}' is not supported "
        f"(supported: {', '.join(ACTIVATIONS)})"
    )


def build_model(config: DarknetConfig, name: str = "darknet") -> DarknetModel:
    """Build the Keras graph of a parsed cfg.

    Convolutions carry a bias and no BatchNormalization layer: batch norm is folded
    into kernel and bias when weights are loaded (inference only).

    Args:
        config: from :func:`parse_cfg`.
        name: the Keras model's name.

    Returns:
        The model, with input (B, height, width, channels) float32 in [0, 1] and one
        output per ``[yolo]`` of shape (B, H, W, A·(5+C)); its heads; its convolutions.
    """
    in_h, in_w = config.input_size
    inputs = keras.Input((in_h, in_w, config.channels), name="image")
    outputs: list = []  # Darknet layer index -> Keras tensor
    names: list[str] = []  # Darknet layer index -> name of the layer producing it
    convs: list[ConvSpec] = []
    heads: list[HeadInfo] = []
    head_outputs = []
    x = inputs
    x_name = "image"

    def ref(section: Section, value: int, key: str) -> int:
        target = section.index + value if value < 0 else value
        if not 0 <= target < section.index:
            raise ConfigError(
                f"{section.where(key)}: layer reference {value} points to layer {target}, "
                f"which is not an earlier layer (this is layer {section.index})"
            )
        return target

    for section in config.layers:
        i = section.index
        kind = section.type
        if kind == "convolutional":
            filters = section.get_int("filters")
            size = section.get_int("size")
            stride = section.get_int("stride", 1)
            pad = section.get_int("pad", 0)
            padding = size // 2 if pad else section.get_int("padding", 0)
            bn = section.get_int("batch_normalize", 0) == 1
            if filters <= 0 or size <= 0 or stride <= 0 or padding < 0:
                raise ConfigError(f"{section.where()}: filters, size and stride must be positive")
            layer_name = f"conv_{i}"
            in_channels = x.shape[-1]
            if padding:
                x = keras.layers.ZeroPadding2D(padding, name=f"{layer_name}_pad")(x)
            x = keras.layers.Conv2D(
                filters, size, strides=stride, padding="valid", use_bias=True, name=layer_name
            )(x)
            convs.append(ConvSpec(layer_name, filters, int(in_channels), size, bn))
            activation = section.get_str("activation", "logistic").lower()
            x = _activation(x, activation, section, layer_name)
            x_name = x._keras_history.operation.name if activation != "linear" else layer_name
        elif kind == "route":
            refs = [ref(section, v, "layers") for v in section.get_ints("layers")]
            if not refs:
                raise ConfigError(f"{section.where('layers')}: layers= lists no layer")
            groups = section.get_int("groups", 1)
            group_id = section.get_int("group_id", 0)
            if groups < 1 or not 0 <= group_id < groups:
                raise ConfigError(
                    f"{section.where('group_id')}: group_id={group_id} "
                    f"must be in [0, groups={groups})"
                )
            parts = []
            for n, r in enumerate(refs):
                part = outputs[r]
                if groups > 1:
                    if part.shape[-1] % groups:
                        raise ConfigError(
                            f"{section.where('groups')}: layer {r} has {part.shape[-1]} channels, "
                            f"not divisible into groups={groups}"
                        )
                    part = ChannelSlice(groups, group_id, name=f"route_{i}_slice{n}")(part)
                parts.append(part)
            if len(parts) == 1:
                x = parts[0]
                x_name = names[refs[0]] if groups == 1 else x._keras_history.operation.name
            else:
                shapes = {tuple(p.shape[1:3]) for p in parts}
                if len(shapes) > 1:
                    raise ConfigError(
                        f"{section.where('layers')}: routed layers {refs} have different "
                        f"spatial sizes {sorted(shapes)}"
                    )
                x = keras.layers.Concatenate(axis=-1, name=f"route_{i}")(parts)
                x_name = f"route_{i}"
        elif kind == "shortcut":
            source = ref(section, section.get_int("from"), "from")
            other = outputs[source]
            if tuple(other.shape[1:]) != tuple(x.shape[1:]):
                raise ConfigError(
                    f"{section.where('from')}: shortcut adds layer {source} of shape "
                    f"{tuple(other.shape[1:])} to shape {tuple(x.shape[1:])}; they must match"
                )
            x = keras.layers.Add(name=f"shortcut_{i}")([x, other])
            activation = section.get_str("activation", "linear").lower()
            x = _activation(x, activation, section, f"shortcut_{i}")
            x_name = x._keras_history.operation.name
        elif kind == "maxpool":
            size = section.get_int("size", section.get_int("stride", 1))
            stride = section.get_int("stride", 1)
            padding = section.get_int("padding", size - 1)
            x = DarknetMaxPool(size, stride, padding, name=f"maxpool_{i}")(x)
            x_name = f"maxpool_{i}"
        elif kind == "upsample":
            stride = section.get_int("stride", 2)
            x = keras.layers.UpSampling2D(stride, interpolation="nearest", name=f"upsample_{i}")(x)
            x_name = f"upsample_{i}"
        elif kind == "yolo":
            heads.append(_head_info(section, config, x, len(heads), outputs, names, convs))
            head_outputs.append(x)
        outputs.append(x)
        names.append(x_name)

    if not heads:
        raise ConfigError("the cfg has no [yolo] section: yolocam needs at least one YOLO head")
    model = keras.Model(inputs, head_outputs, name=name)
    return DarknetModel(model, heads, convs, (in_h, in_w), config.letterbox)


def _head_info(section, config, x, index, outputs, names, convs) -> HeadInfo:
    i = section.index
    previous = config.layers[i - 1] if i > 0 else None
    if (
        previous is None
        or previous.type != "convolutional"
        or previous.get_str("activation", "logistic").lower() != "linear"
    ):
        raise ConfigError(
            f"{section.where()}: a [yolo] section must follow a [convolutional] with "
            "activation=linear (the head's final convolution)"
        )
    classes = section.get_int("classes", 20)
    num = section.get_int("num", 1)
    mask = section.get_ints("mask") if "mask" in section.options else list(range(num))
    flat = [float(v) for v in section.get_str("anchors").split(",") if v.strip()]
    if len(flat) % 2 or len(flat) // 2 < num:
        raise ConfigError(
            f"{section.where('anchors')}: anchors must hold num={num} (width, height) pairs, "
            f"got {len(flat)} numbers"
        )
    pairs = [(flat[2 * k], flat[2 * k + 1]) for k in range(len(flat) // 2)]
    if any(not 0 <= m < len(pairs) for m in mask):
        raise ConfigError(f"{section.where('mask')}: mask {mask} refers to missing anchors")
    channels = x.shape[-1]
    if channels != len(mask) * (5 + classes):
        raise ConfigError(
            f"{section.where()}: the convolution before it has {channels} filters, but "
            f"{len(mask)} anchors × (5 + {classes} classes) = {len(mask) * (5 + classes)}"
        )
    in_w = config.input_size[1]
    grid = (int(x.shape[1]), int(x.shape[2]))
    return HeadInfo(
        index=index,
        output_name=convs[-1].layer_name,
        grid=grid,
        stride=in_w // grid[1],
        anchors=tuple(pairs[m] for m in mask),
        num_classes=classes,
        scale_x_y=section.get_float("scale_x_y", 1.0),
        cam_layer=names[i - 2] if i >= 2 else "image",
    )


HEADER_BYTES_32 = 16
HEADER_BYTES_64 = 20


def read_weights_header(data: bytes) -> tuple[tuple[int, int, int], int, int]:
    """Read a Darknet weights header.

    Returns:
        ((major, minor, revision), seen, header_bytes). ``seen`` is 64-bit when
        ``major * 10 + minor >= 2`` (as Darknet's ``load_weights``), else 32-bit.
    """
    if len(data) < 12:
        raise WeightsError(
            f"weights file is {len(data)} bytes: too short to hold a Darknet header (≥ 16 bytes)"
        )
    major, minor, revision = (int(v) for v in np.frombuffer(data[:12], dtype="<i4"))
    wide = major * 10 + minor >= 2 and major < 1000 and minor < 1000
    header = HEADER_BYTES_64 if wide else HEADER_BYTES_32
    if len(data) < header:
        raise WeightsError(
            f"weights file is {len(data)} bytes, shorter than its {header}-byte header"
        )
    seen = int(np.frombuffer(data[12:header], dtype="<i8" if wide else "<i4")[0])
    return (major, minor, revision), seen, header


def load_weights(built: DarknetModel, weights: bytes | str | Path) -> None:
    """Fill a built model with Darknet weights, folding batch norm into each convolution.

    Args:
        built: from :func:`build_model`.
        weights: the ``.weights`` file's bytes or path.

    Raises:
        WeightsError: the file is shorter or longer than the cfg needs (the message
            states expected and actual bytes).
    """
    data = weights if isinstance(weights, bytes) else Path(weights).read_bytes()
    _, _, header = read_weights_header(data)
    expected = header + 4 * sum(c.num_values for c in built.convs)
    if len(data) != expected:
        problem = "too short" if len(data) < expected else "too long"
        raise WeightsError(
            f"weights file is {problem} for this cfg: expected {expected:,} bytes "
            f"({header}-byte header + {len(built.convs)} convolutions), got {len(data):,} bytes. "
            "Check that the .weights file belongs to this .cfg (same classes and filters)."
        )
    values = np.frombuffer(data, dtype="<f4", offset=header)
    pos = 0

    def take(n: int) -> np.ndarray:
        nonlocal pos
        out = values[pos : pos + n]
        pos += n
        return out

    for conv in built.convs:
        f = conv.filters
        bias = take(f).astype(np.float32)
        if conv.batch_normalize:
            gamma, mean, var = take(f), take(f), take(f)
        kernel = take(f * conv.in_channels * conv.size * conv.size)
        kernel = kernel.reshape(f, conv.in_channels, conv.size, conv.size).transpose(2, 3, 1, 0)
        if conv.batch_normalize:
            factor = gamma / np.sqrt(var + BN_EPSILON)
            kernel = kernel * factor
            bias = bias - mean * factor
        built.model.get_layer(conv.layer_name).set_weights(
            [np.ascontiguousarray(kernel, dtype=np.float32), bias.astype(np.float32)]
        )


def load_darknet(cfg: str | Path, weights: str | Path | bytes | None = None) -> DarknetModel:
    """Parse, build and (if ``weights`` is given) load a Darknet model.

    Args:
        cfg: path to the ``.cfg`` file.
        weights: path or bytes of the ``.weights`` file; None leaves random weights.
    """
    path = Path(cfg)
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError as exc:
        raise ConfigError(f"cannot read cfg file {path}: {exc.strerror or exc}") from None
    try:
        config = parse_cfg(text)
    except ConfigError as exc:
        raise ConfigError(f"{path.name}: {exc}") from None
    built = build_model(config, name=re.sub(r"[^A-Za-z0-9_]", "_", path.stem) or "darknet")
    if weights is not None:
        load_weights(built, weights)
    return built
