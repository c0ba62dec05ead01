"""The one description of a model: :class:`ModelSpec` (frozen, hashable) and its load().

Every front end builds a spec (the CLI from its options, batch runs store it and their
workers load it, the app from an upload) and calls :meth:`ModelSpec.load`;
:func:`load_detector` is the same from keyword arguments.
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass
from typing import TYPE_CHECKING

from yolocam_core.models.anchors import (
    Anchors,
    AnchorsSpec,
    Masks,
    MasksSpec,
    parse_anchors,
    parse_masks,
)
from yolocam_core.models.classes import ClassesSpec, parse_classes
from yolocam_core.models.options import InputSizeSpec, parse_input_size
from yolocam_core.models.zoo import DEFAULT_MODEL, ZOO

if TYPE_CHECKING:
    from yolocam_core.detector import Detector


@dataclass(frozen=True)
class ModelSpec:
    """What model to load and how: a named model or a model file, and its options.

    Build one with :meth:`from_options` (which parses what users write); the fields
    hold parsed values only, so two specs of the same model compare and hash equal.

    Attributes:
        source: a named model (e.g. ``"yolov4-tiny"``) or a path to a Darknet ``.cfg``
            or a Keras ``.keras`` / ``.h5`` file (absolute, so that workers elsewhere
            find it).
        weights: a ``.cfg``'s ``.weights`` when not beside it.
        classes: ``"coco"``, ``"voc"``, a names file, or the names themselves; None
            guesses from the class count (a named model: its own names).
        anchors: (width, height) pairs in input pixels; None: the model's defaults.
        anchor_masks: Keras models: anchors of each head, coarsest first; None: default.
        input_size: (height, width), multiples of 32; None: the model's own.
        letterbox: keep the aspect ratio and pad; None: the model's default.
        trust_model_code: Keras models may run Python code (never from the app).
        name: the name shown for the model; None: the file's or the named model's.
    """

    source: str = DEFAULT_MODEL
    weights: str | None = None
    classes: str | tuple[str, ...] | None = None
    anchors: Anchors | None = None
    anchor_masks: Masks | None = None
    input_size: tuple[int, int] | None = None
    letterbox: bool | None = None
    trust_model_code: bool = False
    name: str | None = None

    @classmethod
    def from_options(
        cls,
        source: str | os.PathLike = DEFAULT_MODEL,
        *,
        weights: str | os.PathLike | None = None,
        classes: ClassesSpec = None,
        anchors: AnchorsSpec = None,
        anchor_masks: MasksSpec = None,
        input_size: InputSizeSpec = None,
        letterbox: bool | None = None,
        trust_model_code: bool = False,
        name: str | None = None,
    ) -> ModelSpec:
        """A spec from options as users write them (strings parsed, paths made absolute).

        Args:
            source: a named model or a model file.
            weights, classes, anchors, anchor_masks, input_size, letterbox,
                trust_model_code, name: see the attributes; strings are parsed by
                :func:`~yolocam_core.models.anchors.parse_anchors`,
                :func:`~yolocam_core.models.anchors.parse_masks`,
                :func:`~yolocam_core.models.options.parse_input_size` and
                :func:`~yolocam_core.models.classes.parse_classes`.

        Raises:
            ModelFileError: an option that cannot be parsed; the message says why.
        """
        return cls(
            source=_absolute(os.fspath(source)),
            weights=None if weights is None else _absolute(os.fspath(weights)),
            classes=parse_classes(classes),
            anchors=parse_anchors(anchors),
            anchor_masks=parse_masks(anchor_masks),
            input_size=parse_input_size(input_size),
            letterbox=None if letterbox is None else bool(letterbox),
            trust_model_code=bool(trust_model_code),
            name=name or None,
        )

    def replace(self, **changes) -> ModelSpec:
        """A copy with some fields changed (values as the fields hold them: parsed)."""
        return dataclasses.replace(self, **changes)

    def load(self, use_cache: bool = True) -> Detector:
        """The :class:`~yolocam_core.detector.Detector` this spec describes.

        A named model and a Darknet cfg are converted once and cached (see
        :mod:`yolocam_core.models.cache`); a Keras file is loaded after its
        architecture passed the code check (see :mod:`yolocam_core.models.keras_safety`).

        Args:
            use_cache: read and write the converted-model cache (Darknet models).

        Raises:
            ModelNotFoundError: unknown name, missing file, or the package with the
                files is missing.
            WeightsError: weights that do not fit (expected and actual bytes named),
                hold NaN or infinite values, or a named model's weights that do not
                match their published checksum.
            UnsafeModelError: a Keras file with Python code and no ``trust_model_code``.
            ModelFileError, ConfigError: a file we cannot use, or one beyond the limits
                of :mod:`yolocam_core.models.options`; the message says why.
        """
        from yolocam_core.models.loading import load_spec

        return load_spec(self, use_cache)


def load_detector(
    name: str | os.PathLike = DEFAULT_MODEL, *, use_cache: bool = True, **options
) -> Detector:
    """Load a named model or a model file: ``ModelSpec.from_options(name, **options).load()``.

    Args:
        name: a key of :data:`~yolocam_core.models.zoo.ZOO` (default ``"yolov4-tiny"``),
            or a path: a Darknet ``.cfg`` (its ``.weights`` beside it, or ``weights=``),
            or a Keras ``.keras`` / legacy ``.h5`` model whose outputs are the raw YOLO
            heads.
        use_cache: read and write the converted-model cache (Darknet models).
        **options: the keyword arguments of :meth:`ModelSpec.from_options`:
            ``weights`` (a cfg's ``.weights`` when not beside it), ``classes``
            (``"coco"``, ``"voc"``, a names file or a list; None guesses from the class
            count), ``anchors`` (``"10,13, 16,30, …"`` or pairs; None: the cfg's, or the
            YOLOv3 / tiny defaults for Keras models), ``anchor_masks`` (Keras models:
            ``"6,7,8; 3,4,5; 0,1,2"``, a list, or ``"keras-yolo3"``), ``input_size``
            (a multiple of 32, or (height, width)), ``letterbox`` (None: the cfg's
            ``letter_box``, or True for Keras models), ``trust_model_code`` (Keras
            models: load Lambda layers and other Python code; never for files you did
            not write), ``name``.

    Returns:
        A ready :class:`~yolocam_core.detector.Detector`.

    Raises:
        YolocamError: see :meth:`ModelSpec.load`; TypeError for an unknown option.

    Example:
        >>> load_detector("yolo3_mobilenetv2_lite_voc.h5", classes="voc")
        >>> load_detector("yolov3.cfg", weights="yolov3.weights", input_size=608)
    """
    return ModelSpec.from_options(name, **options).load(use_cache=use_cache)


def _absolute(text: str) -> str:
    """A path that exists (even as a broken or looping link) becomes absolute; anything
    else (a model name, a missing file) is kept as written."""
    if text in ZOO or not os.path.lexists(text):
        return text
    return os.path.abspath(text)
