"""From a :class:`~yolocam_core.models.spec.ModelSpec` to a Detector: the one dispatcher.

- a named model: its files (checked against their checksum), then the Darknet path;
- a Darknet ``.cfg``: read, options applied, planned (validated and bounded), the
  weights checked, then converted once and cached (:mod:`yolocam_core.models.cache`);
- a Keras ``.keras`` / ``.h5``: checked for code and size, loaded
  (:mod:`yolocam_core.models.keras_import`); Keras models load in seconds and are
  not cached.

A named model with options takes the same Darknet path, with the same cache-key
scheme, as a plain named model.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from yolocam_core.errors import ConfigError, ModelFileError, ModelNotFoundError, WeightsError
from yolocam_core.models.files import check_model_path, check_regular_file, looks_like_path
from yolocam_core.models.zoo import ZOO, zoo_files

if TYPE_CHECKING:
    from yolocam_core.detector import Detector
    from yolocam_core.models.anchors import Anchors
    from yolocam_core.models.darknet import DarknetPlan
    from yolocam_core.models.spec import ModelSpec


def load_spec(spec: ModelSpec, use_cache: bool = True) -> Detector:
    """The detector a spec describes; see :meth:`ModelSpec.load`."""
    if spec.source in ZOO:
        return _load_named(spec, use_cache)
    if not looks_like_path(spec.source):
        raise ModelNotFoundError(
            f"unknown model {spec.source!r}; available: {', '.join(sorted(ZOO))}"
        )
    path = check_model_path(spec.source)
    if path.suffix.lower() == ".cfg":
        if spec.anchor_masks is not None:
            raise ModelFileError(
                "anchor masks come from the cfg's [yolo] sections (mask=); edit the cfg instead"
            )
        weights = Path(spec.weights) if spec.weights is not None else path.with_suffix(".weights")
        return load_darknet_detector(
            path,
            weights,
            classes=spec.classes,
            anchors=spec.anchors,
            input_size=spec.input_size,
            letterbox=spec.letterbox,
            name=spec.name or path.name,
            use_cache=use_cache,
        )
    if spec.weights is not None:
        raise ModelFileError("--weights is only for Darknet .cfg models")
    from yolocam_core.models.keras_import import load_keras_detector

    return load_keras_detector(
        path,
        classes=spec.classes,
        anchors=spec.anchors,
        anchor_masks=spec.anchor_masks,
        input_size=spec.input_size,
        letterbox=spec.letterbox,
        trust_model_code=spec.trust_model_code,
        name=spec.name,
    )


def _load_named(spec: ModelSpec, use_cache: bool) -> Detector:
    if spec.anchor_masks is not None:
        raise ModelFileError(f"{spec.source} is a Darknet model: its anchor masks are in its cfg")
    if spec.weights is not None:
        raise ModelFileError(f"{spec.source} ships its own weights; weights= is for .cfg files")
    files = zoo_files(spec.source)
    return load_darknet_detector(
        files.cfg,
        files.weights,
        classes=files.names if spec.classes is None else spec.classes,
        anchors=spec.anchors,
        input_size=spec.input_size,
        letterbox=spec.letterbox,
        name=spec.name or spec.source,
        use_cache=use_cache,
        key_name=spec.source,
        weights_sha256=files.weights_sha256,
    )


def load_darknet_detector(
    cfg: Path,
    weights: Path,
    *,
    classes: str | Path | tuple[str, ...] | None,
    anchors: Anchors | None,
    input_size: tuple[int, int] | None,
    letterbox: bool | None,
    name: str,
    use_cache: bool = True,
    key_name: str | None = None,
    weights_sha256: str | None = None,
) -> Detector:
    """A Darknet model from its cfg and weights, converted once and cached.

    Everything that can be checked without building the model is checked first: the
    files (kinds and sizes), the cfg (every section, the limits), the class names and
    the weights' size. Then the cache is read, or the model built, filled (values
    checked finite) and saved.

    Args:
        cfg: the ``.cfg`` file.
        weights: its ``.weights`` file.
        classes: names (see :func:`~yolocam_core.models.classes.resolve_class_names`).
        anchors: replace the cfg's anchors (all ``[yolo]`` sections; masks kept).
        input_size: replace the cfg's ``[net]`` (height, width).
        letterbox: None: the cfg's ``letter_box``.
        name: the detector's name.
        use_cache: read and write the converted-model cache.
        key_name: the name in the cache key (default: the Keras model name).
        weights_sha256: the weights' sha256 when already computed.

    Raises:
        ConfigError: a cfg we cannot parse, support or afford (section, key, line named).
        WeightsError: weights that do not fit the cfg (expected and actual bytes), or
            hold values that are not finite.
        ModelNotFoundError: a missing file.
    """
    from yolocam_core.models.cache import cached_conversion, conversion_key, sha256_of
    from yolocam_core.models.classes import resolve_class_names
    from yolocam_core.models.darknet import (
        apply_options,
        build_model,
        check_weights_file,
        load_weights,
        model_name,
        parse_cfg,
        plan_model,
        read_cfg_text,
    )

    _check_weights_exist(cfg, weights)
    text = read_cfg_text(cfg)
    try:
        plan = plan_model(apply_options(parse_cfg(text), anchors, input_size))
    except ConfigError as exc:
        raise ConfigError(f"{cfg.name}: {exc}") from None
    class_names = resolve_class_names(classes, _num_classes(plan, cfg.name))
    try:
        check_weights_file(weights, plan.convs)
    except WeightsError as exc:
        raise WeightsError(f"{weights.name} does not fit {cfg.name}: {exc}") from None
    options = {
        "anchors": None if anchors is None else [list(pair) for pair in anchors],
        "input_size": None if input_size is None else list(input_size),
    }
    key = conversion_key(
        key_name or model_name(cfg), text, weights_sha256 or sha256_of(weights), options
    )

    def convert():
        built = build_model(plan, name=model_name(cfg))
        try:
            load_weights(built, weights)
        except WeightsError as exc:
            raise WeightsError(f"{weights.name}: {exc}") from None
        return built

    detector = cached_conversion(key, class_names, name, convert, use_cache)
    if letterbox is None or bool(letterbox) == detector.letterbox:
        return detector
    return detector.replace(letterbox=bool(letterbox))


def _check_weights_exist(cfg: Path, weights: Path) -> None:
    try:
        check_regular_file(weights, "weights file")
    except ModelNotFoundError:
        raise ModelNotFoundError(
            f"no weights for {cfg.name}: {weights} does not exist; pass the .weights "
            "file with --weights (library: weights=)"
        ) from None


def _num_classes(plan: DarknetPlan, label: str) -> int:
    counts = {head.num_classes for head in plan.heads}
    if len(counts) > 1:
        raise ConfigError(
            f"{label}: the cfg's [yolo] sections disagree on classes: {sorted(counts)}"
        )
    return counts.pop()
