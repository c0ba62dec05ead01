"""Bring your own model: a Darknet ``.cfg`` + ``.weights`` or a Keras ``.keras``/``.h5``
file, with class names, anchors, input size and letterboxing chosen by the caller.

:func:`load_model_file` is what :func:`yolocam_core.zoo.load_detector` calls for a path.
Darknet models are converted once per content (cfg, weights and options hashed with
sha256) and cached like the zoo's; Keras models load in seconds and are not cached.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from pathlib import Path

from yolocam_core.anchors import AnchorsSpec, MasksSpec, parse_anchors
from yolocam_core.classes import ClassesSpec, resolve_class_names
from yolocam_core.darknet import build_model, load_weights, parse_cfg
from yolocam_core.detector import Detector
from yolocam_core.errors import ConfigError, ModelFileError, ModelNotFoundError, WeightsError
from yolocam_core.keras_import import load_keras_detector, parse_input_size

DARKNET_SUFFIXES = (".cfg",)
KERAS_SUFFIXES = (".keras", ".h5", ".hdf5")
MODEL_SUFFIXES = DARKNET_SUFFIXES + KERAS_SUFFIXES
#: A cfg larger than this is refused (yolov4.cfg is 12 kB).
MAX_CFG_BYTES = 1 << 20


def looks_like_path(name: str | os.PathLike) -> bool:
    """Whether ``--model`` names a file rather than a zoo model."""
    text = os.fspath(name)
    return (
        Path(text).suffix.lower() in (*MODEL_SUFFIXES, ".weights")
        or os.sep in text
        or "/" in text
        or Path(text).is_file()
    )


def load_model_file(
    path: str | os.PathLike,
    *,
    weights: str | os.PathLike | None = None,
    classes: ClassesSpec = None,
    anchors: AnchorsSpec = None,
    anchor_masks: MasksSpec = None,
    input_size: int | tuple[int, int] | None = None,
    letterbox: bool | None = None,
    trust_model_code: bool = False,
    use_cache: bool = True,
    name: str | None = None,
) -> Detector:
    """A detector from a model file; see :func:`yolocam_core.zoo.load_detector`."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix == ".weights":
        raise ModelFileError(
            f"{path.name} is a Darknet weights file: give its .cfg as the model and the "
            "weights with --weights (or put them beside the cfg with the same name)"
        )
    if not path.exists():
        raise ModelNotFoundError(f"model file {path} does not exist")
    if path.is_dir():
        raise ModelFileError(
            f"{path} is a folder; TensorFlow SavedModel folders are not supported: save the "
            "model as .keras or .h5 (model.save('model.keras'))"
        )
    if suffix == ".cfg":
        if anchor_masks is not None:
            raise ModelFileError(
                "anchor masks come from the cfg's [yolo] sections (mask=); edit the cfg instead"
            )
        return load_darknet_detector(
            path,
            weights,
            classes=classes,
            anchors=anchors,
            input_size=input_size,
            letterbox=letterbox,
            use_cache=use_cache,
            name=name,
        )
    if weights is not None:
        raise ModelFileError("--weights is only for Darknet .cfg models")
    if suffix not in KERAS_SUFFIXES and not path.is_file():
        raise ModelFileError(f"{path}: not a model file (.cfg, .keras, .h5)")
    return load_keras_detector(
        path,
        classes=classes,
        anchors=anchors,
        anchor_masks=anchor_masks,
        input_size=input_size,
        letterbox=letterbox,
        trust_model_code=trust_model_code,
        name=name,
    )


def _read_cfg_text(cfg: Path) -> str:
    try:
        size = cfg.stat().st_size
        if size > MAX_CFG_BYTES:
            raise ConfigError(
                f"{cfg.name} is {size:,} bytes; a Darknet cfg is a small text file "
                f"(under {MAX_CFG_BYTES:,} bytes). Is it the .weights file?"
            )
        data = cfg.read_bytes()
    except OSError as exc:
        raise ConfigError(f"cannot read cfg file {cfg}: {exc.strerror or exc}") from None
    if b"\x00" in data[:4096]:
        raise ConfigError(f"{cfg.name} is a binary file, not a Darknet cfg (text)")
    return data.decode("utf-8", errors="replace")


def configure(text: str, anchors: AnchorsSpec = None, input_size=None):
    """Parse cfg text and apply the caller's anchors and input size.

    Returns:
        The :class:`~yolocam_core.darknet.DarknetConfig`.
    """
    config = parse_cfg(text)
    size = parse_input_size(input_size)
    if size is not None:
        config.net.options["height"], config.net.options["width"] = str(size[0]), str(size[1])
    pairs = parse_anchors(anchors)
    if pairs is not None:
        flat = ", ".join(f"{w:g},{h:g}" for w, h in pairs)
        for section in config.layers:
            if section.type == "yolo":
                section.options["anchors"] = flat
                section.options["num"] = str(len(pairs))
    return config


def _num_classes(config) -> int:
    counts = {s.get_int("classes", 20) for s in config.layers if s.type == "yolo"}
    if len(counts) > 1:
        raise ConfigError(f"the cfg's [yolo] sections disagree on classes: {sorted(counts)}")
    if not counts:
        raise ConfigError("the cfg has no [yolo] section: yolocam needs at least one YOLO head")
    return counts.pop()


def load_darknet_detector(
    cfg: str | os.PathLike,
    weights: str | os.PathLike | None = None,
    *,
    classes: ClassesSpec = None,
    anchors: AnchorsSpec = None,
    input_size: int | tuple[int, int] | None = None,
    letterbox: bool | None = None,
    use_cache: bool = True,
    name: str | None = None,
) -> Detector:
    """A Darknet model from its cfg and weights (any YOLOv3/v4 family cfg and class count).

    Args:
        cfg: the ``.cfg`` file.
        weights: the ``.weights`` file; default: beside the cfg with the same stem.
        classes: names (see :func:`yolocam_core.classes.resolve_class_names`).
        anchors: replace the cfg's anchors (all ``[yolo]`` sections; masks kept).
        input_size: replace the cfg's ``[net]`` width/height (multiples of 32).
        letterbox: default: the cfg's ``letter_box``.
        use_cache: read and write the converted-model cache (keyed by sha256 of cfg,
            weights and options).
        name: shown in the UI (default: the cfg's file name).

    Raises:
        ConfigError: a cfg we cannot parse or support (section, key and line named).
        WeightsError: weights that do not fit the cfg (expected and actual bytes).
        ModelNotFoundError: a missing weights file.
    """
    from yolocam_core import zoo

    cfg = Path(cfg)
    weights_path = Path(weights) if weights is not None else cfg.with_suffix(".weights")
    if not weights_path.is_file():
        raise ModelNotFoundError(
            f"no weights for {cfg.name}: {weights_path} does not exist; pass the .weights "
            "file with --weights (library: weights=)"
        )
    text = _read_cfg_text(cfg)
    try:
        config = configure(text, anchors, input_size)
        class_names = resolve_class_names(classes, _num_classes(config))
    except ConfigError as exc:
        raise ConfigError(f"{cfg.name}: {exc}") from None
    label = name or cfg.name
    options = {
        "anchors": anchors if isinstance(anchors, str) or anchors is None else list(anchors),
        "input_size": parse_input_size(input_size),
    }
    digest = hashlib.sha256()
    digest.update(text.encode("utf-8"))
    digest.update(zoo.sha256_of(weights_path).encode("ascii"))
    digest.update(json.dumps(options, sort_keys=True, default=str).encode("utf-8"))
    key = f"byo-{digest.hexdigest()[:16]}"

    def convert():
        model_name = re.sub(r"[^A-Za-z0-9_]", "_", cfg.stem) or "darknet"
        try:
            built = build_model(config, name=model_name)
        except ConfigError as exc:
            raise ConfigError(f"{cfg.name}: {exc}") from None
        try:
            load_weights(built, weights_path)
        except WeightsError as exc:
            raise WeightsError(f"{weights_path.name} does not fit {cfg.name}: {exc}") from None
        return built

    detector = zoo.cached_conversion(key, class_names, label, convert, use_cache)
    return _with_letterbox(detector, letterbox)


def _with_letterbox(detector: Detector, letterbox: bool | None) -> Detector:
    if letterbox is None or bool(letterbox) == detector.letterbox:
        return detector
    return Detector(
        detector.keras_model,
        detector.heads,
        detector.class_names,
        letterbox=bool(letterbox),
        name=detector.name,
    )
