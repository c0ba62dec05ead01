"""Targets: which differentiable score a CAM explains, one score per scale.

A target says, for one scale, how much each prediction of that head counts: weights
over the raw output, over objectness × class probability, over objectness and over
the decoded boxes (:class:`TargetWeights`).
Each scale's map is computed from that scale's score only. Targets are tiny,
immutable objects (pytorch-grad-cam's idea), independent of the CAM method
(xplique's separation of *which score* from *which method*).
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import tensorflow as tf

from yolocam_core.detector import Detection, Letterbox
from yolocam_core.errors import YolocamError
from yolocam_core.heads import HeadInfo, decode_head


@dataclass(frozen=True)
class ScoreContext:
    """What a target needs to know about the scale it scores.

    Attributes:
        head: the head being scored.
        input_size: (height, width) of the network input.
        letterbox: how the image maps into the network input.
        boxes: (h, w, A, 4) decoded predicted boxes of this image at this scale, as
            (cx, cy, w, h) in 0..1 of the network input.
        scores: (h, w, A, C) objectness × class probability there, or None.
    """

    head: HeadInfo
    input_size: tuple[int, int]
    letterbox: Letterbox
    boxes: np.ndarray
    scores: np.ndarray | None = None


#: A prediction matches a detected box at another scale when their IoU is at least
#: this (PASCAL VOC's criterion; above the default NMS threshold, 0.45).
MATCH_IOU = 0.5

#: Which part of a prediction a :class:`DetectionTarget` explains: ``"score"``
#: (objectness × class probability), ``"objectness"``, or one coordinate of the decoded
#: box, ``"x"``, ``"y"`` (centre) ``"w"``, ``"h"`` (size), in network-input pixels.
ATTRIBUTES = ("score", "objectness", "x", "y", "w", "h")
#: The box coordinates among :data:`ATTRIBUTES`, in the order of the decoded boxes.
BOX_ATTRIBUTES = ("x", "y", "w", "h")


def check_attribute(attribute: str) -> str:
    """``attribute`` if it is one of :data:`ATTRIBUTES`.

    Raises:
        YolocamError: anything else; the message lists the valid names.
    """
    if attribute not in ATTRIBUTES:
        raise YolocamError(
            f"attribute {attribute!r} is not one of {', '.join(ATTRIBUTES)} "
            "(score = objectness × class probability; x, y, w, h = the decoded box)"
        )
    return attribute


@dataclass(frozen=True)
class TargetWeights:
    """A score that is linear in the head's raw output and decoded predictions.

    ``score = sum(raw * raw_weights) + sum(scores * score_weights)
    + sum(objectness * objectness_weights) + sum(boxes_px * box_weights)``, where
    ``scores`` is objectness × class probability (h, w, A, C), ``objectness`` is
    (h, w, A) and ``boxes_px`` is the decoded box (h, w, A, 4) as (cx, cy, w, h) in
    network-input pixels. Every target here has this form, which lets one compiled
    function differentiate any of them, many at once.

    Attributes:
        raw: (h, w, A·(5+C)) float32, or None for zeros.
        scores: (h, w, A, C) float32, or None for zeros.
        objectness: (h, w, A) float32, or None for zeros.
        boxes: (h, w, A, 4) float32, or None for zeros.
    """

    raw: np.ndarray | None = None
    scores: np.ndarray | None = None
    objectness: np.ndarray | None = None
    boxes: np.ndarray | None = None

    def support(self) -> np.ndarray:
        """(h, w) bool: the cells with any non-zero weight ((N, h, w) for weights
        stacked over N targets, as :meth:`Explainer._stack_weights` makes them)."""
        parts = []
        if self.raw is not None:
            parts.append(np.any(self.raw != 0, axis=-1))
        if self.scores is not None:
            parts.append(np.any(self.scores != 0, axis=(-2, -1)))
        if self.objectness is not None:
            parts.append(np.any(self.objectness != 0, axis=-1))
        if self.boxes is not None:
            parts.append(np.any(self.boxes != 0, axis=(-2, -1)))
        if not parts:
            raise ValueError("TargetWeights has no weights")
        return np.logical_or.reduce(parts)


def weighted_score(
    raw: tf.Tensor,
    head: HeadInfo,
    input_size: tuple[int, int],
    raw_w: tf.Tensor,
    score_w: tf.Tensor,
    obj_w: tf.Tensor | None = None,
    box_w: tf.Tensor | None = None,
    cell_offset: tf.Tensor | None = None,
) -> tf.Tensor:
    """Differentiable target score (see :class:`TargetWeights`).

    Args:
        raw: (B, h, w, A·(5+C)) raw head output (the whole grid, or a crop of it).
        head: its metadata.
        input_size: (height, width) of the network input.
        raw_w: (B, h, w, A·(5+C)) weights on the raw output.
        score_w: (B, h, w, A, C) weights on objectness × class probability.
        obj_w: (B, h, w, A) weights on objectness, or None.
        box_w: (B, h, w, A, 4) weights on the box (cx, cy, w, h) in input pixels, or None.
        cell_offset: (B, 2) float (row, col) of each crop's first cell on the head's
            grid, so that box centres of a crop are where they are on the grid; None
            for whole grids.

    Returns:
        (B,) scores.
    """
    grid_h, grid_w = head.grid
    decoded = decode_head(raw, head, input_size)
    total = tf.reduce_sum(raw * raw_w, axis=[1, 2, 3]) + tf.reduce_sum(
        decoded["scores"] * score_w, axis=[1, 2, 3, 4]
    )
    if obj_w is not None:
        total += tf.reduce_sum(decoded["objectness"] * obj_w, axis=[1, 2, 3])
    if box_w is not None:
        in_h, in_w = input_size
        scale = tf.constant([in_w, in_h, in_w, in_h], raw.dtype)
        boxes = decoded["boxes"] * scale
        if cell_offset is not None:
            # cx, cy of a crop's cell j are (... + j) / grid; on the grid (... + j + off)
            shift = tf.stack(
                [
                    cell_offset[:, 1] * (in_w / grid_w),
                    cell_offset[:, 0] * (in_h / grid_h),
                    tf.zeros_like(cell_offset[:, 0]),
                    tf.zeros_like(cell_offset[:, 0]),
                ],
                axis=1,
            )
            boxes += tf.cast(shift, raw.dtype)[:, None, None, None, :]
        total += tf.reduce_sum(boxes * box_w, axis=[1, 2, 3, 4])
    return total


class Target:
    """Base class: what to explain, as weights over one scale's predictions."""

    #: short machine name: "detection", "class" or "seed"
    kind: str = ""
    #: box to draw on overlays, (x1, y1, x2, y2) in image pixels, or None
    box_xyxy: tuple[float, float, float, float] | None = None
    #: which part of the predictions is explained (see :data:`ATTRIBUTES`)
    attribute: str = "score"

    @property
    def comparable(self) -> bool:
        """Whether the per-scale scores measure strength (a probability or a sum of
        them), so that scales can be compared by them: not for the whole raw output
        and not for a box coordinate."""
        return self.kind != "seed" and self.attribute in ("score", "objectness")

    def weights(self, ctx: ScoreContext) -> TargetWeights:
        """The score at the scale ``ctx.head`` (see :class:`TargetWeights`)."""
        raise NotImplementedError

    def label(self, class_names) -> str:
        """A caption, e.g. ``"person 0.99"``."""
        raise NotImplementedError

    def score_note(self) -> str:
        """One sentence saying what this target's per-scale "score" is."""
        raise NotImplementedError


@dataclass(frozen=True)
class SeedTarget(Target):
    """The article's choice: the sum of the whole raw output of the scale's head.

    ``tape.gradient(predictions, conv_outputs)`` on a non-scalar ``predictions``
    differentiates its sum, so this is the article's score exactly. It mixes box
    offsets, objectness and every class: it explains "whatever the head does".
    """

    kind = "seed"

    def weights(self, ctx: ScoreContext) -> TargetWeights:
        h, w = ctx.head.grid
        return TargetWeights(
            raw=np.ones((h, w, ctx.head.num_anchors * (5 + ctx.head.num_classes)), np.float32)
        )

    def label(self, class_names) -> str:
        return "whole head output (article)"

    def score_note(self) -> str:
        return (
            "score: the sum of every raw value of the head (box offsets, objectness and "
            "class logits of every cell and anchor), as the article; it has no sign and no "
            "unit, so scales are not compared by it"
        )


def class_index(name: str, class_names: Sequence[str]) -> int | None:
    """The index of the class called ``name`` (any case) in ``class_names``, or None."""
    lowered = [n.lower() for n in class_names]
    name = name.strip().lower()
    return lowered.index(name) if name in lowered else None


def some_class_names(class_names: Sequence[str], asked: str | None = None) -> str:
    """``"the model's classes are person, bicycle, …"`` (the first ten), for a message;
    with ``asked`` (a name not found), the closest names first (``"did you mean
    pottedplant? The model's classes are …"``), compared without case, spaces,
    hyphens or underscores."""
    listed = ", ".join(class_names[:10]) + (", …" if len(class_names) > 10 else "")

    def key(name: str) -> str:
        return re.sub(r"[\s_-]+", "", name.lower())

    by_key = {key(name): name for name in class_names}
    asked_key = key(asked or "")
    close = [asked_key] if asked_key in by_key else []  # only spelt differently
    close = close or difflib.get_close_matches(asked_key, list(by_key), n=3, cutoff=0.6)
    if asked and close:
        guess = " or ".join(by_key[c] for c in close)
        return f"did you mean {guess}? The model's classes are {listed}"
    return f"the model's classes are {listed}"


def _class_weights(ctx: ScoreContext, class_id: int, where: np.ndarray) -> TargetWeights:
    head = ctx.head
    if not 0 <= class_id < head.num_classes:
        raise ValueError(
            f"class_id {class_id} is out of range for a model with {head.num_classes} classes"
        )
    weights = np.zeros((*head.grid, head.num_anchors, head.num_classes), np.float32)
    weights[..., class_id] = where
    return TargetWeights(scores=weights)


@dataclass(frozen=True)
class ClassTarget(Target):
    """One class anywhere in the image: the sum over all cells and anchors of the
    scale of objectness × class probability.

    Why a sum: every prediction that votes for the class contributes in proportion to
    its confidence, so all instances of the class are explained, while cells that do
    not see the class contribute (and back-propagate) almost nothing because their
    sigmoid scores and gradients are near zero. A max would explain a single instance;
    a mean differs from the sum by a constant that normalisation removes.

    Args:
        class_id: index into the detector's class names (the explainer also takes a
            class name, e.g. ``ClassTarget("person")``, and uses its index).
    """

    class_id: int
    kind = "class"

    def weights(self, ctx: ScoreContext) -> TargetWeights:
        return _class_weights(ctx, self.class_id, np.ones((*ctx.head.grid, ctx.head.num_anchors)))

    def label(self, class_names) -> str:
        return f"class {class_names[self.class_id]}"

    def score_note(self) -> str:
        return (
            "score: objectness × class probability of this class, summed over every cell "
            "and anchor of the scale (about the number of confident instances it sees)"
        )


@dataclass(frozen=True)
class DetectionTarget(Target):
    """One detected box, and which part of its prediction to explain.

    At the detection's own scale the score is exactly that prediction's attribute (its
    cell and anchor): objectness × class probability (``"score"``, the detection's
    score), objectness alone, or one coordinate of its decoded box (``"x"``, ``"y"``
    centre, ``"w"``, ``"h"`` size, in network-input pixels). At the other scales, so
    that scales are compared on the same object and in the same unit, it is the one
    prediction there that best matches the box: among the anchors of the cells whose
    centres lie inside the box (or, for a box smaller than a cell, the cell that holds
    the box centre), those that match it (IoU ≥ :data:`MATCH_IOU`, PASCAL VOC's
    criterion), and among them the one with the highest IoU × score for the
    detection's class; when none matches, the one that overlaps the box most (so a
    confident prediction of a neighbouring object never stands in for this box). Its
    score and objectness count times that IoU (a constant: no gradient flows through
    it); its coordinates count as they are. The own scale's score is usually the top
    one: with NMS at an IoU threshold under :data:`MATCH_IOU` (the default 0.45), a
    matching prediction that scored higher would normally have suppressed the
    detection (not when a third box suppressed it first, nor when the best overlap
    elsewhere is under 0.5 and scores higher). A sum over the box's cells, used
    before, gave a large object's other scales more than its own (1.36 against 0.965
    for a cow).

    Args:
        detection: from :meth:`Detector.detect`.
        attribute: one of :data:`ATTRIBUTES`; ``"score"`` by default.

    Raises:
        YolocamError: an unknown attribute.
    """

    detection: Detection
    attribute: str = "score"
    kind = "detection"

    def __post_init__(self) -> None:
        check_attribute(self.attribute)

    @property
    def box_xyxy(self) -> tuple[float, float, float, float]:  # type: ignore[override]
        return self.detection.box_xyxy

    def weights(self, ctx: ScoreContext) -> TargetWeights:
        det = self.detection
        where = np.zeros((*ctx.head.grid, ctx.head.num_anchors), np.float32)
        if ctx.head.index == det.scale:
            where[det.cell[0], det.cell[1], det.anchor] = 1.0
        else:
            (row, col, anchor), iou = self._best_match(ctx)
            where[row, col, anchor] = 1.0 if self.attribute in BOX_ATTRIBUTES else iou
        if self.attribute == "score":
            return _class_weights(ctx, det.class_id, where)
        if self.attribute == "objectness":
            return TargetWeights(objectness=where.astype(np.float32))
        boxes = np.zeros((*where.shape, 4), np.float32)
        boxes[..., BOX_ATTRIBUTES.index(self.attribute)] = where
        return TargetWeights(boxes=boxes)

    def best_match(self, ctx: ScoreContext) -> tuple[int, int, int]:
        """(row, col, anchor) of the prediction at ``ctx``'s scale that best matches the
        box, always at a cell inside it: among the predictions there with IoU ≥
        :data:`MATCH_IOU`, the highest IoU × score for its class (by IoU alone when
        ``ctx.scores`` is None); when none matches, the highest IoU; when none overlaps
        the box at all, the highest class score inside it."""
        return self._best_match(ctx)[0]

    def _best_match(self, ctx: ScoreContext) -> tuple[tuple[int, int, int], float]:
        """:meth:`best_match` and that prediction's IoU with the box."""
        inside, iou = self._inside_and_iou(ctx)
        iou = np.where(inside[:, :, None], iou, 0.0)
        scores = None if ctx.scores is None else ctx.scores[..., self.detection.class_id]
        matching = iou >= MATCH_IOU
        if matching.any():
            match = iou if scores is None else iou * scores
            match = np.where(matching, match, -1.0)
        elif iou.max() > 0:
            match = iou
        else:  # no prediction overlaps the box: one inside it, which counts 0
            rank = np.zeros_like(iou) if scores is None else scores
            match = np.where(inside[:, :, None], rank, -1.0)
        row, col, anchor = np.unravel_index(int(np.argmax(match)), match.shape)
        return (int(row), int(col), int(anchor)), float(iou[row, col, anchor])

    def cell_weights(self, ctx: ScoreContext) -> np.ndarray:
        """(h, w, A) weights: IoU with the box at cells inside it, 0 elsewhere."""
        inside, iou = self._inside_and_iou(ctx)
        return (iou * inside[:, :, None]).astype(np.float32)

    def _inside_and_iou(self, ctx: ScoreContext) -> tuple[np.ndarray, np.ndarray]:
        """(h, w) bool, the cells whose centres lie inside the box (and the cell that
        holds its centre); (h, w, A) the IoU of each prediction's box with it."""
        in_h, in_w = ctx.input_size
        grid_h, grid_w = ctx.head.grid
        x1, y1, x2, y2 = ctx.letterbox.to_network(np.array([self.detection.box_xyxy]))[0]
        x1, x2 = x1 / in_w, x2 / in_w
        y1, y2 = y1 / in_h, y2 / in_h
        cx = (np.arange(grid_w) + 0.5) / grid_w
        cy = (np.arange(grid_h) + 0.5) / grid_h
        inside = ((cy >= y1) & (cy <= y2))[:, None] & ((cx >= x1) & (cx <= x2))[None, :]
        centre_row = int(np.clip((y1 + y2) / 2 * grid_h, 0, grid_h - 1))
        centre_col = int(np.clip((x1 + x2) / 2 * grid_w, 0, grid_w - 1))
        inside[centre_row, centre_col] = True
        pred = ctx.boxes  # (h, w, A, 4) cx, cy, w, h
        px1, px2 = pred[..., 0] - pred[..., 2] / 2, pred[..., 0] + pred[..., 2] / 2
        py1, py2 = pred[..., 1] - pred[..., 3] / 2, pred[..., 1] + pred[..., 3] / 2
        iw = np.clip(np.minimum(px2, x2) - np.maximum(px1, x1), 0, None)
        ih = np.clip(np.minimum(py2, y2) - np.maximum(py1, y1), 0, None)
        inter = iw * ih
        union = pred[..., 2] * pred[..., 3] + (x2 - x1) * (y2 - y1) - inter
        return inside, inter / np.maximum(union, 1e-12)

    def label(self, class_names) -> str:
        det = self.detection
        base = f"{det.class_name} {det.score:.2f}"
        return base if self.attribute == "score" else f"{base} · {ATTRIBUTE_TITLES[self.attribute]}"

    def score_note(self) -> str:
        what = ATTRIBUTE_NOTES[self.attribute]
        return (
            f"score: at the detection's own scale, its {what}; at the other scales, the "
            "same for the one prediction there that best matches the box (among the cells "
            "inside it, the highest IoU × class score of those with IoU ≥ 0.5, else the "
            "highest IoU)"
            + ("" if self.attribute in BOX_ATTRIBUTES else ", times its IoU with the box")
        )


#: Short captions of the attributes, for labels and menus.
ATTRIBUTE_TITLES = {
    "score": "class score",
    "objectness": "objectness",
    "x": "box centre x",
    "y": "box centre y",
    "w": "box width",
    "h": "box height",
}
#: What each attribute's value is, for :meth:`Target.score_note`.
ATTRIBUTE_NOTES = {
    "score": "objectness × class probability (0–1, the detection's score)",
    "objectness": "objectness (0–1: is there an object, whatever its class)",
    "x": "box centre x in network-input pixels (a coordinate, not a strength)",
    "y": "box centre y in network-input pixels (a coordinate, not a strength)",
    "w": "box width in network-input pixels (a size, not a strength)",
    "h": "box height in network-input pixels (a size, not a strength)",
}


#: Target kinds a :class:`TargetSpec` names.
TARGET_KINDS = ("detection", "class", "seed")


@dataclass(frozen=True)
class TargetSpec:
    """A hashable description of a target, independent of one image's detections.

    ``detection:K`` (the K-th detection, score order), ``class:NAME`` (or ``class:ID``)
    and ``seed`` (the article's whole head output) on the command line; the app and
    batch runs keep specs, and :meth:`build` makes the :class:`Target` once the
    detections are known.

    Attributes:
        kind: ``"detection"``, ``"class"`` or ``"seed"``.
        index: the detection's index or the class id; -1 for ``seed``.
        attribute: which part of the prediction is explained (see
            :data:`ATTRIBUTES`); ``"score"`` (objectness × class probability) is the
            default and the only one for class and seed targets.

    Raises:
        YolocamError: an unknown attribute, or one other than ``"score"`` for a class
            or seed target.

    Example:
        >>> spec = TargetSpec.parse("class:dog", detector.class_names)
        >>> target = spec.build(detections)
    """

    kind: str
    index: int = -1
    attribute: str = "score"

    def __post_init__(self) -> None:
        if self.kind not in TARGET_KINDS:
            raise ValueError(f"kind must be one of {', '.join(TARGET_KINDS)}; got {self.kind!r}")
        check_attribute(self.attribute)
        if self.kind != "detection" and self.attribute != "score":
            explains = {
                "class": "its class's score summed over the image",
                "seed": "the whole head output (the article's seed), not one score",
            }[self.kind]
            raise YolocamError(
                f"attribute {self.attribute!r} needs a detection target (detection:K); a "
                f"{self.kind} target explains {explains}; use the attribute score"
            )

    @classmethod
    def parse(cls, text: str, class_names: Sequence[str], attribute: str = "score") -> TargetSpec:
        """``detection:K`` | ``class:NAME`` | ``class:ID`` | ``seed`` -> a spec.

        Raises:
            YolocamError: anything else, or an unknown class; the message says what to use.
        """
        kind, _, value = str(text).strip().partition(":")
        value = value.strip()
        if kind == "seed" and not value:
            return cls("seed", -1, attribute)
        if kind == "detection":
            if not value.isdigit():
                raise YolocamError(
                    f"target {text!r}: K in detection:K must be a whole number from 0 (the "
                    "best detection) up, e.g. detection:0"
                )
            return cls("detection", int(value), attribute)
        if kind == "class" and value:
            index = class_index(value, class_names)
            if index is not None:
                return cls("class", index, attribute)
            if value.isdigit() and int(value) < len(class_names):
                return cls("class", int(value), attribute)
            raise YolocamError(
                f"target {text!r}: unknown class; {some_class_names(class_names, value)}"
            )
        raise YolocamError(f"target {text!r}: use detection:K, class:NAME or seed")

    def build(self, detections: Sequence[Detection]) -> Target:
        """The :class:`Target` for an image with these detections.

        Raises:
            YolocamError: a detection index beyond the image's detections.
        """
        if self.kind == "detection":
            if not 0 <= self.index < len(detections):
                kept = f"{len(detections)} detection(s) at this score threshold"
                if getattr(detections, "capped", False):  # more were found, then cut
                    kept = (
                        f"more detections at this score threshold, of which the "
                        f"{len(detections)} best are kept (the max-detections cap)"
                    )
                raise YolocamError(
                    f"target detection:{self.index}: the image has {kept}; K must be "
                    "below that (see `yolocam detect`)"
                )
            return DetectionTarget(detections[self.index], self.attribute)
        if self.kind == "class":
            return ClassTarget(self.index)
        return SeedTarget()

    def __str__(self) -> str:
        text = "seed" if self.kind == "seed" else f"{self.kind}:{self.index}"
        return text if self.attribute == "score" else f"{text} ({self.attribute})"
