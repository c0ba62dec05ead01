"""Metrics of explanation quality: pointing game, instance hit, energy in box,
deletion / insertion, the random-map baseline, agreement with D-RISE, the map's
support, and the model-randomisation sanity check (last two layers or Adebayo's
cascade).

Maps are (H, W) heatmaps at image resolution (``ScaleMap.heatmap``), boxes are
(x1, y1, x2, y2) in image pixels; pixel (row, col) covers [col, col+1) × [row, row+1)
and is *inside* a box when its centre (col + 0.5, row + 0.5) is.

Deletion and insertion perturb the **image** (as RISE and D-RISE do), at image
resolution, in the order of the image-resolution heatmap; each perturbed image then
goes through :meth:`Detector.preprocess` and the compiled :meth:`Detector.predict`,
in batches. The detection's score after each step is that of its best-matching
prediction (:func:`match_scores`).

Example:
    >>> curves = deletion_insertion(detector, image, explanation.maps[0].heatmap, [det])
    >>> curves.deletion_auc[0], curves.insertion_auc[0]
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import cv2
import numpy as np

from yolocam_core.errors import YolocamError

if TYPE_CHECKING:  # keep ``import yolocam_core.metrics`` light for the pure metrics
    from yolocam_core.cams import CamMethod
    from yolocam_core.detector import Detection, Detector
    from yolocam_core.explainer import Explainer

#: How removed pixels are filled (see :class:`PerturbationCurves`).
FILLS = ("grey", "blur")
#: The grey of removed pixels: the middle of the 8-bit range, which is also the
#: letterbox padding the network sees outside letterboxed images.
GREY = 128
#: Deletion/insertion steps (equal pixel fractions). Measured on bus.jpg (Grad-CAM,
#: yolov4-tiny): the AUCs at 16 steps are within 0.005 of those at 64 steps, for a
#: quarter of the forward passes (2·(S−1) per map).
DEFAULT_STEPS = 16
#: Blur of the "blur" fill, as a fraction of the image's longer side: RISE blurs its
#: 224-pixel images with σ = 5 pixels.
BLUR_SIGMA = 5.0 / 224.0


# -- pointing game and energy ------------------------------------------------------------


def _check_map(heatmap: np.ndarray) -> np.ndarray:
    heatmap = np.asarray(heatmap)
    if heatmap.ndim != 2 or heatmap.size == 0:
        raise ValueError(f"expected an (H, W) heatmap, got shape {heatmap.shape}")
    if not np.all(np.isfinite(heatmap)):
        raise ValueError("the heatmap has NaN or infinite values")
    return heatmap


def box_mask(shape: tuple[int, int], box_xyxy: Sequence[float]) -> np.ndarray:
    """(H, W) bool: the pixels whose centres lie inside the box (edges included).

    Args:
        shape: (H, W) of the image.
        box_xyxy: (x1, y1, x2, y2) in image pixels.
    """
    x1, y1, x2, y2 = (float(v) for v in box_xyxy)
    rows = np.arange(shape[0]) + 0.5
    cols = np.arange(shape[1]) + 0.5
    return ((rows >= y1) & (rows <= y2))[:, None] & ((cols >= x1) & (cols <= x2))[None, :]


def pointing_game(heatmap: np.ndarray, box_xyxy: Sequence[float], tolerance: float = 0.0) -> bool:
    """Pointing game: is the map's peak inside the box?

    Zhang et al. count a *hit* when the maximum point of the map lies on the object
    (within a tolerance), a *miss* otherwise; the accuracy is hits / (hits + misses)
    over all (image, object) pairs. Here: one map and one box.

    Args:
        heatmap: (H, W) map at image resolution.
        box_xyxy: (x1, y1, x2, y2) in image pixels.
        tolerance: a peak within this many pixels of the box still hits. The paper
            uses 15 pixels; we default to 0 (the peak strictly inside the box).

    Returns:
        True for a hit. The peak is the first maximum in row-major order; a constant
        map has no peak and never hits.

    Reference:
        Zhang et al. 2016, "Top-down Neural Attention by Excitation Backprop",
        https://arxiv.org/abs/1608.00507
    """
    heatmap = _check_map(heatmap)
    if float(heatmap.max()) == float(heatmap.min()):
        return False
    row, col = np.unravel_index(int(np.argmax(heatmap)), heatmap.shape)
    x, y = col + 0.5, row + 0.5
    x1, y1, x2, y2 = (float(v) for v in box_xyxy)
    dx = max(x1 - x, 0.0, x - x2)
    dy = max(y1 - y, 0.0, y - y2)
    return bool(np.hypot(dx, dy) <= tolerance)


def instance_hit(
    heatmap: np.ndarray,
    box_xyxy: Sequence[float],
    other_boxes: Sequence[Sequence[float]] = (),
) -> bool:
    """Instance pointing game: is the map's peak inside the detection's own box and
    outside every other detected box of the same class?

    A class-discriminative map (Grad-CAM) often peaks on the most confident instance
    of the class, whichever box was asked about: it then hits the pointing game of
    that other box but not this test.

    Args:
        heatmap: (H, W) map at image resolution.
        box_xyxy: (x1, y1, x2, y2) of the explained detection, image pixels.
        other_boxes: the boxes of the image's other detections of the same class.

    Returns:
        True when the peak (first maximum, row-major; pixel centre) is inside
        ``box_xyxy`` and inside none of ``other_boxes``; a constant map never hits.
    """
    heatmap = _check_map(heatmap)
    if not pointing_game(heatmap, box_xyxy):
        return False
    row, col = np.unravel_index(int(np.argmax(heatmap)), heatmap.shape)
    x, y = col + 0.5, row + 0.5
    for box in other_boxes:
        x1, y1, x2, y2 = (float(v) for v in box)
        if x1 <= x <= x2 and y1 <= y <= y2:
            return False
    return True


def same_class_others(detections: Sequence[Detection], index: int) -> list:
    """The boxes of the detections of ``detections[index]``'s class, but itself."""
    det = detections[index]
    return [
        d.box_xyxy for k, d in enumerate(detections) if k != index and d.class_id == det.class_id
    ]


def support_fraction(grid_map: np.ndarray) -> float:
    """The share of a raw map's cells that are above zero (its support).

    A map whose support is fixed by the architecture (one cell, a cell's
    neighbourhood) is small here whatever the image.
    """
    grid_map = _check_map(grid_map)
    return float((grid_map > 0).mean())


def agreement(grid_map: np.ndarray, reference: np.ndarray) -> float:
    """Spearman ρ of a map with a reference map of the same detection (D-RISE's).

    Both maps cover the network input. The reference (D-RISE: stride 4, e.g. 104×104)
    is brought to the map's grid by area averaging (the mean of the reference over
    each cell), and ranks are compared there, on the map's own resolution (ties get
    their average rank, as in :func:`rank_correlation`).

    Args:
        grid_map: (h, w) raw map (``ScaleMap.grid_map``).
        reference: (H, W) raw reference map on the same network input, H >= h.

    Returns:
        ρ in [−1, 1]; NaN when either map is constant.
    """
    grid_map = _check_map(grid_map)
    reference = _check_map(reference).astype(np.float32)
    if reference.shape != grid_map.shape:
        reference = cv2.resize(
            reference, (grid_map.shape[1], grid_map.shape[0]), interpolation=cv2.INTER_AREA
        )
    return rank_correlation(grid_map, reference)


def energy_pointing_game(heatmap: np.ndarray, box_xyxy: Sequence[float]) -> float:
    """Energy-based pointing game: the share of the map's mass inside the box.

    ``sum(L inside box) / (sum(L inside box) + sum(L outside box))`` for a
    non-negative map ``L`` (Score-CAM's definition). 1 means all the mass is on the
    object; a uniform map scores the box's share of the image.

    Args:
        heatmap: (H, W) non-negative map at image resolution (e.g. a min–max
            normalised ``ScaleMap.heatmap``).
        box_xyxy: (x1, y1, x2, y2) in image pixels.

    Returns:
        The share in [0, 1]; 0.0 for an all-zero map.

    Raises:
        ValueError: the map has negative values (the share is undefined).

    Reference:
        Wang et al. 2020, "Score-CAM: Score-Weighted Visual Explanations for
        Convolutional Neural Networks", https://arxiv.org/abs/1910.01279
    """
    heatmap = _check_map(heatmap).astype(np.float64)
    if float(heatmap.min()) < 0:
        raise ValueError(
            "energy_pointing_game needs a non-negative map; min–max normalise it first"
        )
    total = float(heatmap.sum())
    if total == 0.0:
        return 0.0
    return float(heatmap[box_mask(heatmap.shape, box_xyxy)].sum() / total)


# -- the detection's score after a perturbation ---------------------------------------


def _xyxy(cxcywh: np.ndarray) -> np.ndarray:
    half = cxcywh[..., 2:4] / 2
    return np.concatenate([cxcywh[..., 0:2] - half, cxcywh[..., 0:2] + half], axis=-1)


def box_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU of every box of ``a`` with every box of ``b``.

    Args:
        a: (..., P, 4) x1, y1, x2, y2.
        b: (D, 4) x1, y1, x2, y2, same units.

    Returns:
        (..., P, D) IoU.
    """
    a = a[..., :, None, :]
    iw = np.clip(np.minimum(a[..., 2], b[:, 2]) - np.maximum(a[..., 0], b[:, 0]), 0, None)
    ih = np.clip(np.minimum(a[..., 3], b[:, 3]) - np.maximum(a[..., 1], b[:, 1]), 0, None)
    inter = iw * ih
    area_a = (a[..., 2] - a[..., 0]) * (a[..., 3] - a[..., 1])
    area_b = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    return inter / np.maximum(area_a + area_b - inter, 1e-12)


def match_scores(
    decoded: Sequence[tuple[np.ndarray, np.ndarray, np.ndarray]],
    boxes: np.ndarray,
    class_ids: Sequence[int],
) -> np.ndarray:
    """Each detection's score in each image of a batch: its best-matching prediction.

    For detection ``d`` with box ``b_d`` and class ``c_d``, over every prediction ``p``
    of every head: ``max_p IoU(box_p, b_d) × score_p[c_d]``, where ``score`` is
    objectness × class probability (the quantity NMS thresholds). This is D-RISE's
    similarity with one departure: D-RISE multiplies IoU by objectness and by the
    cosine similarity of the whole class-probability vectors; we take the detection's
    own class score, so that on the unperturbed image the curve starts at (about) the
    detection's score.

    Args:
        decoded: per head, (boxes (B, h, w, A, 4) cx, cy, w, h in 0..1 of the network
            input, objectness (B, h, w, A), scores (B, h, w, A, C)), as
            :meth:`Detector.predict` returns them.
        boxes: (D, 4) x1, y1, x2, y2 of the detections in 0..1 of the network input.
        class_ids: D class indices.

    Returns:
        (B, D) scores in [0, 1].

    Reference:
        Petsiuk et al. 2021, "Black-box Explanation of Object Detectors via Saliency
        Maps" (D-RISE), https://arxiv.org/abs/2006.03204
    """
    boxes = np.asarray(boxes, np.float64).reshape(-1, 4)
    class_ids = np.asarray(class_ids, np.int64).reshape(-1)
    best = None
    for pred_boxes, _, scores in decoded:
        batch = pred_boxes.shape[0]
        flat = _xyxy(pred_boxes.reshape(batch, -1, 4).astype(np.float64))  # (B, P, 4)
        cls = scores.reshape(batch, -1, scores.shape[-1])[:, :, class_ids]  # (B, P, D)
        value = (box_iou(flat, boxes) * cls).max(axis=1)  # (B, D)
        best = value if best is None else np.maximum(best, value)
    if best is None:
        raise ValueError("decoded is empty: no head outputs")
    return best.astype(np.float64)


# -- deletion and insertion ----------------------------------------------------------------


def auc(values: np.ndarray, fractions: np.ndarray) -> np.ndarray:
    """Area under curves by the trapezoid rule.

    Args:
        values: (..., S+1) curve values.
        fractions: (S+1,) x positions, increasing from 0 to 1.

    Returns:
        (...) areas (a float for one curve).
    """
    return np.trapezoid(np.asarray(values, np.float64), np.asarray(fractions, np.float64), axis=-1)


@dataclass(frozen=True)
class Curves:
    """Deletion and insertion curves of D detections under one ordering of the pixels.

    Attributes:
        fractions: (S+1,) share of the pixels removed (deletion) or restored
            (insertion) at each step: 0, 1/S, …, 1.
        deletion: (D, S+1) each detection's score while the map's pixels are removed,
            most important first. Lower area = more faithful map.
        insertion: (D, S+1) each detection's score while the map's pixels are restored
            into the blank image, most important first. Higher area = more faithful.
    """

    fractions: np.ndarray
    deletion: np.ndarray
    insertion: np.ndarray

    @property
    def deletion_auc(self) -> np.ndarray:
        """(D,) area under each deletion curve (fraction 0..1)."""
        return auc(self.deletion, self.fractions)

    @property
    def insertion_auc(self) -> np.ndarray:
        """(D,) area under each insertion curve (fraction 0..1)."""
        return auc(self.insertion, self.fractions)

    def select(self, index: int | Sequence[int]) -> Curves:
        """The curves of some detections only (rows of deletion and insertion)."""
        rows = np.atleast_1d(np.asarray(index, np.int64))
        return Curves(self.fractions, self.deletion[rows], self.insertion[rows])

    @staticmethod
    def mean(curves: Sequence[Curves]) -> Curves:
        """The point-wise mean of curves on the same fractions (e.g. over seeds)."""
        if not curves:
            raise ValueError("no curves to average")
        return Curves(
            curves[0].fractions,
            np.mean([c.deletion for c in curves], axis=0),
            np.mean([c.insertion for c in curves], axis=0),
        )


def pixel_order(
    heatmap: np.ndarray,
    tie_break: np.ndarray | None = None,
    seed: int = 0,
    tie_order: np.ndarray | None = None,
) -> np.ndarray:
    """Flat pixel indices, most important first.

    Args:
        heatmap: (H, W) map.
        tie_break: (H, W) secondary key for pixels of equal value (higher first), e.g.
            the random map of :func:`random_heatmap` at the same grid, so that flat
            regions (ReLU zeros) are removed in random blocks; None draws a uniform
            per-pixel key from ``seed``.
        seed: seed of the default tie-break.
        tie_order: ``tie_order(tie_break)`` computed once for many maps (overrides
            ``tie_break`` and ``seed``).

    Returns:
        (H·W,) int64 permutation.
    """
    heatmap = _check_map(heatmap)
    if tie_order is None:
        if tie_break is None:
            tie_break = np.random.default_rng(seed).random(heatmap.shape)
        elif np.shape(tie_break) != heatmap.shape:
            raise ValueError(
                f"tie_break has shape {np.shape(tie_break)}; it must match the heatmap's "
                f"{heatmap.shape}"
            )
        tie_order = _descending(np.asarray(tie_break).ravel())
    elif tie_order.shape != (heatmap.size,):
        raise ValueError(f"tie_order has shape {tie_order.shape}; expected ({heatmap.size},)")
    # a stable sort of the tie-ordered values keeps that order among equal values
    return tie_order[_descending(heatmap.ravel()[tie_order])]


def _descending(values: np.ndarray) -> np.ndarray:
    """Stable argsort, largest first (equal values keep their order)."""
    return np.argsort(-values, kind="stable")


class PerturbationCurves:
    """Deletion and insertion curves (RISE) of detections on one image.

    Built once per image and set of detections: it prepares the blank image, the
    detections' boxes in network coordinates and the scores of the two images every
    map shares (the untouched and the fully removed image); :meth:`curves` then costs
    2·(S−1) forward passes per map, batched.

    What is perturbed: the **image**, at its own resolution, ordered by the
    image-resolution heatmap (as RISE and D-RISE); each perturbed image then goes
    through :meth:`Detector.preprocess` (resize or letterbox) like any photo.

    - Deletion: step k replaces the k/S most important pixels with the fill.
    - Insertion: step k starts from the fully filled image and restores the k/S most
      important pixels.
    - Fill: ``"grey"`` (default) = constant 128 in every channel, a neutral value for a
      [0, 1] input and the letterbox padding; ``"blur"`` = a Gaussian-blurred copy
      (σ = 5/224 of the longer side, RISE's blur). RISE deletes to zero (black) and
      inserts into a blurred canvas; we use one fill for both so that deletion at 1 and
      insertion at 0 are the same image. Grey leaves no trace of the object (a blurred
      person is often still detected), which makes the curves easier to read.
    - Score after each step: :func:`match_scores` (IoU with the original box × class
      score, as D-RISE), the raw score, not normalised by the starting score.

    Args:
        detector: the model.
        image: (H, W, 3) uint8 RGB.
        detections: D detections of this image (their boxes and classes).
        steps: S, the number of equal pixel fractions (S+1 points, 0 and 1 included).
        fill: ``"grey"`` or ``"blur"``.
        batch_size: images per forward pass.

    Reference:
        Petsiuk et al. 2018, "RISE: Randomized Input Sampling for Explanation of
        Black-box Models", https://arxiv.org/abs/1806.07421 (deletion and insertion);
        Petsiuk et al. 2021, D-RISE, https://arxiv.org/abs/2006.03204 (the detection
        score).
    """

    def __init__(
        self,
        detector: Detector,
        image: np.ndarray,
        detections: Sequence[Detection],
        steps: int = DEFAULT_STEPS,
        fill: str = "grey",
        batch_size: int = 16,
    ):
        if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
            raise ValueError(
                f"expected an (H, W, 3) uint8 RGB image, got {image.shape} {image.dtype}"
            )
        if not isinstance(steps, int | np.integer) or steps < 1:
            raise ValueError(f"steps must be a whole number >= 1; got {steps!r}")
        if fill not in FILLS:
            raise ValueError(f"fill must be one of {', '.join(FILLS)}; got {fill!r}")
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1; got {batch_size}")
        if not detections:
            raise ValueError("no detections to score")
        self.detector = detector
        self.image = image
        self.detections = tuple(detections)
        self.steps = int(steps)
        self.fill_name = fill
        self.batch_size = int(batch_size)
        self.fractions = np.arange(self.steps + 1, dtype=np.float64) / self.steps
        self._pixels = image.shape[0] * image.shape[1]
        self._counts = np.round(self.fractions * self._pixels).astype(np.int64)
        if fill == "grey":
            self.fill = np.full_like(image, GREY)
        else:
            sigma = BLUR_SIGMA * max(image.shape[:2])
            self.fill = cv2.GaussianBlur(image, (0, 0), sigmaX=sigma, sigmaY=sigma)
        letterbox = detector.letterbox_for(image.shape[:2])
        net_h, net_w = detector.input_size
        boxes = letterbox.to_network(np.array([d.box_xyxy for d in self.detections], np.float64))
        self._boxes = boxes / np.array([net_w, net_h, net_w, net_h], np.float64)
        self._classes = np.array([d.class_id for d in self.detections], np.int64)
        self.forward_passes = 0
        self._ties: tuple[np.ndarray, np.ndarray] | None = None  # last tie-break, its order
        self.original_scores, self.filled_scores = self._score_batch(
            [detector.preprocess(image)[0], detector.preprocess(self.fill)[0]]
        )

    def _score_batch(self, tensors: Sequence[np.ndarray]) -> np.ndarray:
        """(N, D) match scores of N preprocessed images (1, h, w, 3), one forward pass."""
        decoded = self.detector.predict(np.concatenate(tensors))
        self.forward_passes += len(tensors)
        return match_scores(decoded, self._boxes, self._classes)

    def _perturbed(self, order: np.ndarray):
        """Network inputs of deletion steps 1..S−1, then insertion steps 1..S−1.

        Each step only pastes the pixels that are new since the previous step.
        """
        shape = self.image.shape
        for source, start in ((self.fill, self.image), (self.image, self.fill)):
            canvas = start.reshape(-1, 3).copy()
            pixels = source.reshape(-1, 3)
            for k in range(1, self.steps):
                new = order[self._counts[k - 1] : self._counts[k]]
                canvas[new] = pixels[new]
                yield self.detector.preprocess(canvas.reshape(shape))[0]

    def curves(self, heatmap: np.ndarray, tie_break: np.ndarray | None = None) -> Curves:
        """Deletion and insertion curves of every detection under one map.

        Args:
            heatmap: (H, W) map at image resolution; higher = more important.
            tie_break: see :func:`pixel_order`.

        Returns:
            :class:`Curves` with D rows (one per detection given to the constructor).
        """
        heatmap = _check_map(heatmap)
        if heatmap.shape != self.image.shape[:2]:
            raise ValueError(
                f"heatmap shape {heatmap.shape} differs from the image's {self.image.shape[:2]}; "
                "use ScaleMap.heatmap (image resolution)"
            )
        if tie_break is None:
            order = pixel_order(heatmap)
        else:
            if self._ties is None or self._ties[0] is not tie_break:
                if np.shape(tie_break) != heatmap.shape:
                    raise ValueError(
                        f"tie_break has shape {np.shape(tie_break)}; it must match the "
                        f"heatmap's {heatmap.shape}"
                    )
                self._ties = (tie_break, _descending(np.asarray(tie_break).ravel()))
            order = pixel_order(heatmap, tie_order=self._ties[1])
        scores, batch = [], []
        for tensor in self._perturbed(order):
            batch.append(tensor)
            if len(batch) == self.batch_size:
                scores.append(self._score_batch(batch))
                batch = []
        if batch:
            scores.append(self._score_batch(batch))
        middle = np.concatenate(scores) if scores else np.zeros((0, len(self.detections)))
        n = self.steps - 1
        deletion = np.concatenate(
            [self.original_scores[None], middle[:n], self.filled_scores[None]]
        ).T
        insertion = np.concatenate(
            [self.filled_scores[None], middle[n:], self.original_scores[None]]
        ).T
        return Curves(self.fractions.copy(), deletion, insertion)


def deletion_insertion(
    detector: Detector,
    image: np.ndarray,
    heatmap: np.ndarray,
    detections: Sequence[Detection],
    steps: int = DEFAULT_STEPS,
    fill: str = "grey",
    batch_size: int = 16,
    tie_break: np.ndarray | None = None,
) -> Curves:
    """Deletion and insertion curves of detections under one map (one-off form of
    :class:`PerturbationCurves`; build that once to evaluate many maps of an image).

    Args:
        detector: the model.
        image: (H, W, 3) uint8 RGB.
        heatmap: (H, W) map at image resolution.
        detections: D detections whose scores are tracked.
        steps: number of equal pixel fractions.
        fill: ``"grey"`` or ``"blur"``.
        batch_size: images per forward pass.
        tie_break: see :func:`pixel_order`.

    Returns:
        :class:`Curves` with D rows; ``.deletion_auc`` and ``.insertion_auc`` are (D,).

    Reference:
        Petsiuk et al. 2018 (RISE), https://arxiv.org/abs/1806.07421
    """
    return PerturbationCurves(detector, image, detections, steps, fill, batch_size).curves(
        heatmap, tie_break
    )


# -- random baseline -------------------------------------------------------------------------


def random_heatmap(
    shape: tuple[int, int],
    seed: int = 0,
    grid: tuple[int, int] | None = None,
    upsample: Callable[[np.ndarray], np.ndarray] | None = None,
) -> np.ndarray:
    """A uniform random map: the baseline every deletion/insertion number is read against.

    Args:
        shape: (H, W) of the image.
        seed: NumPy generator seed (fixed, so that the baseline is reproducible).
        grid: draw U(0, 1) on this (h, w) grid and upsample it bilinearly, so that the
            random map removes pixels in blocks as coarse as a CAM's; None draws one
            value per pixel.
        upsample: how to bring the grid to the image (default ``cv2.resize``); pass
            :meth:`Explainer.to_image` with the image's letterbox to place the grid
            exactly as the CAM maps are placed.

    Returns:
        (H, W) float32 map.
    """
    rng = np.random.default_rng(seed)
    if grid is None:
        return rng.random(shape).astype(np.float32)
    cells = rng.random(grid).astype(np.float32)
    if upsample is not None:
        out = upsample(cells)
    else:
        out = cv2.resize(cells, (shape[1], shape[0]), interpolation=cv2.INTER_LINEAR)
    if out.shape != tuple(shape):
        raise ValueError(f"upsample returned shape {out.shape}; expected {tuple(shape)}")
    return out.astype(np.float32)


def random_baseline(
    perturbation: PerturbationCurves,
    seeds: Sequence[int] = (0, 1, 2),
    grid: tuple[int, int] | None = None,
    upsample: Callable[[np.ndarray], np.ndarray] | None = None,
) -> Curves:
    """Deletion and insertion curves of a random map, averaged over seeds.

    Args:
        perturbation: the image and detections (see :class:`PerturbationCurves`).
        seeds: one random map per seed; the curves are averaged point-wise.
        grid, upsample: see :func:`random_heatmap`.

    Returns:
        :class:`Curves`, one row per detection of ``perturbation``.
    """
    if not seeds:
        raise ValueError("seeds is empty")
    shape = perturbation.image.shape[:2]
    return Curves.mean(
        [
            perturbation.curves(
                random_heatmap(shape, seed, grid, upsample),
                random_heatmap(shape, seed + 10_000),  # per-pixel ties (none expected)
            )
            for seed in seeds
        ]
    )


# -- model-randomisation sanity check --------------------------------------------------------


def rank_correlation(a: np.ndarray, b: np.ndarray) -> float:
    """Spearman's rank correlation of two maps (ties get their average rank).

    Returns:
        ρ in [−1, 1]; NaN when either map is constant.
    """
    a, b = np.asarray(a, np.float64).ravel(), np.asarray(b, np.float64).ravel()
    if a.shape != b.shape:
        raise ValueError(f"maps differ in size: {a.size} vs {b.size} values")
    ra, rb = _average_ranks(a), _average_ranks(b)
    ra, rb = ra - ra.mean(), rb - rb.mean()
    denom = float(np.sqrt((ra * ra).sum() * (rb * rb).sum()))
    return float((ra * rb).sum() / denom) if denom > 0 else float("nan")


def _average_ranks(x: np.ndarray) -> np.ndarray:
    order = np.argsort(x, kind="mergesort")
    ordered = x[order]
    new = np.r_[True, ordered[1:] != ordered[:-1]]
    starts = np.flatnonzero(new)
    ends = np.r_[starts[1:], x.size]
    ranks = np.empty(x.size, np.float64)
    ranks[order] = ((starts + ends - 1) / 2.0)[np.cumsum(new) - 1]
    return ranks


#: Model randomisations (see :func:`randomised_explainer`).
RANDOMISATIONS = ("last-two", "cascade")


def randomised_layers(
    detector: Detector,
    mode: str = "last-two",
    layers: Mapping[int, Sequence[str]] | None = None,
) -> list[str]:
    """The layers :func:`randomised_explainer` re-initialises.

    Args:
        detector: the model.
        mode: ``"last-two"``: per head, the head's final convolution and the
            convolution that produces its CAM layer; ``"cascade"``: per head, every
            layer between the explained layer and the head output (Adebayo et al.'s
            cascade down to the explained layer).
        layers: for ``"cascade"``, the explained layers per head (several: the
            deepest reach counts); default the heads' CAM layers.

    Raises:
        YolocamError: no single chain of layers leads from a convolution to a CAM
            layer (last-two), or a head's tail cannot be isolated (cascade).
    """
    import keras

    if mode not in RANDOMISATIONS:
        raise ValueError(f"mode must be one of {', '.join(RANDOMISATIONS)}; got {mode!r}")
    from yolocam_core.keras_internals import parent_layers

    model = detector.keras_model
    names: list[str] = []
    if mode == "cascade":
        from yolocam_core.tails import Tail

        for head in detector.heads:
            chosen = (layers or {}).get(head.index, (head.cam_layer,))
            for name in chosen:
                try:
                    tail = Tail(model, name, head.output_name, detector.input_size)
                except YolocamError as exc:
                    raise YolocamError(
                        f"the cascade sanity check cannot isolate head {head.label} from "
                        f"layer {name!r} ({exc}); skip it (yolocam evaluate --no-sanity)"
                    ) from None
                names += [n for n in tail.layers if n not in names and _has_weights(model, n)]
        return names
    for head in detector.heads:
        layer = model.get_layer(head.cam_layer)
        while not isinstance(layer, keras.layers.Conv2D):
            parents = parent_layers(layer)
            if len(parents) != 1:
                raise YolocamError(
                    f"the sanity check cannot find the convolution before layer "
                    f"{head.cam_layer!r} ({layer.name!r} has {len(parents)} inputs); "
                    "skip it (yolocam evaluate --no-sanity)"
                )
            layer = parents[0]
        names += [head.output_name, layer.name]
    return names


def _has_weights(model, name: str) -> bool:
    try:
        return bool(model.get_layer(name).weights)
    except ValueError:  # an operation of the graph, not a layer: nothing to re-initialise
        return False


def randomised_explainer(
    explainer: Explainer,
    seed: int = 2018,
    mode: str = "last-two",
    method: str | CamMethod | None = None,
) -> Explainer:
    """An explainer on a copy of the model whose top layers hold random weights.

    The layers of :func:`randomised_layers` get weights drawn from N(0, σ²) with σ the
    standard deviation of the trained weights of the same tensor, so only the learnt
    structure is lost. ``"last-two"`` re-initialises two layers per head (the head's
    final convolution and the one before the CAM layer); ``"cascade"`` every layer
    from the explained layer to each head output, as Adebayo et al.'s cascading
    randomisation run down to the layer the method explains at. The original model is
    not touched.

    Args:
        explainer: explainer of the trained model.
        seed: NumPy generator seed.
        mode: ``"last-two"`` or ``"cascade"``.
        method: for ``"cascade"``, the method whose layers (per head) bound the
            cascade; default the heads' CAM layers (the Grad-CAM family's).

    Returns:
        A new :class:`Explainer` on the randomised copy (same heads and classes).

    Raises:
        YolocamError: the model cannot be copied or its layers found.

    Reference:
        Adebayo et al. 2018, "Sanity Checks for Saliency Maps",
        https://arxiv.org/abs/1810.03292
    """
    import keras

    from yolocam_core.cams import get_method
    from yolocam_core.explainer import Explainer

    detector = explainer.detector
    model = detector.keras_model
    layers = None
    if method is not None and mode == "cascade":
        cam = get_method(method)
        if not cam.black_box:
            layers = {s: cam.layers(detector, s) for s in range(len(detector.heads))}
    names = randomised_layers(detector, mode, layers)
    try:
        copy = keras.models.clone_model(model)
        copy.set_weights(model.get_weights())
    except Exception as exc:  # e.g. layers Keras cannot re-create from their config
        raise YolocamError(
            f"the sanity check cannot copy the model ({type(exc).__name__}: {exc}); "
            "skip it (yolocam evaluate --no-sanity)"
        ) from None
    rng = np.random.default_rng(seed)
    for name in names:
        copy.get_layer(name).set_weights(
            [
                rng.normal(0.0, float(w.std()) or 1.0, w.shape).astype(w.dtype)
                for w in model.get_layer(name).get_weights()
            ]
        )
    twin = detector.replace(keras_model=copy, name=f"{detector.name} (randomised, {mode})")
    return Explainer(twin)


def sanity_check(
    explainer: Explainer,
    random_explainer: Explainer,
    image: np.ndarray,
    detections: Sequence[Detection],
    method: str | CamMethod = "gradcam",
    scales: Sequence[int] | None = None,
) -> np.ndarray:
    """Model-randomisation test: rank correlation of each detection's map on the trained
    model with its map on the randomised model.

    A method that passes gives maps that change when the weights do: |ρ| well below 1
    (Adebayo et al. report Spearman rank correlation; a map that survives
    randomisation explains the image, not the model). Both explainers explain the
    *trained* model's detections (same cells, anchors and boxes), on raw grid maps.

    Args:
        explainer: the trained model's explainer.
        random_explainer: from :func:`randomised_explainer`.
        image: (H, W, 3) uint8 RGB.
        detections: D detections of the trained model on ``image``.
        method: CAM method name.
        scales: head indices; None = all.

    Returns:
        (D, S) Spearman ρ per detection and scale (NaN where a map is constant).

    Reference:
        Adebayo et al. 2018, "Sanity Checks for Saliency Maps",
        https://arxiv.org/abs/1810.03292
    """
    from yolocam_core.targets import DetectionTarget

    targets = [DetectionTarget(d) for d in detections]
    scales = list(range(len(explainer.detector.heads))) if scales is None else list(scales)
    trained = explainer.explain_many(image, targets, method, scales)
    random = random_explainer.explain_many(image, targets, method, scales)
    return np.array(
        [
            [rank_correlation(t.grid_map, r.grid_map) for t, r in zip(a.maps, b.maps, strict=True)]
            for a, b in zip(trained, random, strict=True)
        ],
        dtype=np.float64,
    ).reshape(len(detections), len(scales))
