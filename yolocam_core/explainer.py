"""Explainer: activations and gradients at each scale's layer -> CAM maps.

One compiled forward pass gives, for every scale, the activations ``A`` of the layer
that feeds the head's final convolution and the raw head output. The gradient of a
scale's score with respect to ``A`` only needs that final convolution (the head's
*tail*), so it is computed through the tail alone: for all scales and for many
targets at once (the tail is applied to ``A`` tiled once per target), without a
backward pass through the backbone. This is exact because ``A`` feeds nothing else
(checked when the explainer is built; otherwise, and for expert-chosen layers, a
gradient model ``image -> [A, head output]`` is built per (scale, layer), cached and
differentiated with a tape, as in the article).

The article rebuilt a gradient model per scale on every call; here everything is
built once per explainer and shared, read-only, by all threads.
"""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import cv2
import keras
import numpy as np
import tensorflow as tf

from yolocam_core.cams import get_method
from yolocam_core.detector import DEFAULT_MAX_DETECTIONS, Detections, Detector, Letterbox
from yolocam_core.errors import YolocamError
from yolocam_core.images import load_image
from yolocam_core.targets import ScoreContext, Target, weighted_score

#: Normalisations: ``"auto"`` is ``"shared"`` for detection and class targets (scales
#: compare honestly) and ``"per-map"`` for the article's whole-output target.
NORMS = ("auto", "per-map", "shared")
#: A scale whose score is below this fraction of the strongest scale's score is *weak*:
#: its map is drawn with a marker, never as a confident map on its own.
WEAK_RELATIVE = 0.01


@dataclass(frozen=True)
class ScaleMap:
    """One scale's explanation.

    Attributes:
        scale: head index.
        label: e.g. ``"13×13 · stride 32"``.
        layer: the layer whose activations were used.
        grid_map: (h, w) float32 raw map at the layer's resolution, not normalised.
        heatmap: (H, W) float32 map resized to the image and normalised to [0, 1].
        score: the explained score at this scale (see :meth:`Target.score_note`).
        relative: ``score`` over the largest score of any head of the model, or None
            when the score has no sign (the whole-head-output target).
        share: ``score`` over the sum of all heads' scores, or None (as ``relative``).
    """

    scale: int
    label: str
    layer: str
    grid_map: np.ndarray
    heatmap: np.ndarray
    score: float
    relative: float | None = None
    share: float | None = None

    @property
    def weak(self) -> bool:
        """Whether this scale's score is below :data:`WEAK_RELATIVE` of the strongest
        scale's: its map then shows what little this scale contributes, not the target."""
        return self.relative is not None and self.relative < WEAK_RELATIVE


@dataclass(frozen=True)
class Explanation:
    """The maps of one target at the requested scales.

    Attributes:
        method: CAM method name.
        target: the target's caption, e.g. ``"dog 0.87"``.
        norm: the normalisation used, ``"per-map"`` or ``"shared"`` (``"auto"``
            resolved).
        box_xyxy: the target's box in image pixels, or None.
        image_size: (height, width) of the explained image.
        maps: one :class:`ScaleMap` per explained scale.
        target_kind: ``"detection"``, ``"class"`` or ``"seed"``.
        score_note: what "score" means for this target (see :meth:`Target.score_note`).
        scale_scores: the target's score at every head of the model (explained or
            not), by head index.
        own_scale: the head that predicted the explained detection, or None.
    """

    method: str
    target: str
    norm: str
    box_xyxy: tuple[float, float, float, float] | None
    image_size: tuple[int, int]
    maps: tuple[ScaleMap, ...]
    target_kind: str = ""
    score_note: str = ""
    scale_scores: tuple[float, ...] = ()
    own_scale: int | None = None

    @property
    def weak_scales(self) -> tuple[int, ...]:
        """Explained scales whose score is below :data:`WEAK_RELATIVE` of the strongest."""
        return tuple(m.scale for m in self.maps if m.weak)

    def compact(self) -> Explanation:
        """A copy without the (H, W) heatmaps (empty (0, 0) arrays), for caching; the
        grid maps are kept, :meth:`Explainer.with_heatmaps` rebuilds the rest."""
        empty = np.zeros((0, 0), np.float32)
        maps = tuple(dataclasses.replace(m, heatmap=empty) for m in self.maps)
        return dataclasses.replace(self, maps=maps)

    def by_scale(self, scale: int) -> ScaleMap:
        for m in self.maps:
            if m.scale == scale:
                return m
        raise KeyError(f"scale {scale} was not explained (have {[m.scale for m in self.maps]})")


@dataclass(frozen=True)
class Forward:
    """One forward pass of one image, reusable for detection and for many targets.

    Attributes:
        image: (H, W, 3) uint8 RGB.
        letterbox: how the image maps into the network input.
        tensor: (1, h, w, 3) float32 network input.
        activations: per scale, (1, h_s, w_s, K_s) activations of the scale's CAM layer.
        raws: per scale, (1, h_s, w_s, A·(5+C)) raw head output.
        decoded: per scale, numpy (boxes (1, h, w, A, 4), objectness (1, h, w, A),
            scores (1, h, w, A, C)) as :meth:`Detector.predict` returns them.
    """

    image: np.ndarray
    letterbox: Letterbox
    tensor: np.ndarray
    activations: tuple[tf.Tensor, ...]
    raws: tuple[tf.Tensor, ...]
    decoded: tuple[tuple[np.ndarray, np.ndarray, np.ndarray], ...]


class Explainer:
    """Grad-CAM and friends for every head of a :class:`Detector`.

    Args:
        detector: the model to explain. Shared, never mutated.

    Example:
        >>> explainer = Explainer(load_detector())
        >>> dets = explainer.detector.detect(image)
        >>> result = explainer.explain(image, DetectionTarget(dets[0]), method="gradcam")
        >>> result.maps[0].heatmap.shape == image.shape[:2]
        True
    """

    def __init__(self, detector: Detector):
        self.detector = detector
        model = detector.keras_model
        self._cam_layers = tuple(h.cam_layer for h in detector.heads)
        self._tails = tuple(model.get_layer(h.output_name) for h in detector.heads)
        self._tail_exact = tuple(
            _feeds_only(model, h.cam_layer, h.output_name) for h in detector.heads
        )
        features = keras.Model(
            model.inputs,
            [model.get_layer(name).output for name in self._cam_layers] + list(model.outputs),
            name=f"{model.name}_features",
        )
        n = len(detector.heads)

        def run_features(x):
            outs = features(x, training=False)
            decoded = [
                (d["boxes"], d["objectness"], d["scores"]) for d in detector.decode(outs[n:])
            ]
            return tuple(outs[:n]), tuple(outs[n:]), tuple(decoded)

        self._features = tf.function(
            run_features,
            input_signature=[tf.TensorSpec((None, *detector.input_size, 3), tf.float32)],
        )
        self._tail_gradients = tuple(self._compile_tail(scale) for scale in range(n))
        self._num_heads = n
        self._gradient_models: dict[tuple[int, str], keras.Model] = {}
        self._lock = threading.Lock()

    # -- forward ---------------------------------------------------------------------

    def forward(self, image: np.ndarray | str | bytes) -> Forward:
        """Run the compiled forward pass once: activations and raw outputs of all scales."""
        image = load_image(image)
        tensor, letterbox = self.detector.preprocess(image)
        acts, raws, decoded = self._features(tf.constant(tensor))
        decoded = tuple(tuple(t.numpy() for t in head) for head in decoded)
        return Forward(image, letterbox, tensor, tuple(acts), tuple(raws), decoded)

    def detect(
        self,
        fwd: Forward,
        score_threshold: float = 0.25,
        iou_threshold: float = 0.45,
        max_detections: int | None = DEFAULT_MAX_DETECTIONS,
    ) -> Detections:
        """Detections from an existing forward pass (no second forward); at most
        ``max_detections`` (see :meth:`Detector.postprocess`)."""
        return self.detector.postprocess(
            fwd.decoded, fwd.letterbox, score_threshold, iou_threshold, 0, max_detections
        )

    # -- gradients -------------------------------------------------------------------

    def layer_for(self, scale: int, layer: str | None = None) -> str:
        return layer or self._cam_layers[scale]

    def gradients(
        self,
        fwd: Forward,
        targets: Sequence[Target],
        scale: int,
        layer: str | None = None,
        need_gradients: bool = True,
    ) -> tuple[np.ndarray, np.ndarray | None, np.ndarray]:
        """Activations and per-target gradients at one scale's layer.

        Args:
            fwd: from :meth:`forward`.
            targets: N targets.
            scale: head index.
            layer: another layer to use for this scale (expert option).
            need_gradients: False skips the backward pass (gradient-free methods).

        Returns:
            activations (h, w, K); gradients (N, h, w, K) or None; scores (N,).
        """
        self._check_scale(scale)
        head = self.detector.heads[scale]
        ctx = ScoreContext(head, self.detector.input_size, fwd.letterbox, fwd.decoded[scale][0][0])
        raw_w, score_w = self._stack_weights([t.weights(ctx) for t in targets], head)
        default_layer = layer is None or layer == self._cam_layers[scale]
        if default_layer and not need_gradients:
            values = self._weighted_values(fwd, scale, raw_w, score_w)
            return fwd.activations[scale][0].numpy(), None, values
        if default_layer and self._tail_exact[scale]:
            grads, scores = self._tail_gradients[scale](fwd.activations[scale], raw_w, score_w)
            return fwd.activations[scale][0].numpy(), grads.numpy(), scores.numpy()
        return self._gradients_general(fwd, scale, self.layer_for(scale, layer), raw_w, score_w)

    def scores(self, fwd: Forward, targets: Sequence[Target]) -> np.ndarray:
        """Every target's score at every head, from the forward pass alone.

        Returns:
            (N, S) float32: target n's score at head s (see :meth:`Target.score_note`).
        """
        out = np.zeros((len(targets), self._num_heads), np.float32)
        for scale, head in enumerate(self.detector.heads):
            ctx = ScoreContext(
                head, self.detector.input_size, fwd.letterbox, fwd.decoded[scale][0][0]
            )
            raw_w, score_w = self._stack_weights([t.weights(ctx) for t in targets], head)
            out[:, scale] = self._weighted_values(fwd, scale, raw_w, score_w)
        return out

    @staticmethod
    def _weighted_values(fwd: Forward, scale: int, raw_w, score_w) -> np.ndarray:
        """(N,) scores of stacked weights (see :func:`weighted_score`), in NumPy."""
        raw, scores = fwd.raws[scale].numpy(), fwd.decoded[scale][2]
        values = np.einsum("bhwc,nhwc->n", raw, raw_w) + np.einsum(
            "bhwak,nhwak->n", scores, score_w
        )
        return values.astype(np.float32)

    @staticmethod
    def _stack_weights(weights, head) -> tuple[np.ndarray, np.ndarray]:
        """Per-target weights -> raw (N, h, w, A·(5+C)) and scores (N, h, w, A, C)."""
        h, w = head.grid
        a, c = head.num_anchors, head.num_classes
        raw_w = np.zeros((len(weights), h, w, a * (5 + c)), np.float32)
        score_w = np.zeros((len(weights), h, w, a, c), np.float32)
        for i, tw in enumerate(weights):
            if tw.raw is not None:
                raw_w[i] = tw.raw
            if tw.scores is not None:
                score_w[i] = tw.scores
        return raw_w, score_w

    def _compile_tail(self, scale: int):
        """Compiled (acts (1,h,w,K), raw_w, score_w) -> (grads (N,h,w,K), scores (N,))."""
        head = self.detector.heads[scale]
        tail = self._tails[scale]
        input_size = self.detector.input_size
        h, w = head.grid
        a, c = head.num_anchors, head.num_classes
        k = self.detector.keras_model.get_layer(head.cam_layer).output.shape[-1]

        @tf.function(
            input_signature=[
                tf.TensorSpec((1, h, w, k), tf.float32),
                tf.TensorSpec((None, h, w, a * (5 + c)), tf.float32),
                tf.TensorSpec((None, h, w, a, c), tf.float32),
            ]
        )
        def tail_gradients(acts, raw_w, score_w):
            tiled = tf.repeat(acts, tf.shape(raw_w)[0], axis=0)
            with tf.GradientTape() as tape:
                tape.watch(tiled)
                scores = weighted_score(tail(tiled), head, input_size, raw_w, score_w)
            return tape.gradient(scores, tiled), scores

        return tail_gradients

    def _gradients_general(self, fwd, scale, layer, raw_w, score_w):
        """Tape through ``image -> [layer, head]``, the image repeated once per target."""
        model = self.gradient_model(scale, layer)
        head = self.detector.heads[scale]
        x = tf.repeat(tf.constant(fwd.tensor), raw_w.shape[0], axis=0)
        with tf.GradientTape() as tape:
            acts, raw = model(x, training=False)
            scores = weighted_score(raw, head, self.detector.input_size, raw_w, score_w)
        grads = tape.gradient(scores, acts)
        if grads is None:
            raise YolocamError(
                f"layer {layer!r} does not feed head {scale} ({head.label}); "
                "choose a layer before that head"
            )
        return acts[0].numpy(), grads.numpy(), scores.numpy()

    def gradient_model(self, scale: int, layer: str) -> keras.Model:
        """The cached ``image -> (activations of layer, head output)`` model of a scale."""
        key = (scale, layer)
        with self._lock:
            if key not in self._gradient_models:
                model = self.detector.keras_model
                try:
                    chosen = model.get_layer(layer)
                except ValueError:
                    raise YolocamError(
                        f"no layer named {layer!r} in the model; see the Model page or "
                        "Detector.keras_model.summary() for layer names"
                    ) from None
                if len(chosen.output.shape) != 4:
                    raise YolocamError(
                        f"layer {layer!r} has output shape {tuple(chosen.output.shape)}; "
                        "a CAM needs a spatial (B, h, w, K) layer"
                    )
                graph = keras.Model(
                    model.inputs,
                    [chosen.output, model.outputs[scale]],
                    name=f"grad_{scale}_{layer}",
                )
                # Called eagerly under a tape: a tf.function would hide the path from
                # the layer's activations to the head output from the tape.
                self._gradient_models[key] = graph
            return self._gradient_models[key]

    def candidate_layers(self, scale: int) -> list[str]:
        """Layers a CAM can use for ``scale``: spatial (B, h, w, K) layers that feed
        the head, in model order (the default, ``heads[scale].cam_layer``, included)."""
        self._check_scale(scale)
        model = self.detector.keras_model
        head_layer = model.get_layer(self.detector.heads[scale].output_name)
        seen: set[str] = set()
        stack = list(head_layer._inbound_nodes)
        while stack:
            node = stack.pop()
            for parent in node.parent_nodes:
                name = parent.operation.name
                if name not in seen:
                    seen.add(name)
                    stack.extend(parent.operation._inbound_nodes)
        skip = (keras.layers.InputLayer, keras.layers.ZeroPadding2D)
        return [
            layer.name
            for layer in model.layers
            if layer.name in seen and not isinstance(layer, skip) and len(layer.output.shape) == 4
        ]

    # -- maps ------------------------------------------------------------------------

    def explain(
        self,
        image: np.ndarray | str | bytes | Forward,
        target: Target,
        method: str = "gradcam",
        scales: Sequence[int] | None = None,
        layer: str | Mapping[int, str] | None = None,
        norm: str = "auto",
    ) -> Explanation:
        """Explain one target at the requested scales (default: all).

        Args:
            image: (H, W, 3) uint8 RGB, a path or bytes, or a :class:`Forward`.
            target: what to explain.
            method: a name from :func:`yolocam_core.cams.method_names`.
            scales: head indices; None = all.
            layer: another layer for a scale: a name (only with one scale) or
                {scale: name}.
            norm: ``"shared"`` (one min–max over all explained scales, so they compare
                honestly), ``"per-map"`` (min–max per map, as the article) or
                ``"auto"`` (shared, but per map for :class:`SeedTarget`).

        Returns:
            An :class:`Explanation` with one :class:`ScaleMap` per scale.
        """
        return self.explain_many(image, [target], method, scales, layer, norm)[0]

    def explain_many(
        self,
        image: np.ndarray | str | bytes | Forward,
        targets: Sequence[Target],
        method: str = "gradcam",
        scales: Sequence[int] | None = None,
        layer: str | Mapping[int, str] | None = None,
        norm: str = "auto",
    ) -> list[Explanation]:
        """Explain many targets from one forward pass (one backward per scale for all).

        Each explanation also carries every head's score for its target
        (``scale_scores``) and each map's share of it, so that a weak scale is never
        mistaken for a confident one (see :attr:`ScaleMap.weak`).
        """
        cam = get_method(method)
        _check_norm(norm)
        fwd = image if isinstance(image, Forward) else self.forward(image)
        scales = list(range(self._num_heads)) if scales is None else list(scales)
        if not scales:
            raise ValueError("scales is empty; pass None for all scales")
        layers = self._layers_by_scale(scales, layer)
        per_target: list[list[tuple[int, str, np.ndarray, float]]] = [[] for _ in targets]
        for scale in scales:
            acts, grads, scores = self.gradients(
                fwd, targets, scale, layers.get(scale), cam.needs_gradients
            )
            for i in range(len(targets)):
                grid_map = cam.compute(acts, None if grads is None else grads[i])
                per_target[i].append(
                    (scale, self.layer_for(scale, layers.get(scale)), grid_map, float(scores[i]))
                )
        all_scores = self.scores(fwd, targets)
        return [
            self._finish(fwd, target, method, resolve_norm(norm, target), items, row)
            for target, items, row in zip(targets, per_target, all_scores, strict=True)
        ]

    def heatmaps(
        self, grid_maps: Sequence[np.ndarray], letterbox: Letterbox, norm: str = "per-map"
    ) -> list[np.ndarray]:
        """Raw (h_s, w_s) grid maps -> (H, W) float32 heatmaps in [0, 1] over the image.

        Bilinear resizing through ``letterbox`` (see :meth:`to_image`), then min–max
        normalisation per map or, with ``norm="shared"``, over all the given maps.
        """
        _check_norm(norm)
        if norm == "auto":
            raise ValueError('heatmaps() needs a resolved norm, "per-map" or "shared"')
        resized = [self.to_image(grid_map, letterbox) for grid_map in grid_maps]
        if norm == "shared":
            lo = min(float(r.min()) for r in resized)
            hi = max(float(r.max()) for r in resized)
            return [_minmax(r, lo, hi) for r in resized]
        return [_minmax(r, float(r.min()), float(r.max())) for r in resized]

    def with_heatmaps(self, explanation: Explanation) -> Explanation:
        """``explanation`` with its (H, W) heatmaps recomputed from its grid maps, over
        its ``image_size`` and with its ``norm``.

        Lets a cache keep only the small grid maps (see :meth:`Explanation.compact`)
        and rebuild the heatmaps of the one explanation shown.
        """
        letterbox = self.detector.letterbox_for(explanation.image_size)
        grid_maps = [m.grid_map for m in explanation.maps]
        heatmaps = self.heatmaps(grid_maps, letterbox, explanation.norm)
        maps = tuple(
            dataclasses.replace(m, heatmap=h)
            for m, h in zip(explanation.maps, heatmaps, strict=True)
        )
        return dataclasses.replace(explanation, maps=maps)

    def _finish(self, fwd, target, method, norm, items, scale_scores) -> Explanation:
        heatmaps = self.heatmaps([grid_map for _, _, grid_map, _ in items], fwd.letterbox, norm)
        relative, share = score_shares(scale_scores, signed=target.kind == "seed")
        maps = tuple(
            ScaleMap(
                scale=scale,
                label=self.detector.heads[scale].label,
                layer=layer,
                grid_map=grid_map.astype(np.float32),
                heatmap=heatmap,
                score=float(scale_scores[scale]),
                relative=None if relative is None else relative[scale],
                share=None if share is None else share[scale],
            )
            for (scale, layer, grid_map, _), heatmap in zip(items, heatmaps, strict=True)
        )
        own = getattr(target, "detection", None)
        return Explanation(
            method=method,
            target=target.label(self.detector.class_names),
            norm=norm,
            box_xyxy=target.box_xyxy,
            image_size=fwd.image.shape[:2],
            maps=maps,
            target_kind=target.kind,
            score_note=target.score_note(),
            scale_scores=tuple(float(v) for v in scale_scores),
            own_scale=None if own is None else int(own.scale),
        )

    def to_image(self, grid_map: np.ndarray, letterbox: Letterbox) -> np.ndarray:
        """(h, w) map over the network input -> (H, W) over the image (bilinear)."""
        net_h, net_w = self.detector.input_size
        img_h, img_w = letterbox.image_size
        if letterbox.offset_x == 0 and letterbox.offset_y == 0:
            if np.isclose(letterbox.scale_x, net_w / img_w) and np.isclose(
                letterbox.scale_y, net_h / img_h
            ):
                return cv2.resize(grid_map.astype(np.float32), (img_w, img_h))
        full = cv2.resize(grid_map.astype(np.float32), (net_w, net_h))
        x0, y0 = round(letterbox.offset_x), round(letterbox.offset_y)
        x1 = x0 + max(1, round(img_w * letterbox.scale_x))
        y1 = y0 + max(1, round(img_h * letterbox.scale_y))
        return cv2.resize(full[y0:y1, x0:x1], (img_w, img_h))

    def _layers_by_scale(self, scales, layer) -> dict[int, str]:
        for s in scales:
            self._check_scale(s)
        if layer is None:
            return {}
        if isinstance(layer, str):
            if len(scales) != 1:
                raise ValueError(
                    "layer= as a single name needs exactly one scale; pass {scale: layer} "
                    "to choose layers for several scales"
                )
            return {scales[0]: layer}
        chosen = {int(s): str(name) for s, name in layer.items()}
        extra = sorted(set(chosen) - set(scales))
        if extra:
            raise ValueError(
                f"layer= names scale(s) {', '.join(map(str, extra))} that are not being "
                f"explained (scales: {', '.join(map(str, scales))}); add them to scales= "
                "or drop them from layer="
            )
        return chosen

    def _check_scale(self, scale: int) -> None:
        if not 0 <= scale < self._num_heads:
            raise ValueError(
                f"scale {scale} does not exist; this model has scales "
                f"0..{self._num_heads - 1} "
                f"({', '.join(h.label for h in self.detector.heads)})"
            )


def _check_norm(norm: str) -> None:
    if norm not in NORMS:
        raise ValueError(f"norm must be one of {', '.join(NORMS)}; got {norm!r}")


def resolve_norm(norm: str, target: Target) -> str:
    """``"auto"`` -> ``"per-map"`` for the whole-head-output target (the article's
    view), ``"shared"`` for detection and class targets; other values unchanged."""
    _check_norm(norm)
    if norm != "auto":
        return norm
    return "per-map" if target.kind == "seed" else "shared"


def score_shares(
    scale_scores: Sequence[float], signed: bool = False
) -> tuple[list[float] | None, list[float] | None]:
    """Each head's score relative to the strongest head's, and its share of the sum.

    Args:
        scale_scores: (S,) the target's score at every head.
        signed: the score has no sign (the whole-head-output sum): no shares.

    Returns:
        (relative, share), each (S,) or None when ``signed`` or every score is <= 0.
    """
    values = np.asarray(scale_scores, np.float64)
    if signed or values.size == 0 or float(values.max()) <= 0.0:
        return None, None
    clipped = np.clip(values, 0.0, None)
    return (clipped / clipped.max()).tolist(), (clipped / clipped.sum()).tolist()


def _minmax(values: np.ndarray, lo: float, hi: float) -> np.ndarray:
    """Min–max normalise a float32 map to [0, 1], in place; a constant map becomes zeros."""
    if hi - lo <= 1e-12 * max(1.0, abs(hi)):
        values[...] = 0.0
        return values
    values -= np.float32(lo)
    values *= np.float32(1.0 / (hi - lo))
    np.clip(values, 0.0, 1.0, out=values)
    return values


def _feeds_only(model: keras.Model, layer_name: str, consumer_name: str) -> bool:
    """True when ``layer_name``'s output is used by ``consumer_name`` and nothing else."""
    layer = model.get_layer(layer_name)
    consumers = {node.operation.name for node in layer._outbound_nodes}
    consumer = model.get_layer(consumer_name)
    if not isinstance(consumer, keras.layers.Conv2D):
        return False
    return consumers == {consumer_name}
