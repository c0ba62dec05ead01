"""Darknet cfg files: reading (bounded), parsing and validating, and the caller's options.

:func:`parse_cfg` reads the cfg text into :class:`Section` objects and rejects any
section or key we do not support, naming it and its line; :func:`read_cfg_text` is the
one way a cfg file is read (size-bounded, text only); :func:`apply_options` replaces
the cfg's anchors and input size; :func:`model_name` is the Keras name of a cfg's model.

Supported sections: ``[net]``, ``[convolutional]``, ``[route]``, ``[shortcut]``,
``[maxpool]``, ``[upsample]``, ``[yolo]`` — everything yolov3, yolov3-tiny,
yolov3-spp, yolov4 and yolov4-tiny use.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from yolocam_core.errors import ConfigError
from yolocam_core.models.anchors import Anchors
from yolocam_core.models.files import read_small_file

#: A cfg larger than this is refused (yolov4.cfg is 12 kB).
MAX_CFG_BYTES = 1 << 20

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
        return self._get_list(key, int, "integers")

    def get_floats(self, key: str) -> list[float]:
        return self._get_list(key, float, "numbers")

    def _get_list(self, key: str, kind, what: str) -> list:
        raw = self._get(key, None, str)
        try:
            return [kind(v) for v in str(raw).split(",") if v.strip()]
        except ValueError:
            raise ConfigError(
                f"{self.where(key)}: {key}={raw!r} should be a comma-separated list of {what}"
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


def read_cfg_text(cfg: str | Path) -> str:
    """The text of a cfg file, refused when it is missing, special, huge or binary.

    Raises:
        ModelNotFoundError / ModelFileError: missing, a folder, a special file or a
            symbolic-link loop (see :func:`~yolocam_core.models.files.read_small_file`).
        ConfigError: larger than :data:`MAX_CFG_BYTES`, unreadable, or binary.
    """
    cfg = Path(cfg)
    hint = " (a Darknet cfg is a small text file: is it the .weights file?)"
    data = read_small_file(cfg, "cfg file", MAX_CFG_BYTES, hint, ConfigError)
    if b"\x00" in data[:4096]:
        raise ConfigError(f"{cfg.name} is a binary file, not a Darknet cfg (text)")
    return data.decode("utf-8", errors="replace")


def model_name(cfg: str | Path) -> str:
    """The Keras model name of a cfg: its file stem with anything but letters, digits
    and ``_`` replaced by ``_`` (``yolov4-tiny.cfg`` -> ``yolov4_tiny``)."""
    return re.sub(r"[^A-Za-z0-9_]", "_", Path(cfg).stem) or "darknet"


def apply_options(
    config: DarknetConfig,
    anchors: Anchors | None = None,
    input_size: tuple[int, int] | None = None,
) -> DarknetConfig:
    """Replace the cfg's ``[net]`` height/width and every ``[yolo]``'s anchors (masks kept).

    Args:
        config: from :func:`parse_cfg`; changed in place and returned.
        anchors: (width, height) pairs in input pixels, or None to keep the cfg's.
        input_size: (height, width), or None to keep the cfg's.
    """
    if input_size is not None:
        config.net.options["height"], config.net.options["width"] = map(str, input_size)
    if anchors is not None:
        flat = ", ".join(f"{w:g},{h:g}" for w, h in anchors)
        for section in config.layers:
            if section.type == "yolo":
                section.options["anchors"] = flat
                section.options["num"] = str(len(anchors))
    return config
