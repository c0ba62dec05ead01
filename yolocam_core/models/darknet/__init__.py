"""Darknet cfg + weights -> Keras model with raw YOLO head outputs.

Separate steps, each testable alone:

1. :mod:`~yolocam_core.models.darknet.cfg`: :func:`parse_cfg` reads the cfg text into
   :class:`Section` objects and rejects any section or key we do not support, naming
   it and its line.
2. :mod:`~yolocam_core.models.darknet.build`: :func:`plan_model` validates every
   section and computes shapes, layer names, convolutions and heads without building
   anything (and refuses models beyond the limits of
   :mod:`yolocam_core.models.options`); :func:`build_model` turns the plan into a
   Keras functional model, one small builder per section type
   (:data:`~yolocam_core.models.darknet.sections.SECTIONS`).
3. :mod:`~yolocam_core.models.darknet.weights`: :func:`load_weights` checks a
   ``.weights`` file's size and values and writes the parameters into the model with
   batch norm folded into each convolution.
"""

from __future__ import annotations

from pathlib import Path

from yolocam_core.errors import ConfigError
from yolocam_core.models.darknet.build import (
    DarknetModel,
    DarknetPlan,
    build_model,
    plan_model,
)
from yolocam_core.models.darknet.cfg import (
    DarknetConfig,
    Section,
    apply_options,
    model_name,
    parse_cfg,
    read_cfg_text,
)
from yolocam_core.models.darknet.sections import ACTIVATIONS, SECTIONS, ConvSpec
from yolocam_core.models.darknet.weights import (
    BN_EPSILON,
    check_weights_file,
    load_weights,
    read_weights_header,
)


def load_config(cfg: str | Path) -> DarknetConfig:
    """Read and parse a cfg file; errors are prefixed with the file's name."""
    path = Path(cfg)
    text = read_cfg_text(path)
    try:
        return parse_cfg(text)
    except ConfigError as exc:
        raise ConfigError(f"{path.name}: {exc}") from None


def load_darknet(cfg: str | Path, weights: str | Path | bytes | None = None) -> DarknetModel:
    """Parse, build and (if ``weights`` is given) load a Darknet model.

    Args:
        cfg: path to the ``.cfg`` file.
        weights: path or bytes of the ``.weights`` file; None leaves random weights.
    """
    path = Path(cfg)
    config = load_config(path)
    try:
        plan = plan_model(config)
    except ConfigError as exc:
        raise ConfigError(f"{path.name}: {exc}") from None
    built = build_model(plan, name=model_name(path))
    if weights is not None:
        load_weights(built, weights)
    return built


__all__ = [
    "ACTIVATIONS",
    "BN_EPSILON",
    "SECTIONS",
    "ConvSpec",
    "DarknetConfig",
    "DarknetModel",
    "DarknetPlan",
    "Section",
    "apply_options",
    "build_model",
    "check_weights_file",
    "load_config",
    "load_darknet",
    "load_weights",
    "model_name",
    "parse_cfg",
    "plan_model",
    "read_cfg_text",
    "read_weights_header",
]
