"""Detector: preprocess -> compiled forward -> differentiable decode -> per-class NMS."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import keras
import numpy as np
import tensorflow as tf

from yolocam_core.errors import YolocamError
from yolocam_core.heads import HeadInfo, decode_head
from yolocam_core.images import load_image


@dataclass(frozen=True)
class Detection:
    """One detected box.

    Attributes:
        box_xyxy: (x1, y1, x2, y2) in original-image pixels, clipped to the image.
        class_id: index into the detector's class names.
        class_name: the class's name.
        score: objectness × class probability.
        objectness: the prediction's objectness.
        scale: index of the head (scale) that predicted it.
        cell: (row, col) of the grid cell at that head.
        anchor: index of the anchor within that head.
    """

    box_xyxy: tuple[float, float, float, float]
    class_id: int
    class_name: str
    score: float
    objectness: float
    scale: int
    cell: tuple[int, int]
    anchor: int

    def to_dict(self) -> dict:
        """The JSON form used by ``yolocam detect --json``."""
        return {
            "class_id": self.class_id,
            "class_name": self.class_name,
            "score": round(self.score, 6),
            "box_xyxy": [round(v, 2) for v in self.box_xyxy],
            "scale": self.scale,
            "cell": list(self.cell),
            "anchor": self.anchor,
        }


#: Detections kept after NMS unless told otherwise (as YOLOv5/Ultralytics' ``max_det``).
DEFAULT_MAX_DETECTIONS = 300
#: Candidates (box, class pairs over the threshold) that may go through NMS, the
#: highest-scoring first (as YOLOv5's ``max_nms``).
MAX_CANDIDATES = 30_000


class Detections(list):
    """A list of :class:`Detection` (best first) that knows what was left out.

    A plain ``list`` everywhere one is expected (``len``, indexing, ``== []``).

    Attributes:
        candidates: (box, class) pairs whose score passed the threshold, before NMS.
        considered: how many of them, the highest-scoring, went through NMS (all of
            them unless NMS could stop early or there were more than the candidate cap).
        max_detections: the cap on detections, or None.
        capped: more than ``max_detections`` detections survived NMS; the list holds
            the ``max_detections`` highest-scoring.
        score_threshold: the threshold the candidates passed.
    """

    def __init__(
        self,
        items=(),
        *,
        candidates: int = 0,
        considered: int = 0,
        max_detections: int | None = None,
        capped: bool = False,
        score_threshold: float = 0.0,
    ):
        super().__init__(items)
        self.candidates = int(candidates)
        self.considered = int(considered)
        self.max_detections = max_detections
        self.capped = bool(capped)
        self.score_threshold = float(score_threshold)

    @property
    def total(self) -> int | None:
        """How many detections NMS keeps over all candidates, when known: ``len(self)``
        unless capped or some candidates were never considered; None otherwise (the
        true number is then above ``len(self)``)."""
        if self.capped or self.considered < self.candidates:
            return None
        return len(self)

    def note(self) -> str | None:
        """One sentence for users when detections were left out, else None.

        Example: ``"this model produced 128,313 candidate boxes at score ≥ 0.25, more
        than 300 detections after NMS; showing the 300 best — raise the score
        threshold"``.
        """
        threshold = f"score ≥ {self.score_threshold:.2f}"
        if self.capped:
            return (
                f"this model produced {self.candidates:,} candidate boxes at {threshold}, "
                f"more than {self.max_detections:,} detections after NMS; showing the "
                f"{len(self):,} best — raise the score threshold"
            )
        if self.considered < self.candidates:
            return (
                f"this model produced {self.candidates:,} candidate boxes at {threshold}; "
                f"only the {self.considered:,} highest-scoring went through NMS — raise "
                "the score threshold"
            )
        return None

    def __repr__(self) -> str:
        extra = ", capped" if self.capped else ""
        return f"Detections({list.__repr__(self)}, candidates={self.candidates}{extra})"


@dataclass(frozen=True)
class Letterbox:
    """How an image of ``image_size`` was placed in the network input.

    Network pixel (x, y) corresponds to image pixel ((x - offset_x) / scale_x,
    (y - offset_y) / scale_y).

    Attributes:
        image_size: (height, width) of the image.
        scale_x, scale_y: network pixels per image pixel.
        offset_x, offset_y: where the image's top-left corner lies in the network input.
        input_size: (height, width) of the network input; None when unknown (then
            :meth:`map_to_image` needs a placement without padding).
    """

    image_size: tuple[int, int]  # (height, width)
    scale_x: float
    scale_y: float
    offset_x: float
    offset_y: float
    input_size: tuple[int, int] | None = None

    def to_image(self, boxes_net_px: np.ndarray) -> np.ndarray:
        """(N, 4) x1, y1, x2, y2 in network pixels -> the same in image pixels."""
        out = np.asarray(boxes_net_px, dtype=np.float64).copy()
        out[:, [0, 2]] = (out[:, [0, 2]] - self.offset_x) / self.scale_x
        out[:, [1, 3]] = (out[:, [1, 3]] - self.offset_y) / self.scale_y
        return out

    def to_network(self, boxes_img_px: np.ndarray) -> np.ndarray:
        """(N, 4) x1, y1, x2, y2 in image pixels -> the same in network pixels."""
        out = np.asarray(boxes_img_px, dtype=np.float64).copy()
        out[:, [0, 2]] = out[:, [0, 2]] * self.scale_x + self.offset_x
        out[:, [1, 3]] = out[:, [1, 3]] * self.scale_y + self.offset_y
        return out

    def map_to_image(self, grid_map: np.ndarray) -> np.ndarray:
        """An (h, w) map over the network input -> (H, W) float32 over the image.

        Bilinear: the map is resized to the network input, the image's part of it
        (without the letterbox padding) is cut out and resized to the image. Without
        padding, one resize straight to the image (the same values, less work).

        Raises:
            ValueError: the placement has padding and ``input_size`` is unknown.
        """
        img_h, img_w = self.image_size
        values = np.asarray(grid_map, dtype=np.float32)
        if self.offset_x == 0 and self.offset_y == 0:
            net_h, net_w = self.input_size or (img_h * self.scale_y, img_w * self.scale_x)
            if np.isclose(self.scale_x, net_w / img_w) and np.isclose(self.scale_y, net_h / img_h):
                return cv2.resize(values, (img_w, img_h))
        if self.input_size is None:
            raise ValueError("map_to_image needs the letterbox's input_size (it has padding)")
        net_h, net_w = self.input_size
        full = cv2.resize(values, (net_w, net_h))
        x0, y0 = round(self.offset_x), round(self.offset_y)
        x1 = x0 + max(1, round(img_w * self.scale_x))
        y1 = y0 + max(1, round(img_h * self.scale_y))
        return cv2.resize(full[y0:y1, x0:x1], (img_w, img_h))


class Detector:
    """A YOLO detector whose Keras model outputs the raw head tensors.

    The object is immutable after construction and safe to share between threads.

    Args:
        keras_model: input (B, H, W, 3) float32 RGB in [0, 1]; one output per head,
            (B, h, w, A·(5+C)).
        heads: metadata of each head, in output order.
        class_names: C names, or empty for ``class_0`` … ``class_{C-1}``.
        letterbox: keep the aspect ratio and pad with grey (as keras-yolo3 and
            Darknet's ``letter_box=1``); False resizes to the input size (Darknet's
            default).
        name: a short name shown in the UI.

    Raises:
        ValueError: ``class_names`` is not empty and its length is not the model's C.
    """

    def __init__(
        self,
        keras_model: keras.Model,
        heads: Sequence[HeadInfo],
        class_names: Sequence[str],
        letterbox: bool = False,
        name: str = "model",
    ):
        self.keras_model = keras_model
        self.heads: tuple[HeadInfo, ...] = tuple(heads)
        num_classes = self.heads[0].num_classes
        names = list(class_names) or [f"class_{k}" for k in range(num_classes)]
        if len(names) != num_classes:
            raise ValueError(
                f"{len(names)} class names for a model with {num_classes} classes; "
                f"pass exactly {num_classes} names, or none for class_0 … class_{num_classes - 1}"
            )
        self.class_names: tuple[str, ...] = tuple(names)
        self.letterbox = bool(letterbox)
        self.name = name
        shape = keras_model.inputs[0].shape
        self.input_size: tuple[int, int] = (int(shape[1]), int(shape[2]))
        self._forward = tf.function(
            self._forward_decoded,
            input_signature=[tf.TensorSpec((None, *self.input_size, 3), tf.float32)],
        )

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    def replace(self, **changes) -> Detector:
        """A copy with some fields changed; the Keras model is shared, not copied.

        Args:
            **changes: any of ``keras_model``, ``heads``, ``class_names``,
                ``letterbox``, ``name``.

        Returns:
            A new detector (its own compiled forward pass).

        Raises:
            TypeError: a name that is not one of those fields.

        Example:
            >>> boxed = detector.replace(letterbox=True, name="yolov4-tiny (letterboxed)")
        """
        fields = {
            "keras_model": self.keras_model,
            "heads": self.heads,
            "class_names": self.class_names,
            "letterbox": self.letterbox,
            "name": self.name,
        }
        unknown = sorted(set(changes) - set(fields))
        if unknown:
            raise TypeError(
                f"Detector.replace() got unknown fields {unknown}; fields: {', '.join(fields)}"
            )
        return Detector(**{**fields, **changes})

    def head_label(self, scale: int) -> str:
        """E.g. ``"13×13 · stride 32"``."""
        return self.heads[scale].label

    def check_scales(self, scales: Sequence[int] | None, option: str = "scales") -> None:
        """Raise a one-line :class:`YolocamError` if a scale is not one of the heads.

        Args:
            scales: head indices, or None (all).
            option: how the user gave them, for the message (e.g. ``"--scales"``).
        """
        bad = [s for s in scales or () if not 0 <= s < len(self.heads)]
        if bad:
            raise YolocamError(
                f"{option}: this model has scales 0..{len(self.heads) - 1} "
                f"({', '.join(h.label for h in self.heads)}); got {', '.join(map(str, bad))}"
            )

    def describe(self, detection: Detection) -> str:
        """E.g. ``"dog 0.87 · 13×13"``."""
        grid = self.heads[detection.scale].grid
        return f"{detection.class_name} {detection.score:.2f} · {grid[0]}×{grid[1]}"

    # -- preprocessing -------------------------------------------------------------

    def preprocess(self, image: np.ndarray) -> tuple[np.ndarray, Letterbox]:
        """Resize (or letterbox) to the network size and scale to [0, 1].

        Args:
            image: (H, W, 3) uint8 RGB.

        Returns:
            (1, h, w, 3) float32 network input, and the mapping back to the image.
        """
        net_h, net_w = self.input_size
        box = self.letterbox_for(image.shape[:2])
        if not self.letterbox:
            resized = cv2.resize(image, (net_w, net_h), interpolation=cv2.INTER_LINEAR)
        else:
            new_w = round(image.shape[1] * box.scale_x)
            new_h = round(image.shape[0] * box.scale_y)
            x0, y0 = int(box.offset_x), int(box.offset_y)
            resized = np.full((net_h, net_w, 3), 128, dtype=np.uint8)
            resized[y0 : y0 + new_h, x0 : x0 + new_w] = cv2.resize(
                image, (new_w, new_h), interpolation=cv2.INTER_LINEAR
            )
        tensor = resized.astype(np.float32)[None] / np.float32(255.0)
        return tensor, box

    def letterbox_for(self, image_size: tuple[int, int]) -> Letterbox:
        """How an image of (height, width) is placed in the network input."""
        net_h, net_w = self.input_size
        img_h, img_w = image_size
        if not self.letterbox:
            return Letterbox(
                (img_h, img_w), net_w / img_w, net_h / img_h, 0.0, 0.0, self.input_size
            )
        scale = min(net_w / img_w, net_h / img_h)
        new_w, new_h = max(1, round(img_w * scale)), max(1, round(img_h * scale))
        off_x, off_y = (net_w - new_w) // 2, (net_h - new_h) // 2
        return Letterbox(
            (img_h, img_w), new_w / img_w, new_h / img_h, off_x, off_y, self.input_size
        )

    def image_warning(self, image_size: tuple[int, int]) -> str | None:
        """A sentence when an image of (height, width) is too small or too elongated for
        the network to see it well (the app shows it, the CLI prints it), else None."""
        height, width = image_size
        net_h, net_w = self.input_size
        box = self.letterbox_for(image_size)
        seen_w, seen_h = width * box.scale_x, height * box.scale_y
        upscale = min(box.scale_x, box.scale_y)  # the whole photo, both ways
        if upscale > 4:
            return (
                f"This photo is only {width}×{height} px: the network sees it enlarged "
                f"{upscale:.0f}× to {net_w}×{net_h}, so detections and maps say little. "
                f"Use a photo at least {min(net_w, net_h) // 2} px on its shorter side."
            )
        if self.letterbox and min(seen_w, seen_h) < min(net_w, net_h) / 4:
            return (
                f"This photo is very elongated ({width}×{height} px): the network sees it as a "
                f"{seen_w:.0f}×{seen_h:.0f} px band of its {net_w}×{net_h} input, where objects "
                "are tiny. Crop it closer to 4:3."
            )
        stretch = max(box.scale_x, box.scale_y) / max(1e-9, min(box.scale_x, box.scale_y))
        if not self.letterbox and stretch > 4:
            return (
                f"This photo is very elongated ({width}×{height} px): the network stretches it "
                f"{stretch:.0f}× more one way than the other to {net_w}×{net_h}, so objects are "
                "distorted. Crop it closer to 4:3."
            )
        return None

    # -- forward and decode ----------------------------------------------------------

    def raw_outputs(self, batch: tf.Tensor) -> list[tf.Tensor]:
        """Raw head tensors, [(B, h, w, A·(5+C))] per head, eager and differentiable."""
        outputs = self.keras_model(batch, training=False)
        return list(outputs) if isinstance(outputs, (list, tuple)) else [outputs]

    def decode(self, raws: Sequence[tf.Tensor]) -> list[dict[str, tf.Tensor]]:
        """Decode every head (see :func:`yolocam_core.heads.decode_head`), differentiably."""
        return [
            decode_head(raw, head, self.input_size)
            for raw, head in zip(raws, self.heads, strict=True)
        ]

    def _forward_decoded(self, batch):
        decoded = self.decode(self.raw_outputs(batch))
        return [(d["boxes"], d["objectness"], d["scores"]) for d in decoded]

    def predict(self, batch: np.ndarray) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
        """Compiled forward + decode of a preprocessed batch (B, h, w, 3).

        Returns:
            Per head: boxes (B, h, w, A, 4) as cx, cy, w, h in 0..1 of the network
            input; objectness (B, h, w, A); scores (B, h, w, A, C).
        """
        outs = self._forward(tf.convert_to_tensor(batch, tf.float32))
        return [tuple(t.numpy() for t in head) for head in outs]

    # -- detection -------------------------------------------------------------------

    def detect(
        self,
        image: np.ndarray | str | bytes,
        score_threshold: float = 0.25,
        iou_threshold: float = 0.45,
        max_detections: int | None = DEFAULT_MAX_DETECTIONS,
    ) -> Detections:
        """Detect objects in one image.

        Args:
            image: (H, W, 3) uint8 RGB, or anything :func:`load_image` takes.
            score_threshold: keep (box, class) pairs whose objectness × class
                probability is above this.
            iou_threshold: per-class NMS overlap threshold.
            max_detections: keep at most this many (the highest-scoring) after NMS;
                None keeps all. See :meth:`postprocess`.

        Returns:
            Detections sorted by score, highest first, with how many there were
            (:class:`Detections`).
        """
        image = load_image(image)
        tensor, box = self.preprocess(image)
        decoded = self.predict(tensor)
        return self.postprocess(decoded, box, score_threshold, iou_threshold, 0, max_detections)

    def postprocess(
        self,
        decoded: Sequence[tuple[np.ndarray, np.ndarray, np.ndarray]],
        letterbox: Letterbox,
        score_threshold: float = 0.25,
        iou_threshold: float = 0.45,
        batch_index: int = 0,
        max_detections: int | None = DEFAULT_MAX_DETECTIONS,
        max_candidates: int | None = MAX_CANDIDATES,
    ) -> Detections:
        """Threshold and per-class NMS (OpenCV's ``NMSBoxesBatched``) of decoded heads.

        Every class whose score passes the threshold makes a candidate, as in Darknet,
        so one box may be reported for two classes.

        Work is bounded whatever the model outputs (an untrained model can pass
        hundreds of thousands of candidates): candidates are kept as arrays, sorted by
        score, and NMS runs on the highest-scoring first, on a window that grows
        (× 4) only while fewer than ``max_detections`` survive. Greedy NMS decides a
        box from higher-scoring boxes only, so the result equals NMS over all
        candidates cut to ``max_detections``, as long as at most ``max_candidates``
        are needed (YOLOv5's ``max_det=300``, ``max_nms=30000``).

        Args:
            decoded: per head, (boxes, objectness, scores) as :meth:`predict` returns.
            letterbox: how the image was placed in the network input.
            score_threshold: keep (box, class) pairs scoring above this.
            iou_threshold: per-class NMS overlap threshold.
            batch_index: which image of the batch.
            max_detections: at most this many detections, the highest-scoring; None:
                no limit.
            max_candidates: at most this many candidates (the highest-scoring) go
                through NMS; None: no limit.

        Returns:
            :class:`Detections`, sorted by score; ``.capped`` says whether some were
            left out and ``.note()`` says it in one sentence.
        """
        if not 0.0 <= score_threshold <= 1.0 or not 0.0 <= iou_threshold <= 1.0:
            raise ValueError(
                f"thresholds must lie in [0, 1]; got score={score_threshold}, iou={iou_threshold}"
            )
        for name, value in (("max_detections", max_detections), ("max_candidates", max_candidates)):
            if value is not None and (isinstance(value, bool) or int(value) != value or value < 1):
                raise ValueError(f"{name} must be a whole number >= 1 or None; got {value!r}")
        net_h, net_w = self.input_size
        parts: list[tuple[np.ndarray, ...]] = []
        for scale, (boxes, objectness, scores) in enumerate(decoded):
            scores = scores[batch_index]
            rows, cols, anchors, classes = np.nonzero(scores > score_threshold)
            if rows.size == 0:
                continue
            cxcywh = boxes[batch_index][rows, cols, anchors].astype(np.float64)
            xyxy = np.stack(
                [
                    (cxcywh[:, 0] - cxcywh[:, 2] / 2) * net_w,
                    (cxcywh[:, 1] - cxcywh[:, 3] / 2) * net_h,
                    (cxcywh[:, 0] + cxcywh[:, 2] / 2) * net_w,
                    (cxcywh[:, 1] + cxcywh[:, 3] / 2) * net_h,
                ],
                axis=1,
            )
            meta = np.stack([np.full_like(rows, scale), rows, cols, anchors, classes], axis=1)
            parts.append(
                (
                    xyxy,
                    scores[rows, cols, anchors, classes].astype(np.float32),
                    objectness[batch_index][rows, cols, anchors].astype(np.float32),
                    meta,
                )
            )
        found = sum(p[0].shape[0] for p in parts)
        limit = found if max_candidates is None else min(found, int(max_candidates))
        if not found:
            return Detections(max_detections=max_detections, score_threshold=score_threshold)
        xyxy, scores_all, obj_all, meta = (np.concatenate(c) for c in zip(*parts, strict=True))
        # The `limit` best candidates, best first (ties in a stable order).
        if limit < found:
            top = np.argpartition(-scores_all, limit - 1)[:limit]
            order = top[np.argsort(-scores_all[top], kind="stable")]
        else:
            order = np.argsort(-scores_all, kind="stable")
        xywh = np.stack(
            [xyxy[:, 0], xyxy[:, 1], xyxy[:, 2] - xyxy[:, 0], xyxy[:, 3] - xyxy[:, 1]], 1
        )
        window = limit if max_detections is None else min(limit, max(1000, 4 * max_detections))
        while True:
            picked = order[:window]
            keep = cv2.dnn.NMSBoxesBatched(
                xywh[picked].tolist(),
                scores_all[picked].tolist(),
                meta[picked, 4].tolist(),
                score_threshold,
                iou_threshold,
            )
            keep = picked[np.asarray(keep, dtype=np.int64).reshape(-1)]
            enough = max_detections is not None and keep.size > max_detections
            if enough or window >= limit:
                break
            window = min(limit, window * 4)
        keep = keep[np.argsort(-scores_all[keep], kind="stable")]
        capped = max_detections is not None and keep.size > max_detections
        if capped:
            keep = keep[:max_detections]
        img_h, img_w = letterbox.image_size
        img_boxes = letterbox.to_image(xyxy[keep])
        img_boxes[:, [0, 2]] = np.clip(img_boxes[:, [0, 2]], 0, img_w)
        img_boxes[:, [1, 3]] = np.clip(img_boxes[:, [1, 3]], 0, img_h)
        detections = []
        for k, b in zip(keep.tolist(), img_boxes, strict=True):
            scale, row, col, anchor, class_id = (int(v) for v in meta[k])
            detections.append(
                Detection(
                    box_xyxy=(float(b[0]), float(b[1]), float(b[2]), float(b[3])),
                    class_id=class_id,
                    class_name=self.class_names[class_id],
                    score=float(scores_all[k]),
                    objectness=float(obj_all[k]),
                    scale=scale,
                    cell=(row, col),
                    anchor=anchor,
                )
            )
        return Detections(
            detections,
            candidates=found,
            considered=window,
            max_detections=max_detections,
            capped=capped,
            score_threshold=score_threshold,
        )
