"""Which prediction stands for a detected box at another scale, on hand-made grids."""

from __future__ import annotations

import numpy as np
import pytest

from yolocam_core.detector import Detection, Letterbox
from yolocam_core.heads import HeadInfo
from yolocam_core.targets import MATCH_IOU, DetectionTarget, ScoreContext

SIZE = 64  # network input; a 4×4 grid at stride 16, two anchors, one class
HEAD = HeadInfo(1, "out", (4, 4), 16, ((16, 16), (32, 32)), 1, 1.0, "feat")
OWN = Detection((16.0, 16.0, 48.0, 48.0), 0, "thing", 0.2, 0.2, 0, (0, 0), 0)
IDENTITY = Letterbox((SIZE, SIZE), 1.0, 1.0, 0.0, 0.0, (SIZE, SIZE))


def context(preds: dict, scores: dict) -> ScoreContext:
    """Predicted boxes (cx, cy, w, h in 0..1) far from everything, but at ``preds``."""
    boxes = np.tile(np.array([0.05, 0.05, 0.01, 0.01], np.float32), (4, 4, 2, 1))
    probs = np.zeros((4, 4, 2, 1), np.float32)
    for where, box in preds.items():
        boxes[where] = np.array(box, np.float32) / SIZE
        probs[where] = scores.get(where, 0.0)
    return ScoreContext(HEAD, (SIZE, SIZE), IDENTITY, boxes, probs)


def iou(a, b) -> float:
    (ax, ay, aw, ah), (bx, by, bw, bh) = a, b
    iw = max(0.0, min(ax + aw / 2, bx + bw / 2) - max(ax - aw / 2, bx - bw / 2))
    ih = max(0.0, min(ay + ah / 2, by + bh / 2) - max(ay - ah / 2, by - bh / 2))
    return iw * ih / (aw * ah + bw * bh - iw * ih)


def test_a_confident_neighbour_never_stands_in_for_the_box():
    """The box (16..48)² has its own match (IoU 0.77, score 0.2) and, at a cell inside
    it too, a neighbour's prediction (IoU 0.33, score 0.95): IoU × score would pick the
    neighbour (0.31 > 0.15); the matching one is chosen and counts 0.77 × 0.2."""
    own_box, neighbour = (32, 32, 28, 28), (44, 44, 32, 32)
    assert iou(own_box, (32, 32, 32, 32)) >= MATCH_IOU > iou(neighbour, (32, 32, 32, 32))
    ctx = context({(1, 1, 0): own_box, (2, 2, 1): neighbour}, {(1, 1, 0): 0.2, (2, 2, 1): 0.95})
    target = DetectionTarget(OWN)
    assert target.best_match(ctx) == (1, 1, 0)
    weights = target.weights(ctx)
    assert np.count_nonzero(weights.scores) == 1
    expected = iou(own_box, (32, 32, 32, 32)) * 0.2
    assert float((weights.scores * ctx.scores).sum()) == pytest.approx(expected, rel=1e-5)


def test_without_a_match_the_most_overlapping_prediction_counts():
    """No prediction reaches IoU 0.5: the one overlapping most (0.39, score 0.1) is
    chosen over a higher-scoring one overlapping less (0.14, score 0.9)."""
    most, less = (40, 40, 32, 32), (46, 46, 30, 30)
    box = (32, 32, 32, 32)
    assert MATCH_IOU > iou(most, box) > iou(less, box) > 0
    ctx = context({(1, 2, 0): most, (2, 2, 0): less}, {(1, 2, 0): 0.1, (2, 2, 0): 0.9})
    assert DetectionTarget(OWN).best_match(ctx) == (1, 2, 0)


def test_with_no_overlap_the_match_is_inside_the_box_and_counts_zero():
    """Every prediction is far from the box (all IoU 0): the choice is a cell inside the
    box (not the top-left cell), and its score and objectness count 0; a coordinate
    explains a prediction of a cell inside the box."""
    ctx = context({}, {})
    ctx.scores[2, 1, 1] = 0.3  # the highest class score inside the box
    ctx.scores[0, 0, 0] = 0.9  # outside it: never chosen
    row, col, anchor = DetectionTarget(OWN).best_match(ctx)
    assert (row, col, anchor) == (2, 1, 1)
    assert float(DetectionTarget(OWN).weights(ctx).scores.sum()) == 0.0
    boxes = DetectionTarget(OWN, attribute="x").weights(ctx).boxes
    assert boxes[2, 1, 1, 0] == 1.0 and np.count_nonzero(boxes) == 1
