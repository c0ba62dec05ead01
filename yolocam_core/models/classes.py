"""Class names: the COCO and VOC presets, files, and checks against a model's classes.

The presets use Darknet's spellings (``coco.names``, ``voc.names``), which are also
those of keras-yolo3's and keras-YOLOv3-model-set's ``coco_classes.txt`` /
``voc_classes.txt`` (``motorbike``, ``aeroplane``, ``sofa``, ``tvmonitor``, …).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from yolocam_core.errors import ModelFileError
from yolocam_core.models.files import read_small_file

COCO_CLASSES: tuple[str, ...] = (
    "person", "bicycle", "car", "motorbike", "aeroplane", "bus", "train", "truck",
    "boat", "traffic light", "fire hydrant", "stop sign", "parking meter", "bench",
    "bird", "cat", "dog", "horse", "sheep", "cow", "elephant", "bear", "zebra",
    "giraffe", "backpack", "umbrella", "handbag", "tie", "suitcase", "frisbee", "skis",
    "snowboard", "sports ball", "kite", "baseball bat", "baseball glove", "skateboard",
    "surfboard", "tennis racket", "bottle", "wine glass", "cup", "fork", "knife",
    "spoon", "bowl", "banana", "apple", "sandwich", "orange", "broccoli", "carrot",
    "hot dog", "pizza", "donut", "cake", "chair", "sofa", "pottedplant", "bed",
    "diningtable", "toilet", "tvmonitor", "laptop", "mouse", "remote", "keyboard",
    "cell phone", "microwave", "oven", "toaster", "sink", "refrigerator", "book",
    "clock", "vase", "scissors", "teddy bear", "hair drier", "toothbrush",
)  # fmt: skip
"""The 80 COCO detection classes in Darknet's order and spelling."""

VOC_CLASSES: tuple[str, ...] = (
    "aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat", "chair",
    "cow", "diningtable", "dog", "horse", "motorbike", "person", "pottedplant",
    "sheep", "sofa", "train", "tvmonitor",
)  # fmt: skip
"""The 20 PASCAL VOC classes in the usual (alphabetical) order."""

PRESETS: dict[str, tuple[str, ...]] = {"coco": COCO_CLASSES, "voc": VOC_CLASSES}

#: A class-names file larger than this is refused (a names file is a few kB).
MAX_NAMES_FILE_BYTES = 1 << 20

ClassesSpec = str | Path | Sequence[str] | None
"""What a caller may pass as ``classes``: ``"coco"``, ``"voc"``, a path to a file with
one name per line, a list of names, or None (guess from the class count)."""


def parse_class_names(text: str) -> list[str]:
    """One class name per non-empty line (surrounding spaces removed)."""
    return [line.strip() for line in text.splitlines() if line.strip()]


def read_class_names_file(path: str | Path) -> list[str]:
    """Read a names file (``coco.names``, ``voc_classes.txt``, …).

    Raises:
        ModelFileError: missing, unreadable, too large, not text, or empty.
    """
    path = Path(path)
    hint = " (a names file holds one name per line)"
    data = read_small_file(path, "class names file", MAX_NAMES_FILE_BYTES, hint)
    return names_from_bytes(data, path.name)


def names_from_bytes(data: bytes, label: str = "class names") -> list[str]:
    """Names from the bytes of a names file; ModelFileError if it is not usable text."""
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise ModelFileError(
            f"{label} is not a UTF-8 text file; it should hold one class name per line"
        ) from None
    names = parse_class_names(text)
    if not names:
        raise ModelFileError(f"{label} is empty; it should hold one class name per line")
    return names


def parse_classes(value: ClassesSpec) -> str | tuple[str, ...] | None:
    """The ``classes`` option in a hashable form, files made absolute.

    Args:
        value: ``"coco"`` / ``"voc"`` (any case), a path to a names file, a list of
            names, or None.

    Returns:
        The preset name (lower case), an absolute path (str), a tuple of names, or None.
        Files are read later, by :func:`resolve_class_names`.
    """
    if value is None:
        return None
    if isinstance(value, (str, os.PathLike)):
        text = os.fspath(value)
        if text.lower() in PRESETS:
            return text.lower()
        return str(Path(text).absolute()) if text else text
    return tuple(str(c) for c in value)


def default_class_names(num_classes: int) -> list[str]:
    """The guess when no names are given: COCO for 80 classes, VOC for 20, else
    ``class_0``, ``class_1``, …"""
    for preset in (COCO_CLASSES, VOC_CLASSES):
        if len(preset) == num_classes:
            return list(preset)
    return [f"class_{k}" for k in range(num_classes)]


def resolve_class_names(classes: ClassesSpec, num_classes: int) -> list[str]:
    """The class names for a model that predicts ``num_classes`` classes.

    Args:
        classes: ``"coco"``, ``"voc"``, a path to a names file, a list of names, or
            None (see :func:`default_class_names`).
        num_classes: C, as the model's heads say.

    Returns:
        C names.

    Raises:
        ModelFileError: the names do not number C, or the file is unusable.
    """
    if classes is None:
        return default_class_names(num_classes)
    if isinstance(classes, str) and classes.lower() in PRESETS:
        names, source = list(PRESETS[classes.lower()]), f"the {classes.lower()} preset"
    elif isinstance(classes, (str, Path)):
        names, source = read_class_names_file(classes), f"class names file {Path(classes).name}"
    else:
        names, source = [str(n).strip() for n in classes], "the class names given"
        if not all(names):
            raise ModelFileError("class names must not be empty strings")
    if len(names) != num_classes:
        raise ModelFileError(
            f"{source} has {len(names):,} names but the model predicts {num_classes} classes; "
            f"give a names file with {num_classes} lines"
            + (" (or the preset coco)" if num_classes == 80 else "")
            + (" (or the preset voc)" if num_classes == 20 else "")
        )
    return names
