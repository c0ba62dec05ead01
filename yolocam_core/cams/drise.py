"""D-RISE (Petsiuk et al., CVPR 2021): black-box saliency of detections from random masks."""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import cv2
import numpy as np

from yolocam_core.cams.base import CamMethod
from yolocam_core.errors import YolocamError

if TYPE_CHECKING:
    from yolocam_core.detector import Detection
    from yolocam_core.explainer import Explainer, Forward
    from yolocam_core.targets import Target

#: Maps are accumulated on a grid of the network input at this stride (416 -> 104×104):
#: a D-RISE map is a sum of masks upsampled from a 16×16 grid, so nothing finer exists.
MAP_STRIDE = 4
#: Largest mask count accepted (a run is 1 forward per mask).
MAX_MASKS = 20_000
#: Compile the batched masked forward with XLA. Measured on a loaded 2-core AMD EPYC,
#: per mask against one ``Detector.predict`` of batch 1: TF's default graph at batch 8
#: to 64: 2.3–3.4× (slower: batches do not pay there); XLA at batch 1, 2, 4, 8:
#: 0.94, 0.86, 0.74, 0.80×. So XLA, batch 4 (``DRise.batch_size``).
JIT_COMPILE = True
#: What the masked forwards compute in: ``"auto"`` is bfloat16 on a CPU that computes
#: it natively (Intel AMX or AVX512-BF16, :func:`native_bfloat16`), else float32.
#: Measured on a 2-core Xeon with AMX, yolov4-tiny at 416, batch 16: 5.4 ms per masked
#: image in bfloat16 against 21.7 ms in float32 (one batch-1 forward: 37 ms); raw head
#: outputs correlate at 0.9998 with float32's. Elsewhere bfloat16 is emulated (slower).
PRECISIONS = ("auto", "float32", "bfloat16")
#: Largest model (parameters) given a bfloat16 copy: the copy holds its own float32
#: variables (yolov4-tiny: 6 million, 24 MB; YOLOv3: 62 million, 248 MB).
BFLOAT16_COPY_MAX_PARAMS = 80_000_000
#: Masked images per forward when ``batch_size`` is not given, by precision (float32
#: goes through XLA, :data:`JIT_COMPILE`; bfloat16 through oneDNN, which XLA bypasses).
DEFAULT_BATCH = {"float32": 4, "bfloat16": 16}


@functools.cache
def native_bfloat16() -> bool:
    """Whether this CPU computes bfloat16 natively: the ``amx_bf16`` or ``avx512_bf16``
    flag in Linux's /proc/cpuinfo (elsewhere: False)."""
    try:
        text = Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace")
    except OSError:
        return False
    for line in text.splitlines():
        if line.startswith("flags"):
            return bool({"amx_bf16", "avx512_bf16"} & set(line.split(":", 1)[-1].split()))
    return False


@dataclass(frozen=True)
class DRiseMaps:
    """D-RISE saliency of D detections from one set of masks.

    Attributes:
        per_head: (D, S, h, w) float32: the map from each head's predictions alone
            (the similarity restricted to that head), on the network input at
            :data:`MAP_STRIDE`.
        combined: (D, h, w) float32: the paper's map, from every head's predictions.
        masks: the number of masks used.
        precision: what the masked forwards computed in, ``"float32"`` or
            ``"bfloat16"``.

    Values are ``sum_i w_i M_i / (N p)``: the expected similarity of the best-matching
    prediction to the detection when a location is kept (0..1).
    """

    per_head: np.ndarray
    combined: np.ndarray
    masks: int
    precision: str = "float32"


class DRise(CamMethod):
    """D-RISE: random masks, and each masked image weighted by how well its predictions
    still match the detection::

        M_i  = bilinear upsampling of a random s×s binary grid (P(1) = p), randomly
               shifted by up to one grid cell, at the network input's size
        d_j  = predictions of the model on image ⊙ M_i (every cell and anchor)
        w_i  = max_j IoU(box_j, box) × cos(probs_j, probs) × objectness_j
        map  = sum_i w_i M_i / (N p)

    where ``box`` and ``probs`` are the explained detection's box and class-probability
    vector (from the unmasked image). All detections of an image use the same masks
    (one forward per mask for all of them), in batches of ``batch_size`` through one
    compiled function (masking, forward, decoding and similarity in one graph).

    Per scale: the map of head ``s`` takes the maximum over that head's predictions
    only (which image regions keep *this head* finding the detection); the paper's map
    takes it over every head (:attr:`DRiseMaps.combined`). Maps are stored on the
    network input at stride :data:`MAP_STRIDE` (104×104 for 416×416).

    Departures from the paper: masks are applied to the network input (after resizing
    or letterboxing), not to the original image, so the map is placed on the image like
    the gradient maps; the target's class vector is the detection's own class
    probabilities (YOLO's per-class sigmoids), not a one-hot vector; and the similarity
    uses the prediction's objectness, as the paper does for detectors that have one.

    Args:
        masks: N, the number of masks (the paper uses 5,000; 1,000 is the default here).
        grid: s, cells per side of the random grid (the paper's 16).
        probability: p, the probability a grid cell is kept (the paper's 0.5).
        seed: NumPy seed of the masks and shifts: the same seed gives the same maps.
        batch_size: masked images per compiled forward; None: by precision
            (:data:`DEFAULT_BATCH`, measured fastest on 2-core CPUs). Memory grows with
            it, not with ``masks``.
        precision: the masked forwards' arithmetic, one of :data:`PRECISIONS`:
            ``"auto"`` (bfloat16 where the CPU does it natively, else float32),
            ``"float32"`` (the model's own), or ``"bfloat16"``. The unmasked forward
            that found the detections is float32 in every case.

    Reference:
        Petsiuk et al., "Black-box Explanation of Object Detectors via Saliency Maps",
        CVPR 2021, https://arxiv.org/abs/2006.03204
    """

    name = "drise"
    title = "D-RISE"
    paper = "https://arxiv.org/abs/2006.03204"
    needs_gradients = False
    apply_relu = False
    answers = "black-box"
    note = (
        "Black box: random masks show which image regions the detection needs; "
        "slow (one forward per mask), the reference the gradient maps are checked against"
    )
    black_box = True

    def __init__(
        self,
        masks: int = 1000,
        grid: int = 16,
        probability: float = 0.5,
        seed: int = 0,
        batch_size: int | None = None,
        precision: str = "auto",
    ):
        if not isinstance(masks, int | np.integer) or not 1 <= masks <= MAX_MASKS:
            raise YolocamError(f"masks must be a whole number in 1..{MAX_MASKS}; got {masks!r}")
        if not isinstance(grid, int | np.integer) or not 2 <= grid <= 64:
            raise YolocamError(f"grid must be a whole number in 2..64; got {grid!r}")
        if not 0.0 < float(probability) < 1.0:
            raise YolocamError(
                f"probability must lie strictly between 0 and 1; got {probability!r}"
            )
        if batch_size is not None and (
            not isinstance(batch_size, int | np.integer) or not 1 <= batch_size <= 256
        ):
            raise YolocamError(f"batch_size must be a whole number in 1..256; got {batch_size!r}")
        if precision not in PRECISIONS:
            raise YolocamError(
                f"precision must be one of {', '.join(PRECISIONS)}; got {precision!r}"
            )
        self.masks = int(masks)
        self.grid = int(grid)
        self.probability = float(probability)
        self.seed = int(seed)
        self.batch_size = None if batch_size is None else int(batch_size)
        self.precision = precision

    def __repr__(self) -> str:
        return (
            f"DRise(masks={self.masks}, grid={self.grid}, probability={self.probability}, "
            f"seed={self.seed}, precision={self.precision!r})"
        )

    def resolved_precision(self) -> str:
        """``"float32"`` or ``"bfloat16"``: :attr:`precision` with ``"auto"`` decided
        for this CPU (:func:`native_bfloat16`)."""
        if self.precision == "auto":
            return "bfloat16" if native_bfloat16() else "float32"
        return self.precision

    def describe(self) -> str:
        """What the maps were made from, e.g. ``"1000 masks 16×16 p=0.5 seed 0"``."""
        return f"{self.masks} masks {self.grid}×{self.grid} p={self.probability:g} seed {self.seed}"

    def check_target(self, target: Target) -> None:
        if target.kind != "detection":
            raise YolocamError(
                "drise explains one detection (the similarity of masked predictions to its "
                f"box and class); a {target.kind} target has no box: use a detection target "
                "(detection:K), or a gradient method for class and whole-head targets"
            )
        if target.attribute != "score":
            raise YolocamError(
                "drise explains the whole detection (box, class and objectness together), "
                f"not its {target.attribute!r} alone: use attribute score, or odam for one "
                "attribute"
            )

    def compute(self, activations, gradients):  # pragma: no cover - never called
        raise YolocamError("drise works on whole images: use Explainer.explain(..., 'drise')")

    # -- masks ---------------------------------------------------------------------

    def mask_plan(self, size: tuple[int, int]) -> tuple[np.ndarray, np.ndarray, tuple[int, int]]:
        """The random grids and shifts of every mask, drawn once from :attr:`seed`.

        Returns:
            grids (N, s, s) bool, shifts (N, 2) int (dy, dx), and the cell size (ch, cw)
            in pixels, for masks of ``size`` (height, width).
        """
        rng = np.random.default_rng(self.seed)
        grids = rng.random((self.masks, self.grid, self.grid)) < self.probability
        cell = (int(np.ceil(size[0] / self.grid)), int(np.ceil(size[1] / self.grid)))
        shifts = np.stack(
            [rng.integers(0, cell[0], self.masks), rng.integers(0, cell[1], self.masks)], axis=1
        )
        return grids, shifts, cell

    def masks_for(
        self,
        grids: np.ndarray,
        shifts: np.ndarray,
        cell: tuple[int, int],
        size: tuple[int, int],
    ) -> np.ndarray:
        """(n, H, W) float32 masks in [0, 1] from grids (n, s, s) and shifts (n, 2):
        each grid upsampled bilinearly to (s+1) cells per side and cropped at its shift
        (RISE's recipe)."""
        h, w = size
        up = ((self.grid + 1) * cell[0], (self.grid + 1) * cell[1])
        out = np.empty((len(grids), h, w), np.float32)
        for i, (g, (dy, dx)) in enumerate(zip(grids, shifts, strict=True)):
            big = cv2.resize(g.astype(np.float32), (up[1], up[0]), interpolation=cv2.INTER_LINEAR)
            out[i] = big[dy : dy + h, dx : dx + w]
        return out

    # -- the maps --------------------------------------------------------------------

    def saliency(
        self,
        explainer: Explainer,
        fwd: Forward,
        detections: Sequence[Detection],
        progress: Callable[[int, int], None] | None = None,
    ) -> DRiseMaps:
        """D-RISE maps of detections of one image, all from the same masks.

        Args:
            explainer: the model's explainer (its compiled D-RISE function is cached).
            fwd: the image's forward pass (for the detections' class vectors).
            detections: D detections of that image.
            progress: called as ``progress(masks_done, masks_total)`` before the first
                batch (0 done) and after each batch; it may raise to stop the work.

        Returns:
            :class:`DRiseMaps`.
        """
        detector = explainer.detector
        in_h, in_w = detector.input_size
        boxes, probs = detection_vectors(explainer, fwd, detections)

        def batch_in(precision: str):
            return explainer.compiled(
                ("drise", len(detector.heads), precision),
                lambda: _build_batch(explainer, precision),
            )

        precision = self.resolved_precision()
        try:
            run = batch_in(precision)
        except YolocamError:  # no bfloat16 copy of this model
            if self.precision != "auto":
                raise
            precision = "float32"
            run = batch_in(precision)
        batch_size = self.batch_size or DEFAULT_BATCH[precision]
        grids, shifts, cell = self.mask_plan((in_h, in_w))
        map_size = map_grid((in_h, in_w))
        d, s = len(detections), len(detector.heads)
        total = np.zeros((s + 1, d, map_size[0] * map_size[1]), np.float64)
        import tensorflow as tf

        tensor = tf.constant(fwd.tensor)
        boxes_t, probs_t = tf.constant(boxes), tf.constant(probs)
        if progress is not None:  # before the first batch: a caller may stop here
            progress(0, self.masks)
        for start in range(0, self.masks, batch_size):
            stop = min(start + batch_size, self.masks)
            masks = self.masks_for(grids[start:stop], shifts[start:stop], cell, (in_h, in_w))
            sims = run(tensor, tf.constant(masks[..., None]), boxes_t, probs_t).numpy()  # (B,S,D)
            sims = np.concatenate([sims, sims.max(axis=1, keepdims=True)], axis=1)  # (B,S+1,D)
            small = np.stack(
                [
                    cv2.resize(m, (map_size[1], map_size[0]), interpolation=cv2.INTER_AREA)
                    for m in masks
                ]
            ).reshape(len(masks), -1)
            total += np.einsum("bsd,bp->sdp", sims, small)
            if progress is not None:
                progress(stop, self.masks)
        total /= self.masks * self.probability
        maps = total.reshape(s + 1, d, *map_size).astype(np.float32)
        return DRiseMaps(
            np.transpose(maps[:s], (1, 0, 2, 3)).copy(), maps[s].copy(), self.masks, precision
        )


def map_grid(input_size: tuple[int, int]) -> tuple[int, int]:
    """(h, w) of the stored maps: the network input at stride :data:`MAP_STRIDE`
    (inputs under 64 pixels a side keep every pixel)."""
    return tuple(n // MAP_STRIDE if n >= 16 * MAP_STRIDE else n for n in input_size)


def detection_vectors(
    explainer: Explainer, fwd: Forward, detections: Sequence[Detection]
) -> tuple[np.ndarray, np.ndarray]:
    """The target vectors of D-RISE: each detection's box (D, 4) as x1, y1, x2, y2 in
    0..1 of the network input, and its class-probability vector (D, C) at its own
    cell and anchor of the unmasked image."""
    in_h, in_w = explainer.detector.input_size
    boxes = np.zeros((len(detections), 4), np.float32)
    probs = np.zeros((len(detections), explainer.detector.num_classes), np.float32)
    for i, det in enumerate(detections):
        net = fwd.letterbox.to_network(np.array([det.box_xyxy]))[0]
        boxes[i] = net / np.array([in_w, in_h, in_w, in_h])
        _, objectness, scores = fwd.decoded[det.scale]
        row, col = det.cell
        obj = float(objectness[0, row, col, det.anchor])
        probs[i] = scores[0, row, col, det.anchor] / max(obj, 1e-12)
    return boxes, probs


def similarity(
    pred_boxes: np.ndarray,
    pred_objectness: np.ndarray,
    pred_probs: np.ndarray,
    boxes: np.ndarray,
    probs: np.ndarray,
) -> np.ndarray:
    """D-RISE's similarity of predictions to detections, in NumPy (the reference the
    compiled version is tested against).

    Args:
        pred_boxes: (P, 4) x1, y1, x2, y2.
        pred_objectness: (P,).
        pred_probs: (P, C) class probabilities.
        boxes: (D, 4) x1, y1, x2, y2 of the detections, same units.
        probs: (D, C) their class-probability vectors.

    Returns:
        (P, D): IoU × cosine(class vectors) × objectness.
    """
    a = pred_boxes[:, None, :]
    iw = np.clip(np.minimum(a[..., 2], boxes[:, 2]) - np.maximum(a[..., 0], boxes[:, 0]), 0, None)
    ih = np.clip(np.minimum(a[..., 3], boxes[:, 3]) - np.maximum(a[..., 1], boxes[:, 1]), 0, None)
    inter = iw * ih
    area_a = (a[..., 2] - a[..., 0]) * (a[..., 3] - a[..., 1])
    area_b = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    iou = inter / np.maximum(area_a + area_b - inter, 1e-12)
    pn = pred_probs / np.maximum(np.linalg.norm(pred_probs, axis=1, keepdims=True), 1e-12)
    dn = probs / np.maximum(np.linalg.norm(probs, axis=1, keepdims=True), 1e-12)
    return iou * (pn @ dn.T) * pred_objectness[:, None]


def bfloat16_copy(model):
    """A copy of the Keras ``model`` (its weights copied) that computes in bfloat16:
    every layer's dtype policy ``mixed_bfloat16`` (variables stay float32), rebuilt
    from the model's own configuration (no file is read, no code run).

    Raises:
        YolocamError: the model cannot be rebuilt so (a layer without a dtype policy),
            or has more than :data:`BFLOAT16_COPY_MAX_PARAMS` parameters (the copy
            holds its own float32 variables).
    """
    try:
        params = model.count_params()
    except Exception as exc:  # an unbuilt model
        raise YolocamError(f"cannot count this model's parameters ({exc}): use float32") from None
    if params > BFLOAT16_COPY_MAX_PARAMS:
        raise YolocamError(
            f"this model has {params:,} parameters; a bfloat16 copy is made for at most "
            f"{BFLOAT16_COPY_MAX_PARAMS:,} (it holds its own weights): use float32"
        )
    try:
        config = model.get_config()  # a subclassed model may have none
        if not _set_dtype_policies(config, "mixed_bfloat16"):
            raise YolocamError("this model's layers have no dtype policy to set: use float32")
        copy = model.__class__.from_config(config)
        copy.set_weights(model.get_weights())
    except YolocamError:
        raise
    except Exception as exc:  # a config that does not round-trip
        raise YolocamError(
            f"cannot make a bfloat16 copy of this model ({exc}): use float32"
        ) from None
    return copy


def _set_dtype_policies(config, name: str) -> int:
    """Set every ``DTypePolicy`` in a Keras config to ``name``, in place; how many."""
    count = 0
    if isinstance(config, dict):
        for key, value in config.items():
            if (
                key == "dtype"
                and isinstance(value, dict)
                and value.get("class_name") == "DTypePolicy"
            ):
                value["config"] = {**value.get("config", {}), "name": name}
                count += 1
            else:
                count += _set_dtype_policies(value, name)
    elif isinstance(config, list):
        count += sum(_set_dtype_policies(value, name) for value in config)
    return count


def _build_batch(explainer: Explainer, precision: str = "float32"):
    """Compiled (image (1,H,W,3), masks (B,H,W,1), boxes (D,4), probs (D,C)) ->
    (B, S, D) best similarity per head; the masked forward in ``precision`` (the
    decoding and similarity in float32)."""
    import tensorflow as tf

    from yolocam_core.heads import decode_head

    detector = explainer.detector
    model = detector.keras_model
    if precision == "bfloat16":
        model = bfloat16_copy(model)
    in_h, in_w = detector.input_size
    c = detector.num_classes

    def run(image, masks, boxes, probs):
        outs = model(image * masks, training=False)
        outs = outs if isinstance(outs, list | tuple) else [outs]
        outs = [tf.cast(o, tf.float32) for o in outs]
        dn = probs / tf.maximum(tf.norm(probs, axis=1, keepdims=True), 1e-12)  # (D, C)
        area_b = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
        best = []
        for raw, head in zip(outs, detector.heads, strict=True):
            dec = decode_head(raw, head, (in_h, in_w))
            b = tf.shape(raw)[0]
            xywh = tf.reshape(dec["boxes"], (b, -1, 4))
            half = xywh[..., 2:4] / 2
            x1y1, x2y2 = xywh[..., 0:2] - half, xywh[..., 0:2] + half  # (B, P, 2)
            lo = tf.maximum(x1y1[:, :, None, :], boxes[None, None, :, 0:2])
            hi = tf.minimum(x2y2[:, :, None, :], boxes[None, None, :, 2:4])
            wh = tf.maximum(hi - lo, 0.0)
            inter = wh[..., 0] * wh[..., 1]  # (B, P, D)
            area_a = (xywh[..., 2] * xywh[..., 3])[:, :, None]
            iou = inter / tf.maximum(area_a + area_b[None, None, :] - inter, 1e-12)
            cls = tf.reshape(dec["class_probs"], (b, -1, c))
            cn = cls / tf.maximum(tf.norm(cls, axis=2, keepdims=True), 1e-12)
            cos = tf.einsum("bpc,dc->bpd", cn, dn)
            obj = tf.reshape(dec["objectness"], (b, -1))[:, :, None]
            best.append(tf.reduce_max(iou * cos * obj, axis=1))  # (B, D)
        return tf.stack(best, axis=1)

    return tf.function(
        run,
        input_signature=[
            tf.TensorSpec((1, in_h, in_w, 3), tf.float32),
            tf.TensorSpec((None, in_h, in_w, 1), tf.float32),
            tf.TensorSpec((None, 4), tf.float32),
            tf.TensorSpec((None, c), tf.float32),
        ],
        jit_compile=JIT_COMPILE and precision == "float32",
        autograph=False,
    )
