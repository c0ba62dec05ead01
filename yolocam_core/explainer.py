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
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

import keras
import numpy as np
import tensorflow as tf

from yolocam_core.cams import CamMethod, default_method, get_method, method_layers
from yolocam_core.contraction import ConvTail, match_conv_tail
from yolocam_core.detector import (
    DEFAULT_MAX_DETECTIONS,
    Detections,
    Detector,
    Letterbox,
)
from yolocam_core.errors import YolocamError
from yolocam_core.images import load_image
from yolocam_core.keras_internals import ancestor_names, consumer_names
from yolocam_core.norms import check_norm
from yolocam_core.tails import Tail
from yolocam_core.targets import (
    ClassTarget,
    ScoreContext,
    Target,
    TargetWeights,
    class_index,
    some_class_names,
    weighted_score,
)

#: A progress callback: ``progress(done, total)`` (e.g. masks done of all masks).
Progress = Callable[[int, int], None]
#: Targets whose gradients are held at once (bounds memory for deep layers).
TARGET_CHUNK = 16
#: From this many targets, channel-contracted methods (ODAM, HiResCAM) go through
#: :mod:`yolocam_core.contraction` where the tail allows (one convolution for all
#: targets); below it, crops around one target's cells cost less.
CONTRACT_FROM = 2

#: A scale whose score is below this fraction of the strongest scale's score is *weak*:
#: its map is drawn with a marker, never as a confident map on its own.
WEAK_RELATIVE = 0.01


class OnDemandHeatmaps:
    """The (H, W) heatmaps of one explanation's maps, made together on first read.

    Resizing every map to the image is most of the cost of explaining many targets;
    a caller that shows one of them pays for that one only. Thread-safe; pickles (and
    copies) as the made arrays, never the function that makes them.

    Args:
        make: () -> one (H, W) float32 heatmap per map, in order.
    """

    def __init__(self, make: Callable[[], list[np.ndarray]]):
        self._make: Callable[[], list[np.ndarray]] | None = make
        self._made: list[np.ndarray] | None = None
        self._lock = threading.Lock()

    def __getitem__(self, index: int) -> np.ndarray:
        with self._lock:
            if self._made is None:
                assert self._make is not None
                self._made = self._make()
                self._make = None
        return self._made[index]

    def entry(self, index: int) -> _Deferred:
        """The value to give :class:`ScaleMap` as its ``heatmap``: map ``index``."""
        return _Deferred(self, index)


@dataclass(frozen=True)
class _Deferred:
    heatmaps: OnDemandHeatmaps
    index: int

    def __reduce__(self):
        return (np.asarray, (self.heatmaps[self.index],))


class _HeatmapField:
    """``ScaleMap.heatmap``: stored as given, an array or an :class:`OnDemandHeatmaps`
    entry that is made on first read."""

    def __set_name__(self, owner, name: str) -> None:
        self._slot = "_" + name

    def __get__(self, obj, owner=None) -> np.ndarray:
        if obj is None:
            raise AttributeError(self._slot)  # no default: the field stays required
        try:
            value = obj.__dict__[self._slot]
        except KeyError:
            try:  # pickled before the field was a descriptor
                value = obj.__dict__[self._slot[1:]]
            except KeyError:
                raise AttributeError(self._slot[1:]) from None
        if isinstance(value, _Deferred):
            return value.heatmaps[value.index]
        return value

    def __set__(self, obj, value) -> None:
        obj.__dict__[self._slot] = value


@dataclass(frozen=True)
class ScaleMap:
    """One scale's explanation.

    Attributes:
        scale: head index.
        label: e.g. ``"13×13 · stride 32"``.
        layer: the layer whose activations were used.
        grid_map: (h, w) float32 raw map at the layer's resolution, not normalised.
        heatmap: (H, W) float32 map resized to the image and normalised to [0, 1]
            (made on first read when the explainer gives it on demand, see
            :class:`OnDemandHeatmaps`).
        score: the explained score at this scale (see :meth:`Target.score_note`).
        relative: ``score`` over the largest score of any head of the model, or None
            when the score has no sign (the whole-head-output target).
        share: ``score`` over the sum of all heads' scores, or None (as ``relative``).
    """

    scale: int
    label: str
    layer: str
    grid_map: np.ndarray
    heatmap: np.ndarray = _HeatmapField()  # type: ignore[assignment]
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
        attribute: which part of the predictions is explained (``"score"``,
            ``"objectness"`` or a box coordinate, :data:`targets.ATTRIBUTES`).
        score_note: what "score" means for this target (see :meth:`Target.score_note`).
        scale_scores: the target's score at every head of the model (explained or
            not), by head index.
        scale_labels: every head's label (e.g. ``"13×13 · stride 32"``), by head index.
        own_scale: the head that predicted the explained detection, or None.
        range_maps: with ``norm="shared"`` and fewer maps than heads, the other heads'
            raw maps: they take part in the shared colour range only.
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
    scale_labels: tuple[str, ...] = ()
    own_scale: int | None = None
    range_maps: tuple[np.ndarray, ...] = ()
    attribute: str = "score"

    @property
    def comparable(self) -> bool:
        """Whether the scales' scores share a unit (a probability or a sum of them),
        as :attr:`targets.Target.comparable`: not for the whole head output or a box
        coordinate."""
        return self.target_kind != "seed" and self.attribute in ("score", "objectness")

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
        captured: (1, h, w, K) outputs of every layer the registered methods explain at
            by default (and of the layers their tails read), by layer name.
    """

    image: np.ndarray
    letterbox: Letterbox
    tensor: np.ndarray
    activations: tuple[tf.Tensor, ...]
    raws: tuple[tf.Tensor, ...]
    decoded: tuple[tuple[np.ndarray, np.ndarray, np.ndarray], ...]
    captured: Mapping[str, tf.Tensor] = field(default_factory=dict)


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
        n = len(detector.heads)
        self._cam_layers = tuple(h.cam_layer for h in detector.heads)
        self._tails = tuple(model.get_layer(h.output_name) for h in detector.heads)
        self._tail_exact = tuple(
            _feeds_only(model, h.cam_layer, h.output_name) for h in detector.heads
        )
        self._num_heads = n
        self._lock = threading.Lock()
        self._gradient_models: dict[tuple[int, str], keras.Model] = {}
        self._layer_tails: dict[tuple[int, str], Tail | None] = {}
        self._tail_functions: dict[tuple[int, str], Callable] = {}
        self._capture_models: dict[tuple[str, ...], Callable] = {}
        # Layers the registered methods explain at by default, with what their tails read.
        captured: list[str] = []
        for scale in range(n):
            for name in method_layers(detector, scale):
                if name == self._cam_layers[scale] or name in captured:
                    continue
                tail = self.tail(scale, name)
                if tail is None:
                    continue
                captured += [x for x in (name, *tail.side_inputs) if x not in captured]
        self._captured = tuple(captured)
        features = keras.Model(
            model.inputs,
            [model.get_layer(name).output for name in self._cam_layers]
            + [model.get_layer(name).output for name in self._captured]
            + list(model.outputs),
            name=f"{model.name}_features",
        )
        k = len(self._captured)

        def run_features(x):
            outs = features(x, training=False)
            raws = outs[n + k :]
            decoded = [(d["boxes"], d["objectness"], d["scores"]) for d in detector.decode(raws)]
            return tuple(outs[:n]), tuple(outs[n : n + k]), tuple(raws), tuple(decoded)

        self._features = tf.function(
            run_features,
            input_signature=[tf.TensorSpec((None, *detector.input_size, 3), tf.float32)],
        )
        self._tail_gradients = tuple(self._compile_tail(scale) for scale in range(n))
        self._cotangents = tuple(self._compile_cotangents(scale) for scale in range(n))
        self._conv_tails: dict[tuple[int, str], ConvTail | None] = {}

    # -- forward ---------------------------------------------------------------------

    def forward(self, image: np.ndarray | str | bytes) -> Forward:
        """Run the compiled forward pass once: activations and raw outputs of all scales."""
        image = load_image(image)
        tensor, letterbox = self.detector.preprocess(image)
        acts, extra, raws, decoded = self._features(tf.constant(tensor))
        decoded = tuple(tuple(t.numpy() for t in head) for head in decoded)
        captured = dict(zip(self._cam_layers, acts, strict=True))
        captured.update(zip(self._captured, extra, strict=True))
        return Forward(image, letterbox, tensor, tuple(acts), tuple(raws), decoded, captured)

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

    def tail(self, scale: int, layer: str) -> Tail | None:
        """The cached :class:`~yolocam_core.tails.Tail` from ``layer`` to head ``scale``,
        or None when the model's graph does not let one be isolated."""
        key = (scale, layer)
        with self._lock:
            if key not in self._layer_tails:
                try:
                    self._layer_tails[key] = Tail(
                        self.detector.keras_model,
                        layer,
                        self.detector.heads[scale].output_name,
                        self.detector.input_size,
                    )
                except (YolocamError, ValueError, AttributeError, IndexError):
                    self._layer_tails[key] = None
            return self._layer_tails[key]

    def gradients(
        self,
        fwd: Forward,
        targets: Sequence[Target],
        scale: int,
        layer: str | None = None,
        need_gradients: bool = True,
    ) -> tuple[np.ndarray, np.ndarray | None, np.ndarray]:
        """Activations and per-target gradients at one scale's layer.

        Three exact ways, fastest first: the head's final convolution alone (the
        default layer, when it feeds nothing else); the layer's :class:`Tail` run on
        crops around each target's cells (or densely, for targets spread over the grid;
        a layer the forward did not capture costs one more compiled forward); a tape
        through the whole network when no tail can be isolated. All three equal a tape
        through the whole network.

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
        weights = self._target_weights(fwd, targets, scale)
        stacked = self._stack_weights(weights, head)
        default_layer = layer is None or layer == self._cam_layers[scale]
        name = self.layer_for(scale, layer)
        if not need_gradients:
            values = self._weighted_values(fwd, scale, *stacked)
            return self._activations(fwd, name)[0].numpy(), None, values
        if default_layer and self._tail_exact[scale]:
            grads, scores = self._tail_gradients[scale](fwd.activations[scale], *stacked)
            return fwd.activations[scale][0].numpy(), grads.numpy(), scores.numpy()
        tail = self.tail(scale, name)
        if tail is not None:
            return self._gradients_by_tail(fwd, scale, name, tail, weights, stacked)
        return self._gradients_general(fwd, scale, name, *stacked)

    def contracted_maps(
        self,
        fwd: Forward,
        targets: Sequence[Target],
        scale: int,
        layer: str,
        stacked: tuple[np.ndarray, ...] | None = None,
    ) -> np.ndarray | None:
        """``sum_k A · dS/dA`` of every target at ``layer``, through a tail of one
        spatial convolution (see :mod:`yolocam_core.contraction`), or None when the
        layer's tail has another shape.

        Args:
            stacked: the targets' stacked weights at ``scale`` (see
                :meth:`_stack_weights`), when the caller has them already.

        Returns:
            (N, h, w) float32, not clipped; equal to contracting :meth:`gradients`.
        """
        conv_tail = self._conv_tail(scale, layer)
        if conv_tail is None:
            return None
        acts = self._activations(fwd, layer)[0].numpy()
        if conv_tail.activation_layer is None:
            slopes = np.ones((*acts.shape[:2], conv_tail.head.shape[0]), np.float32)
        else:
            slopes = conv_tail.slopes(self._activations(fwd, conv_tail.activation_layer)[0].numpy())
        if stacked is None:
            stacked = self._stack_weights(
                self._target_weights(fwd, targets, scale), self.detector.heads[scale]
            )
        raw_w, score_w, obj_w, box_w = stacked
        n, h, w, r = raw_w.shape
        # dS/draw is non-zero only at the cells a target weighs: computed there alone
        weighed = TargetWeights(raw_w, score_w, obj_w, box_w).support().reshape(n, h * w)
        target, cell = np.nonzero(weighed)
        raw = fwd.raws[scale].numpy().reshape(h * w, r)[cell]
        rows = np.stack([target, cell], axis=1)
        a, c = score_w.shape[3:]
        at = target * h * w + cell
        cotangents = self._cotangents[scale](
            raw,
            raw_w.reshape(n * h * w, r)[at],
            score_w.reshape(n * h * w, a, c)[at],
            obj_w.reshape(n * h * w, a)[at],
            box_w.reshape(n * h * w, a, 4)[at],
        ).numpy()
        return conv_tail.maps(acts, slopes, rows, cotangents, n)

    def _conv_tail(self, scale: int, layer: str) -> ConvTail | None:
        key = (scale, layer)
        with self._lock:
            if key in self._conv_tails:
                return self._conv_tails[key]
        tail = self.tail(scale, layer)
        found = None
        if tail is not None and not tail.side_inputs:
            found = match_conv_tail(self.detector.keras_model, tail.layers)
        with self._lock:
            return self._conv_tails.setdefault(key, found)

    def _compile_cotangents(self, scale: int) -> Callable:
        """Compiled dS/draw at single cells: raw (M, R) and the weights at those cells
        (M, R), (M, A, C), (M, A), (M, A, 4) -> (M, R). Exact: the decoding is per cell,
        and a cell's position shifts its box centre without changing the derivative."""
        head = self.detector.heads[scale]
        input_size = self.detector.input_size
        a, c = head.num_anchors, head.num_classes

        @tf.function(
            input_signature=[
                tf.TensorSpec((None, a * (5 + c)), tf.float32),
                tf.TensorSpec((None, a * (5 + c)), tf.float32),
                tf.TensorSpec((None, a, c), tf.float32),
                tf.TensorSpec((None, a), tf.float32),
                tf.TensorSpec((None, a, 4), tf.float32),
            ],
            autograph=False,
        )
        def cotangents(raw, raw_w, score_w, obj_w, box_w):
            def cells(x):  # (M, ...) -> (M, 1, 1, ...): one 1×1 crop per cell
                return tf.expand_dims(tf.expand_dims(x, 1), 1)

            with tf.GradientTape() as tape:
                tape.watch(raw)
                scores = weighted_score(
                    cells(raw),
                    head,
                    input_size,
                    cells(raw_w),
                    cells(score_w),
                    cells(obj_w),
                    cells(box_w),
                )
            return tape.gradient(scores, raw)

        return cotangents

    def _target_weights(self, fwd: Forward, targets: Sequence[Target], scale: int):
        head = self.detector.heads[scale]
        boxes, _, scores = fwd.decoded[scale]
        ctx = ScoreContext(head, self.detector.input_size, fwd.letterbox, boxes[0], scores[0])
        return [t.weights(ctx) for t in targets]

    def _activations(self, fwd: Forward, layer: str) -> tf.Tensor:
        """(1, h, w, K) output of ``layer`` for this forward (captured, or computed)."""
        if layer in fwd.captured:
            return fwd.captured[layer]
        return self._capture(fwd, (layer,))[0]

    def _capture(self, fwd: Forward, layers: tuple[str, ...]) -> tuple[tf.Tensor, ...]:
        """Outputs of layers the forward did not capture (one more compiled forward)."""
        with self._lock:
            if layers not in self._capture_models:
                model = self.detector.keras_model
                outs = []
                for name in layers:
                    try:
                        outs.append(model.get_layer(name).output)
                    except ValueError:
                        raise YolocamError(
                            f"no layer named {name!r} in the model; see the Model page or "
                            "Detector.keras_model.summary() for layer names"
                        ) from None
                sub = keras.Model(model.inputs, outs)
                self._capture_models[layers] = tf.function(
                    lambda x, sub=sub: sub(x, training=False),
                    input_signature=[
                        tf.TensorSpec((None, *self.detector.input_size, 3), tf.float32)
                    ],
                )
            run = self._capture_models[layers]
        outs = run(tf.constant(fwd.tensor))
        return tuple(outs) if isinstance(outs, list | tuple) else (outs,)

    def scores(
        self,
        fwd: Forward,
        targets: Sequence[Target],
        known: Mapping[int, np.ndarray] | None = None,
    ) -> np.ndarray:
        """Every target's score at every head, from the forward pass alone.

        Args:
            known: {scale: (N,) scores} already computed (not recomputed).

        Returns:
            (N, S) float32: target n's score at head s (see :meth:`Target.score_note`).
        """
        out = np.zeros((len(targets), self._num_heads), np.float32)
        for scale, head in enumerate(self.detector.heads):
            if known is not None and scale in known:
                out[:, scale] = known[scale]
                continue
            weights = self._target_weights(fwd, targets, scale)
            out[:, scale] = self._weighted_values(fwd, scale, *self._stack_weights(weights, head))
        return out

    def _weighted_values(self, fwd: Forward, scale: int, raw_w, score_w, obj_w, box_w):
        """(N,) scores of stacked weights (see :func:`weighted_score`), in NumPy."""
        raw = fwd.raws[scale].numpy()
        boxes, objectness, scores = fwd.decoded[scale]
        in_h, in_w = self.detector.input_size
        boxes_px = boxes * np.array([in_w, in_h, in_w, in_h], np.float32)
        values = (
            np.einsum("bhwc,nhwc->n", raw, raw_w)
            + np.einsum("bhwak,nhwak->n", scores, score_w)
            + np.einsum("bhwa,nhwa->n", objectness, obj_w)
            + np.einsum("bhwak,nhwak->n", boxes_px, box_w)
        )
        return values.astype(np.float32)

    @staticmethod
    def _stack_weights(weights: Sequence[TargetWeights], head) -> tuple[np.ndarray, ...]:
        """Per-target weights -> raw (N, h, w, A·(5+C)), scores (N, h, w, A, C),
        objectness (N, h, w, A) and boxes (N, h, w, A, 4)."""
        h, w = head.grid
        a, c = head.num_anchors, head.num_classes
        n = len(weights)
        raw_w = np.zeros((n, h, w, a * (5 + c)), np.float32)
        score_w = np.zeros((n, h, w, a, c), np.float32)
        obj_w = np.zeros((n, h, w, a), np.float32)
        box_w = np.zeros((n, h, w, a, 4), np.float32)
        for i, tw in enumerate(weights):
            if tw.raw is not None:
                raw_w[i] = tw.raw
            if tw.scores is not None:
                score_w[i] = tw.scores
            if tw.objectness is not None:
                obj_w[i] = tw.objectness
            if tw.boxes is not None:
                box_w[i] = tw.boxes
        return raw_w, score_w, obj_w, box_w

    def _compile_tail(self, scale: int):
        """Compiled (acts (1,h,w,K), weights...) -> (grads (N,h,w,K), scores (N,))."""
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
                tf.TensorSpec((None, h, w, a), tf.float32),
                tf.TensorSpec((None, h, w, a, 4), tf.float32),
            ]
        )
        def tail_gradients(acts, raw_w, score_w, obj_w, box_w):
            tiled = tf.repeat(acts, tf.shape(raw_w)[0], axis=0)
            with tf.GradientTape() as tape:
                tape.watch(tiled)
                scores = weighted_score(tail(tiled), head, input_size, raw_w, score_w, obj_w, box_w)
            return tape.gradient(scores, tiled), scores

        return tail_gradients

    def _tail_function(self, scale: int, layer: str, tail: Tail) -> Callable:
        """Compiled gradient of stacked targets through a :class:`Tail`, any crop size."""
        key = (scale, layer)
        with self._lock:
            if key in self._tail_functions:
                return self._tail_functions[key]
        head = self.detector.heads[scale]
        model = self.detector.keras_model
        input_size = self.detector.input_size
        a, c = head.num_anchors, head.num_classes

        def channels(name):
            return int(model.get_layer(name).output.shape[-1])

        @tf.function(
            input_signature=[
                tf.TensorSpec((None, None, None, channels(layer)), tf.float32),
                [
                    tf.TensorSpec((None, None, None, channels(x)), tf.float32)
                    for x in tail.side_inputs
                ],
                tf.TensorSpec((None, None, None, a * (5 + c)), tf.float32),
                tf.TensorSpec((None, None, None, a, c), tf.float32),
                tf.TensorSpec((None, None, None, a), tf.float32),
                tf.TensorSpec((None, None, None, a, 4), tf.float32),
                tf.TensorSpec((None, 2), tf.float32),
            ],
            autograph=False,  # plain Python over the tail's layers: nothing to convert
        )
        def gradients(source, sides, raw_w, score_w, obj_w, box_w, offsets):
            with tf.GradientTape() as tape:
                tape.watch(source)
                raw = tail(source, sides)
                scores = weighted_score(
                    raw, head, input_size, raw_w, score_w, obj_w, box_w, offsets
                )
            return tape.gradient(scores, source), scores

        @tf.function(
            input_signature=[
                tf.TensorSpec((1, None, None, channels(layer)), tf.float32),
                [tf.TensorSpec((1, None, None, channels(x)), tf.float32) for x in tail.side_inputs],
                tf.TensorSpec((None, None, None, a * (5 + c)), tf.float32),
                tf.TensorSpec((None, None, None, a, c), tf.float32),
                tf.TensorSpec((None, None, None, a), tf.float32),
                tf.TensorSpec((None, None, None, a, 4), tf.float32),
            ],
            autograph=False,
        )
        def dense(source, sides, raw_w, score_w, obj_w, box_w):
            """The whole map: the tail's forward once, then one backward per target
            (vectorised over the targets' cotangents on the head output)."""
            with tf.GradientTape(persistent=True) as tape:
                tape.watch(source)
                raw = tail(source, sides)
                tiled = tf.repeat(raw, tf.shape(raw_w)[0], axis=0)
                tape.watch(tiled)
                scores = weighted_score(tiled, head, input_size, raw_w, score_w, obj_w, box_w)
            cotangents = tape.gradient(scores, tiled)  # (N, h, w, A·(5+C))
            grads = tf.vectorized_map(
                lambda cot: tape.gradient(raw, source, output_gradients=cot[None])[0], cotangents
            )
            return grads, scores

        with self._lock:
            self._tail_functions.setdefault(key, (gradients, dense))
            return self._tail_functions[key]

    def _gradients_by_tail(self, fwd, scale, layer, tail: Tail, weights, stacked):
        """Gradients through the layer's tail: on crops around each target's cells where
        a crop is under half the map, else on the whole map (one forward of the tail,
        one backward per target)."""
        run, run_dense = self._tail_function(scale, layer, tail)
        names = (layer, *tail.side_inputs)
        missing = tuple(n for n in names if n not in fwd.captured)
        values = dict(fwd.captured)
        if missing:  # layers no registered method uses by default: one more forward
            values.update(zip(missing, self._capture(fwd, missing), strict=True))
        source = values[layer]
        sides = [values[name] for name in tail.side_inputs]
        n = len(weights)
        acts = source[0].numpy()
        grads = np.zeros((n, *acts.shape), np.float32)
        scores = np.zeros(n, np.float32)
        boxes = np.zeros((n, 4), np.int64)
        for i, tw in enumerate(weights):
            rows, cols = np.nonzero(tw.support())
            if rows.size == 0:  # a target with no weight at this scale: zero gradient
                boxes[i] = (0, 0, 0, 0)
                continue
            boxes[i] = (rows.min(), cols.min(), rows.max(), cols.max())
        windows: dict[tuple[int, int], list[tuple[int, np.ndarray]]] = {}
        dense: list[int] = []
        in_h, in_w = self.detector.input_size
        for i in range(n):
            crop = tail.crops(boxes[i : i + 1])
            # a crop costs its area twice (forward and backward); the whole map costs
            # its area once per target plus one shared forward
            if crop is None or 2 * crop.size[0] * crop.size[1] > in_h * in_w:
                dense.append(i)
            else:
                windows.setdefault(crop.size, []).append((i, crop.pixels[0]))
        if dense:
            rows_ = np.array(dense)
            g, v = run_dense(source, sides, *(w[rows_] for w in stacked))
            grads[rows_] = g.numpy()
            scores[rows_] = v.numpy()
        head_stride = tail.head_stride
        for size, members in windows.items():
            rows_ = np.array([i for i, _ in members])
            pixels = np.stack([p for _, p in members])
            crop = _crop_of(pixels, size)
            src_o, (sh, sw) = crop.cells(tail.source_stride)
            src = _gather(source, src_o, (sh, sw))
            side_crops = []
            for x, stride in zip(sides, tail.side_strides, strict=True):
                o, (ch, cw) = crop.cells(stride)
                side_crops.append(_gather(x, o, (ch, cw)))
            ho, (hh, hw) = crop.cells(head_stride)
            cropped = [
                np.stack(
                    [w[i, r : r + hh, c : c + hw] for i, (r, c) in zip(rows_, ho, strict=True)]
                )
                for w in stacked
            ]
            g, v = run(src, side_crops, *cropped, ho.astype(np.float32))
            g = g.numpy()
            for j, (i, (r, c)) in enumerate(zip(rows_, src_o, strict=True)):
                grads[i, r : r + sh, c : c + sw] = g[j]
            scores[rows_] = v.numpy()
        return acts, grads, scores

    def _gradients_general(self, fwd, scale, layer, raw_w, score_w, obj_w, box_w):
        """Tape through ``image -> [layer, head]``, the image repeated once per target."""
        model = self.gradient_model(scale, layer)
        head = self.detector.heads[scale]
        x = tf.repeat(tf.constant(fwd.tensor), raw_w.shape[0], axis=0)
        with tf.GradientTape() as tape:
            acts, raw = model(x, training=False)
            scores = weighted_score(
                raw, head, self.detector.input_size, raw_w, score_w, obj_w, box_w
            )
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
        seen = ancestor_names(head_layer)
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
        method: str | CamMethod | None = None,
        scales: Sequence[int] | None = None,
        layer: str | Mapping[int, str] | None = None,
        norm: str = "auto",
        progress: Progress | None = None,
    ) -> Explanation:
        """Explain one target at the requested scales (default: all).

        Args:
            image: (H, W, 3) uint8 RGB, a path or bytes, or a :class:`Forward`.
            target: what to explain.
            method: a name from :func:`yolocam_core.cams.method_names`, or a configured
                method instance such as ``DRise(masks=500, seed=1)``; None = the
                target kind's default (:func:`yolocam_core.cams.default_method`:
                ``odam`` for a detection, ``gradcam`` for a class, ``seed`` for the
                whole head output).
            scales: head indices; None = all.
            layer: another layer for a scale: a name (only with one scale) or
                {scale: name}; replaces the method's own layers (expert option).
            norm: ``"shared"`` (each map above its own minimum, over the largest
                range of every head's map, so scales compare honestly: every head is
                computed for it even when ``scales`` names fewer), ``"per-map"``
                (min–max per map, as the article) or
                ``"auto"`` (shared, but per map for :class:`SeedTarget` and box
                coordinates, whose scores are not strengths).
            progress: ``progress(done, total)`` while the maps are computed (masks for
                D-RISE, scales for the gradient methods).

        Returns:
            An :class:`Explanation` with one :class:`ScaleMap` per scale.

        Raises:
            YolocamError: the method cannot give a meaningful map of this target (the
                message says what to use instead).
        """
        return self.explain_many(image, [target], method, scales, layer, norm, progress)[0]

    def _class_by_index(self, target: Target) -> Target:
        """``target``, a :class:`ClassTarget` given a class name as the same class by
        its index.

        Raises:
            YolocamError: a class name the detector does not know, or a class id that
                is not an index into its class names.
        """
        if not isinstance(target, ClassTarget):
            return target
        names = self.detector.class_names
        class_id = target.class_id
        if isinstance(class_id, str):
            index = class_index(class_id, names)
            if index is None:
                raise YolocamError(
                    f"ClassTarget({class_id!r}): unknown class; {some_class_names(names, class_id)}"
                )
            return dataclasses.replace(target, class_id=index)
        if isinstance(class_id, bool) or not isinstance(class_id, int | np.integer):
            raise YolocamError(
                f"ClassTarget({class_id!r}): give a class name or an index into the "
                f"detector's class_names (0..{len(names) - 1})"
            )
        if not 0 <= class_id < len(names):
            raise YolocamError(
                f"ClassTarget({class_id}): no such class; this model has {len(names)} "
                f"classes, 0..{len(names) - 1}"
            )
        return target

    def explain_many(
        self,
        image: np.ndarray | str | bytes | Forward,
        targets: Sequence[Target],
        method: str | CamMethod | None = None,
        scales: Sequence[int] | None = None,
        layer: str | Mapping[int, str] | None = None,
        norm: str = "auto",
        progress: Progress | None = None,
    ) -> list[Explanation]:
        """Explain many targets from one forward pass (one backward per scale for all;
        for D-RISE, one set of masked forwards for all).

        Each explanation also carries every head's score for its target
        (``scale_scores``) and each map's share of it, so that a weak scale is never
        mistaken for a confident one (see :attr:`ScaleMap.weak`).
        """
        targets = [self._class_by_index(t) for t in targets]
        if method is None:
            method = default_method(t.kind for t in targets)
        cam = get_method(method)
        check_norm(norm)
        for target in targets:
            cam.check_target(target)
        fwd = image if isinstance(image, Forward) else self.forward(image)
        scales = list(range(self._num_heads)) if scales is None else list(scales)
        if not scales:
            raise ValueError("scales is empty; pass None for all scales")
        layers = self._layers_by_scale(scales, layer)
        shown = list(scales)
        if any(resolve_norm(norm, t) == "shared" for t in targets):
            # a shared colour scale is the range of every head's map, shown or not
            scales = [*shown, *(s for s in range(self._num_heads) if s not in shown)]
        per_target: list[list[tuple[int, str, np.ndarray]]] = [[] for _ in targets]
        known: dict[int, np.ndarray] = {}  # scale -> (N,) scores computed on the way
        if cam.black_box:
            if layers:
                raise YolocamError(f"{cam.name} works on the image; it takes no layer=")
            self._black_box_maps(cam, fwd, targets, scales, per_target, progress)
        else:
            for done, scale in enumerate(scales, 1):
                names = (layers[scale],) if scale in layers else cam.layers(self.detector, scale)
                label = "+".join(names)
                stacked = None
                if cam.contracts and len(targets) >= CONTRACT_FROM:
                    # the targets' weights at this scale, once: the contraction's chunks
                    # and the scores below read them
                    stacked = self._stack_weights(
                        self._target_weights(fwd, targets, scale), self.detector.heads[scale]
                    )
                    known[scale] = self._weighted_values(fwd, scale, *stacked)
                for start in range(0, len(targets), TARGET_CHUNK):
                    chunk = targets[start : start + TARGET_CHUNK]
                    contracted = None
                    if stacked is not None and len(chunk) >= CONTRACT_FROM:
                        part = tuple(w[start : start + len(chunk)] for w in stacked)
                        contracted = [
                            self.contracted_maps(fwd, chunk, scale, n, part) for n in names
                        ]
                    if contracted is not None and all(c is not None for c in contracted):
                        for i in range(len(chunk)):
                            maps = [cam.from_contraction(c[i]) for c in contracted]
                            per_target[start + i].append((scale, label, cam.combine(maps)))
                        continue
                    per_layer = [
                        self.gradients(fwd, chunk, scale, name, cam.needs_gradients)
                        for name in names
                    ]
                    for i in range(len(chunk)):
                        maps = [
                            cam.compute(acts, None if grads is None else grads[i])
                            for acts, grads, _ in per_layer
                        ]
                        per_target[start + i].append((scale, label, cam.combine(maps)))
                stacked = None
                if progress is not None:
                    progress(done, len(scales))
        all_scores = self.scores(fwd, targets, known)
        return [
            self._finish(fwd, target, cam.name, resolve_norm(norm, target), items, row, shown)
            for target, items, row in zip(targets, per_target, all_scores, strict=True)
        ]

    def _black_box_maps(self, cam, fwd, targets, scales, per_target, progress) -> None:
        """D-RISE maps (per head) of every target, from one set of masks."""
        result = cam.saliency(self, fwd, [t.detection for t in targets], progress)
        precision = "" if result.precision == "float32" else f", {result.precision} forwards"
        label = f"input ({cam.describe()}{precision})"
        for i in range(len(targets)):
            for scale in scales:
                per_target[i].append((scale, label, result.per_head[i, scale]))

    def compiled(self, key, build: Callable[[], Callable]) -> Callable:
        """A compiled function built once per explainer (e.g. D-RISE's batch)."""
        with self._lock:
            if key not in self._capture_models:
                self._capture_models[key] = build()
            return self._capture_models[key]

    def heatmaps(
        self, grid_maps: Sequence[np.ndarray], letterbox: Letterbox, norm: str = "per-map"
    ) -> list[np.ndarray]:
        """Raw (h_s, w_s) grid maps -> (H, W) float32 heatmaps in [0, 1] over the image.

        Bilinear resizing through ``letterbox`` (see :meth:`to_image`), then min–max
        normalisation per map or, with ``norm="shared"``, each map minus its own
        minimum over the largest (max − min) of all the given maps.
        """
        return image_heatmaps(grid_maps, letterbox, norm)

    def with_heatmaps(self, explanation: Explanation) -> Explanation:
        """``explanation`` with its (H, W) heatmaps remade from its grid maps, over its
        ``image_size`` and with its ``norm`` (on first read).

        Lets a cache keep only the small grid maps (see :meth:`Explanation.compact`)
        and rebuild the heatmaps of the one explanation shown.
        """
        letterbox = self.detector.letterbox_for(explanation.image_size)
        grid_maps = [m.grid_map for m in explanation.maps]
        heatmaps = self._on_demand(grid_maps, letterbox, explanation.norm, explanation.range_maps)
        maps = tuple(
            dataclasses.replace(m, heatmap=heatmaps.entry(i))
            for i, m in enumerate(explanation.maps)
        )
        return dataclasses.replace(explanation, maps=maps)

    @staticmethod
    def _on_demand(
        grid_maps, letterbox: Letterbox, norm: str, range_maps: Sequence[np.ndarray] = ()
    ) -> OnDemandHeatmaps:
        """Heatmaps made on first read; holds the grid maps and the letterbox only (not
        the explainer, so an unread explanation keeps no model alive)."""
        grid_maps = list(grid_maps)
        return OnDemandHeatmaps(lambda: image_heatmaps(grid_maps, letterbox, norm, range_maps))

    def _finish(self, fwd, target, method, norm, items, scale_scores, shown) -> Explanation:
        """The explanation of ``shown`` scales; ``items`` may hold more (every head, for
        a shared colour scale), whose maps then set the range only."""
        others = tuple(
            m.astype(np.float32) for s, _, m in items if s not in shown and norm == "shared"
        )
        items = [item for item in items if item[0] in shown]
        heatmaps = self._on_demand([m for _, _, m in items], fwd.letterbox, norm, others)
        relative, share = score_shares(scale_scores, signed=not target.comparable)
        maps = tuple(
            ScaleMap(
                scale=scale,
                label=self.detector.heads[scale].label,
                layer=layer,
                grid_map=grid_map.astype(np.float32),
                heatmap=heatmaps.entry(i),
                score=float(scale_scores[scale]),
                relative=None if relative is None else relative[scale],
                share=None if share is None else share[scale],
            )
            for i, (scale, layer, grid_map) in enumerate(items)
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
            attribute=target.attribute,
            score_note=target.score_note(),
            scale_scores=tuple(float(v) for v in scale_scores),
            scale_labels=tuple(h.label for h in self.detector.heads),
            own_scale=None if own is None else int(own.scale),
            range_maps=others,
        )

    def to_image(self, grid_map: np.ndarray, letterbox: Letterbox) -> np.ndarray:
        """(h, w) map over the network input -> (H, W) over the image (bilinear);
        see :meth:`Letterbox.map_to_image`."""
        return letterbox.map_to_image(grid_map)

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


def resolve_norm(norm: str, target: Target) -> str:
    """``"auto"`` -> ``"per-map"`` for the whole-head-output target (the article's
    view) and for box coordinates (their per-scale scores are positions, not
    strengths), ``"shared"`` for the class score and objectness of detection and class
    targets; other values unchanged."""
    check_norm(norm)
    if norm != "auto":
        return norm
    return "shared" if target.comparable else "per-map"


def score_shares(
    scale_scores: Sequence[float], signed: bool = False
) -> tuple[list[float] | None, list[float] | None]:
    """Each head's score relative to the strongest head's, and its share of the sum.

    Args:
        scale_scores: (S,) the target's score at every head.
        signed: the score is no strength (the whole-head-output sum, a box
            coordinate): no shares.

    Returns:
        (relative, share), each (S,) or None when ``signed`` or every score is <= 0.
    """
    values = np.asarray(scale_scores, np.float64)
    if signed or values.size == 0 or float(values.max()) <= 0.0:
        return None, None
    clipped = np.clip(values, 0.0, None)
    return (clipped / clipped.max()).tolist(), (clipped / clipped.sum()).tolist()


def image_heatmaps(
    grid_maps: Sequence[np.ndarray],
    letterbox: Letterbox,
    norm: str = "per-map",
    range_maps: Sequence[np.ndarray] = (),
) -> list[np.ndarray]:
    """Raw (h_s, w_s) grid maps -> (H, W) float32 heatmaps in [0, 1] over the image
    (see :meth:`Explainer.heatmaps`); ``range_maps`` (other heads' maps) take part in
    a shared range only."""
    check_norm(norm)
    if norm == "auto":
        raise ValueError('heatmaps() needs a resolved norm, "per-map" or "shared"')
    resized = [letterbox.map_to_image(grid_map) for grid_map in grid_maps]
    lows = [float(r.min()) for r in resized]
    if norm == "shared":
        # each map above its own floor (D-RISE's maps sit on a baseline every pixel
        # gets), over the largest range of every head's map: a weak scale stays faint
        span = max(float(r.max()) - lo for r, lo in zip(resized, lows, strict=True))
        for other in range_maps:
            other = letterbox.map_to_image(other)
            span = max(span, float(other.max()) - float(other.min()))
        return [_minmax(r, lo, lo + span) for r, lo in zip(resized, lows, strict=True)]
    return [_minmax(r, lo, float(r.max())) for r, lo in zip(resized, lows, strict=True)]


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
    consumers = consumer_names(layer)
    consumer = model.get_layer(consumer_name)
    if not isinstance(consumer, keras.layers.Conv2D):
        return False
    return consumers == {consumer_name}


def _crop_of(pixels: np.ndarray, size: tuple[int, int]):
    from yolocam_core.tails import TailCrop

    return TailCrop(np.asarray(pixels, np.int64), size)


def _gather(values: tf.Tensor, origins: np.ndarray, size: tuple[int, int]) -> tf.Tensor:
    """(1, H, W, K) -> (N, h, w, K): the windows at ``origins`` (N, 2) of ``size``."""
    h, w = size
    full = values[0]
    return tf.stack([full[r : r + h, c : c + w] for r, c in origins.tolist()])
