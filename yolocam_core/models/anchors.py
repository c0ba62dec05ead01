"""Anchors and anchor masks for models that do not carry them (Keras models).

Darknet cfgs name their anchors in each ``[yolo]`` section; Keras models saved by
keras-yolo3 and keras-YOLOv3-model-set do not: those projects read them from a text
file (``yolo_anchors.txt``: ``10,13, 16,30, 33,23, …``). The defaults here are theirs:

- three heads: YOLOv3's nine COCO anchors, masks ``[[6,7,8], [3,4,5], [0,1,2]]``
  (the coarsest grid gets the largest anchors);
- two heads (tiny): ``10,14, 23,27, 37,58, 81,82, 135,169, 344,319`` with masks
  ``[[3,4,5], [0,1,2]]`` as in keras-YOLOv3-model-set; keras-yolo3 uses
  ``[[3,4,5], [1,2,3]]`` for the same anchors (pass ``anchor_masks="keras-yolo3"``).
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from yolocam_core.errors import ModelFileError

Anchors = tuple[tuple[float, float], ...]
Masks = tuple[tuple[int, ...], ...]

YOLOV3_ANCHORS: Anchors = (
    (10, 13), (16, 30), (33, 23), (30, 61), (62, 45), (59, 119), (116, 90), (156, 198),
    (373, 326),
)  # fmt: skip
YOLOV3_MASKS: Masks = ((6, 7, 8), (3, 4, 5), (0, 1, 2))
TINY_ANCHORS: Anchors = ((10, 14), (23, 27), (37, 58), (81, 82), (135, 169), (344, 319))
TINY_MASKS: Masks = ((3, 4, 5), (0, 1, 2))
MASK_PRESETS: dict[str, Masks] = {
    "yolov3": YOLOV3_MASKS,
    "model-set-tiny": TINY_MASKS,
    "keras-yolo3": ((3, 4, 5), (1, 2, 3)),
}
"""Named masks: ``yolov3`` (three heads), ``model-set-tiny`` (keras-YOLOv3-model-set's
tiny models) and ``keras-yolo3`` (keras-yolo3's tiny model)."""

AnchorsSpec = str | Sequence[float] | Sequence[Sequence[float]] | None
MasksSpec = str | Sequence[Sequence[int]] | None


def parse_anchors(value: AnchorsSpec) -> Anchors | None:
    """Anchors as (width, height) pairs in input pixels.

    Args:
        value: ``"10,13, 16,30, 33,23"`` (commas and/or spaces; the format of
            ``yolo_anchors.txt``), a flat list ``[10, 13, 16, 30]``, a list of pairs,
            or None.

    Returns:
        The pairs, or None for None / an empty string.

    Raises:
        ModelFileError: not numbers, an odd count, or a value that is not positive.
    """
    if value is None:
        return None
    if isinstance(value, str):
        parts = [p for p in re.split(r"[\s,;]+", value.strip()) if p]
        if not parts:
            return None
        try:
            flat = [float(p) for p in parts]
        except ValueError:
            bad = next(p for p in parts if not _is_number(p))
            raise ModelFileError(
                f"anchors: {bad!r} is not a number; write width,height pairs in input "
                "pixels, e.g. '10,13, 16,30, 33,23'"
            ) from None
    else:
        items = list(value)
        try:
            if items and isinstance(items[0], (list, tuple)):
                flat = [float(v) for pair in items for v in pair]
                if any(len(pair) != 2 for pair in items):
                    raise ModelFileError("anchors: each pair must be (width, height)")
            else:
                flat = [float(v) for v in items]
        except (TypeError, ValueError):
            raise ModelFileError(f"anchors: {value!r} are not numbers") from None
    if len(flat) % 2:
        raise ModelFileError(
            f"anchors: got {len(flat)} numbers, which is not a whole number of width,height pairs"
        )
    if any(not v > 0 for v in flat):
        raise ModelFileError(f"anchors must be positive sizes in pixels; got {flat}")
    return tuple((flat[k], flat[k + 1]) for k in range(0, len(flat), 2))


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def parse_masks(value: MasksSpec) -> Masks | None:
    """Anchor masks, coarsest head first.

    Args:
        value: a preset name (see :data:`MASK_PRESETS`), ``"6,7,8; 3,4,5; 0,1,2"``
            (heads separated by ``;``), a list of lists, or None.
    """
    if value is None:
        return None
    if isinstance(value, str):
        text = value.strip()
        if not text:
            return None
        if text.lower() in MASK_PRESETS:
            return MASK_PRESETS[text.lower()]
        groups = [g for g in text.split(";") if g.strip()]
        try:
            return tuple(tuple(int(v) for v in re.split(r"[\s,]+", g.strip())) for g in groups)
        except ValueError:
            raise ModelFileError(
                f"anchor masks {value!r}: write one group of anchor indices per head, "
                f"coarsest first, separated by ';' (e.g. '6,7,8; 3,4,5; 0,1,2'), or a "
                f"preset: {', '.join(MASK_PRESETS)}"
            ) from None
    try:
        return tuple(tuple(int(v) for v in group) for group in value)
    except (TypeError, ValueError):
        raise ModelFileError(f"anchor masks {value!r} must be lists of integers") from None


def anchors_for_heads(
    num_heads: int, anchors: AnchorsSpec = None, masks: MasksSpec = None
) -> tuple[Anchors, ...]:
    """Each head's anchors, coarsest head first.

    Args:
        num_heads: how many heads the model has.
        anchors: all anchors (see :func:`parse_anchors`); None = the projects'
            defaults for 3 or 2 heads.
        masks: which anchors each head uses (see :func:`parse_masks`); None = split
            the anchors evenly, the largest to the coarsest head.

    Raises:
        ModelFileError: no default for this many heads, masks that do not match the
            heads or point at missing anchors.
    """
    pairs = parse_anchors(anchors)
    groups = parse_masks(masks)
    if pairs is None:
        if num_heads == 3:
            pairs = YOLOV3_ANCHORS
        elif num_heads == 2:
            pairs = TINY_ANCHORS
        else:
            raise ModelFileError(
                f"the model has {num_heads} head{'s' if num_heads != 1 else ''} and there "
                "are default anchors only for "
                "3 heads (YOLOv3) and 2 heads (tiny); give its anchors (--anchors)"
            )
    if groups is None:
        if len(pairs) % num_heads:
            raise ModelFileError(
                f"{len(pairs)} anchors do not split evenly over {num_heads} heads; give the "
                "anchor masks too (--anchor-masks '6,7,8; 3,4,5; 0,1,2')"
            )
        per = len(pairs) // num_heads
        groups = tuple(
            tuple(range((num_heads - 1 - k) * per, (num_heads - k) * per)) for k in range(num_heads)
        )
    if len(groups) != num_heads:
        raise ModelFileError(
            f"anchor masks have {len(groups)} groups but the model has {num_heads} "
            f"head{'s' if num_heads != 1 else ''}"
        )
    for group in groups:
        if not group or any(not 0 <= m < len(pairs) for m in group):
            raise ModelFileError(
                f"anchor mask {list(group)} refers to anchors that do not exist "
                f"(there are {len(pairs)}: indices 0..{len(pairs) - 1})"
            )
    return tuple(tuple(pairs[m] for m in group) for group in groups)
