"""The one description of a model: :class:`ModelSpec` (frozen, hashable) and its load().

Every front end builds a spec (the CLI from its options, batch runs store it and their
workers load it, the app from an upload) and calls :meth:`ModelSpec.load`;
:func:`yolocam_core.models.load_detector` is the same from keyword arguments.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, replace
from pathlib import Path

from yolocam_core.anchors import Anchors, AnchorsSpec, Masks, MasksSpec, parse_anchors, parse_masks
from yolocam_core.classes import ClassesSpec
from yolocam_core.keras_import import parse_input_size

DEFAULT_MODEL = "yolov4-tiny"


@dataclass(frozen=True)
class ModelSpec:
    """What model to load and how: a named model or a model file, and its options.

    Attributes:
        source: a named model (e.g. ``"yolov4-tiny"``) or a path to a Darknet ``.cfg``
            or a Keras ``.keras`` / ``.h5`` file (absolute, so that workers elsewhere
            find it).
        weights: a ``.cfg``'s ``.weights`` when not beside it.
        classes: ``"coco"``, ``"voc"``, a names file, or the names themselves; None
            guesses from the class count.
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
        input_size: int | str | tuple[int, int] | None = None,
        letterbox: bool | None = None,
        trust_model_code: bool = False,
        name: str | None = None,
    ) -> ModelSpec:
        """A spec from options as users write them (strings parsed, paths made absolute).

        Raises:
            ModelFileError: an option that cannot be parsed; the message says why.
        """
        if isinstance(classes, (str, os.PathLike)):
            text = os.fspath(classes)
            classes_value: str | tuple[str, ...] | None = (
                text if text.lower() in ("coco", "voc") else _absolute(text)
            )
        elif classes is None:
            classes_value = None
        else:
            classes_value = tuple(str(c) for c in classes)
        return cls(
            source=_absolute(os.fspath(source)),
            weights=None if weights is None else _absolute(os.fspath(weights)),
            classes=classes_value,
            anchors=parse_anchors(anchors),
            anchor_masks=parse_masks(anchor_masks),
            input_size=parse_input_size(input_size),
            letterbox=None if letterbox is None else bool(letterbox),
            trust_model_code=bool(trust_model_code),
            name=name,
        )

    def replace(self, **changes) -> ModelSpec:
        """A copy with some fields changed."""
        return replace(self, **changes)

    def load(self, use_cache: bool = True):
        """The :class:`~yolocam_core.detector.Detector` this spec describes.

        Raises:
            YolocamError: see :func:`yolocam_core.models.load_detector`.
        """
        from yolocam_core.zoo import load_detector as _load

        detector = _load(
            self.source,
            use_cache=use_cache,
            weights=self.weights,
            classes=list(self.classes) if isinstance(self.classes, tuple) else self.classes,
            anchors=None if self.anchors is None else [list(a) for a in self.anchors],
            anchor_masks=None
            if self.anchor_masks is None
            else [list(m) for m in self.anchor_masks],
            input_size=self.input_size,
            letterbox=self.letterbox,
            trust_model_code=self.trust_model_code,
        )
        if self.name and self.name != detector.name:
            from yolocam_core.detector import Detector

            detector = Detector(
                detector.keras_model,
                detector.heads,
                detector.class_names,
                letterbox=detector.letterbox,
                name=self.name,
            )
        return detector


def _absolute(text: str) -> str:
    """A path that exists becomes absolute; anything else (a model name) is kept."""
    return str(Path(text).resolve()) if os.path.exists(text) else text
