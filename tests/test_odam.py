"""ODAM and the attributes, by hand on a 3×3 detector (captum style), and the tail's
crop path against a tape through the whole network (tiny models and the default one).

The hand detector is described in tiny_models.py. For the centre cell every logit that
reads B is 0, so σ = 0.5 and σ' = 0.25 there, and for a target T at the centre:

    dT/dA[q, k] = dT/dB(1, 1) · w[q, k]      (q in the 3×3 map: the kernel's reach)

with dT/dB(1, 1) = 0.25 for the score (σ'σ + σσ' = 0.125 + 0.125), 0.25 for the
objectness (σ'), 0.25 for the box centre x (σ' · stride 1) and 3 for the box height
(exp(0) · anchor height 3).
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from tiny_models import A0, A1, IMAGE, W0, W1, detection_at, hand_detector

from yolocam_core.cams import ODAM, get_method
from yolocam_core.cams.odam import neck_layer
from yolocam_core.errors import YolocamError
from yolocam_core.explainer import Explainer
from yolocam_core.models import load_detector
from yolocam_core.tails import parent_layers
from yolocam_core.targets import ClassTarget, DetectionTarget, SeedTarget, TargetSpec

# w·A per cell, summed over the two channels:
#   (0,0) 1·0.2 + 0·1.0 = 0.2      (0,1) 0·0.4 + 1·0.0 = 0     (0,2) −1·0.2 + 0·0.2 = −0.2
#   (1,0) 0·0.0 + 1·0.4 = 0.4      (1,1) 2·1.0 − 1·0.2 = 1.8   (1,2) 0·0.2 + 0·0.0 = 0
#   (2,0) 1·0.6 + 0·0.0 = 0.6      (2,1) 0·0.0 + 0·0.8 = 0     (2,2) 0·0.4 + 2·0.6 = 1.2
W_DOT_A = np.array([[0.2, 0.0, -0.2], [0.4, 1.8, 0.0], [0.6, 0.0, 1.2]])


@pytest.fixture(scope="module")
def hand():
    explainer = Explainer(hand_detector())
    return explainer, explainer.forward(IMAGE)


def test_hand_model_is_what_the_docstring_says(hand):
    explainer, fwd = hand
    np.testing.assert_allclose(fwd.captured["neck"][0].numpy()[..., 0], A0, atol=1e-6)
    np.testing.assert_allclose(fwd.captured["neck"][0].numpy()[..., 1], A1, atol=1e-6)
    _, objectness, scores = fwd.decoded[0]
    assert objectness[0, 1, 1, 0] == pytest.approx(0.5, abs=1e-6)
    assert scores[0, 1, 1, 0, 0] == pytest.approx(0.25, abs=1e-6)
    assert neck_layer(explainer.detector, 0) == "neck"
    assert ODAM().layers(explainer.detector, 0) == ("neck",)


def test_odam_centre_by_hand(hand):
    explainer, fwd = hand
    result = explainer.explain(fwd, DetectionTarget(detection_at(1, 1)), "odam")
    (m,) = result.maps
    assert m.layer == "neck"
    # ReLU(0.25 · w·A): (0,2) = −0.05 -> 0
    expected = 0.25 * np.maximum(W_DOT_A, 0)
    np.testing.assert_allclose(m.grid_map, expected, atol=1e-6)
    # the gradients themselves: 0.25 · w
    target = DetectionTarget(detection_at(1, 1))
    _acts, grads, scores = explainer.gradients(fwd, [target], 0, "neck")
    np.testing.assert_allclose(grads[0, ..., 0], 0.25 * W0, atol=1e-6)
    np.testing.assert_allclose(grads[0, ..., 1], 0.25 * W1, atol=1e-6)
    assert scores[0] == pytest.approx(0.25, abs=1e-6)


def test_odam_corner_by_hand(hand):
    """A corner cell sees only the 2×2 of the map its kernel reaches (the zero padding)."""
    explainer, fwd = hand
    # B(0,0) = w[1,1]·A[0,0] + w[1,2]·A[0,1] + w[2,1]·A[1,0] + w[2,2]·A[1,1]
    #        = (2·0.2 − 1·1.0) + (0·0.4 + 0·0.0) + (0·0.0 + 0·0.4) + (0·1.0 + 2·0.2) = −0.2
    z = -0.2 - 4.0
    sig = 1 / (1 + math.exp(-z))
    d_score = 2 * sig * sig * (1 - sig)  # d(σ(z)²)/dB, objectness and class read B alike
    # dT/dA[q] = d_score · w[q − (0,0) + (1,1)] for q in {0,1}²
    grads = np.zeros((3, 3, 2))
    grads[:2, :2, 0] = d_score * W0[1:, 1:]
    grads[:2, :2, 1] = d_score * W1[1:, 1:]
    _, got, _ = explainer.gradients(fwd, [DetectionTarget(detection_at(0, 0))], 0, "neck")
    np.testing.assert_allclose(got[0], grads, rtol=1e-5, atol=1e-9)
    # map: (0,0) 2·0.2 − 1·1.0 = −0.6 -> 0; (0,1) 0; (1,0) 0; (1,1) 2·0.2 = 0.4
    expected = np.zeros((3, 3))
    expected[1, 1] = d_score * 0.4
    m = explainer.explain(fwd, DetectionTarget(detection_at(0, 0)), "odam").maps[0]
    np.testing.assert_allclose(m.grid_map, expected, rtol=1e-5, atol=1e-12)


@pytest.mark.parametrize(
    ("attribute", "value", "factor"),
    [
        ("score", 0.25, 0.25),  # σ(0)²
        ("objectness", 0.5, 0.25),  # σ(0); σ'(0)
        ("x", 1.5, 0.25),  # (σ(0) + column 1) / 3 cells · 3 pixels; σ'(0)
        ("y", 1.5, 0.0),  # ty has no weight on B
        ("w", 2.0, 0.0),  # exp(0) · anchor width 2; tw has no weight on B
        ("h", 3.0, 3.0),  # exp(0) · anchor height 3; exp(0) · 3
    ],
)
def test_attributes_by_hand(hand, attribute, value, factor):
    explainer, fwd = hand
    target = DetectionTarget(detection_at(1, 1), attribute)
    _acts, grads, scores = explainer.gradients(fwd, [target], 0, "neck")
    assert scores[0] == pytest.approx(value, abs=1e-5)
    assert explainer.scores(fwd, [target])[0, 0] == pytest.approx(value, abs=1e-5)
    np.testing.assert_allclose(grads[0, ..., 0], factor * W0, atol=1e-6)
    np.testing.assert_allclose(grads[0, ..., 1], factor * W1, atol=1e-6)
    result = explainer.explain(fwd, target, "odam")
    np.testing.assert_allclose(result.maps[0].grid_map, factor * np.maximum(W_DOT_A, 0), atol=1e-6)
    assert result.maps[0].score == pytest.approx(value, abs=1e-5)
    if attribute == "score":
        assert target.label(["thing"]) == "thing 0.25"
    else:
        assert target.label(["thing"]).startswith("thing 0.25 · ")
        assert attribute in target.score_note() or "box" in target.score_note()
    # a box coordinate is no strength: no shares across scales, per-map normalisation
    comparable = attribute in ("score", "objectness")
    assert target.comparable == comparable
    assert (result.maps[0].relative is None) == (not comparable)
    assert result.norm == ("shared" if comparable else "per-map")


def test_attribute_validation():
    with pytest.raises(YolocamError, match="attribute 'size'"):
        DetectionTarget(detection_at(1, 1), "size")
    with pytest.raises(YolocamError, match="detection target"):
        TargetSpec("class", 0, "x")
    with pytest.raises(YolocamError, match="detection target"):
        TargetSpec.parse("seed", ["thing"], attribute="objectness")
    spec = TargetSpec.parse("detection:0", ["thing"], attribute="h")
    target = spec.build([detection_at(1, 1)])
    assert target == DetectionTarget(detection_at(1, 1), "h")
    assert str(spec) == "detection:0 (h)"


def test_refused_pairs_name_what_to_use(hand):
    explainer, fwd = hand
    for method in ("gradcam", "gradcam++", "hirescam", "layercam", "odam"):
        with pytest.raises(YolocamError, match="seed") as info:
            explainer.explain(fwd, SeedTarget(), method)
        assert "detection or class target" in str(info.value)
    # the article's method and the target-independent one still take it
    assert explainer.explain(fwd, SeedTarget(), "seed").maps
    assert explainer.explain(fwd, SeedTarget(), "eigencam").maps
    for target in (SeedTarget(), ClassTarget(0)):
        with pytest.raises(YolocamError, match="detection target"):
            explainer.explain(fwd, target, "drise")
    with pytest.raises(YolocamError, match="attribute score"):
        explainer.explain(fwd, DetectionTarget(detection_at(1, 1), "x"), "drise")


def test_method_metadata():
    from yolocam_core.cams import ANSWERS, METHODS

    for name in METHODS:
        method = get_method(name)
        assert method.answers in ANSWERS, name
        assert 20 <= len(method.note) <= 160, name
    assert get_method("eigencam").target_independent
    assert [n for n in METHODS if get_method(n).target_independent] == ["eigencam"]
    assert get_method("odam").answers == "instance"
    assert get_method("gradcam").answers == "class"
    assert get_method("drise").answers == "black-box"
    configured = ODAM(sigma=1.0)
    assert get_method(configured) is configured


def test_odam_fusion_and_smoothing_by_hand():
    a = np.array([[0.0, 2.0], [1.0, 0.0]], np.float32)
    b = np.array([[4.0, 0.0], [0.0, 0.0]], np.float32)
    # each divided by its maximum: a/2 = [[0, 1], [.5, 0]], b/4 = [[1, 0], [0, 0]]
    np.testing.assert_allclose(ODAM().combine([a, b]), [[1, 1], [0.5, 0]])
    np.testing.assert_allclose(ODAM(fuse="max").combine([a, b]), [[1, 1], [0.5, 0]])
    np.testing.assert_allclose(ODAM(fuse="max").combine([a, a]), [[0, 1], [0.5, 0]])
    np.testing.assert_allclose(ODAM().combine([a, a]), [[0, 2], [1, 0]])
    # a coarser map is resized to the finer grid first
    fine = np.zeros((4, 4), np.float32)
    assert ODAM().combine([np.ones((2, 2), np.float32), fine]).shape == (4, 4)
    # smoothing spreads a single cell and keeps it the peak
    one = np.zeros((5, 5), np.float32)
    one[2, 2] = 1.0
    smoothed = ODAM(sigma=1.0).combine([one])
    assert smoothed[2, 2] == smoothed.max() and (smoothed > 0).sum() > 1
    with pytest.raises(YolocamError, match="fuse"):
        ODAM(fuse="mean")


# -- the crop path equals a tape through the whole network ------------------------------


def assert_close_rel(actual, expected, rtol=1e-5, what=""):
    actual, expected = np.asarray(actual, np.float64), np.asarray(expected, np.float64)
    assert actual.shape == expected.shape, what
    scale = max(float(np.abs(expected).max()), 1e-12)
    err = float(np.abs(actual - expected).max())
    assert err <= rtol * scale, f"{what}: max abs diff {err:.3g} > {rtol:g} × {scale:.3g}"


def crop_vs_tape(explainer, fwd, targets, scale, layer, expect_crops=True):
    """The explainer's gradients (crop path) against its general tape path."""
    weights = explainer._target_weights(fwd, targets, scale)
    stacked = explainer._stack_weights(weights, explainer.detector.heads[scale])
    tail = explainer.tail(scale, layer)
    assert tail is not None and layer in fwd.captured
    if expect_crops:
        boxes = []
        for w in weights:
            rows, cols = np.nonzero(w.support())
            boxes.append((rows.min(), cols.min(), rows.max(), cols.max()))
        assert tail.crops(np.array(boxes[:1])) is not None, "the crop path is not tested"
    acts, grads, scores = explainer.gradients(fwd, targets, scale, layer)
    acts_t, grads_t, scores_t = explainer._gradients_general(fwd, scale, layer, *stacked)
    assert_close_rel(acts, acts_t, what="activations")
    for i, target in enumerate(targets):
        what = f"scale {scale} layer {layer} target {i} {target}"
        assert np.abs(grads_t[i]).max() > 0, what
        assert_close_rel(grads[i], grads_t[i], what=what)
        assert scores[i] == pytest.approx(scores_t[i], rel=1e-5, abs=1e-6)


def small_detector(heads: int = 3, size: int = 128):
    from keras_models import small_model

    from yolocam_core.models.keras_import import detector_from_keras_model

    return detector_from_keras_model(small_model(heads=heads, size=size), classes="voc")


@pytest.mark.parametrize("heads", [2, 3])
def test_crops_equal_tape_on_small_models(heads):
    """Border cells, corners, multi-cell targets (other scales) and every attribute."""
    explainer = Explainer(small_detector(heads=heads))
    rng = np.random.default_rng(heads)
    image = rng.integers(0, 256, (100, 140, 3), dtype=np.uint8)
    fwd = explainer.forward(image)
    for scale, head in enumerate(explainer.detector.heads):
        layer = ODAM().layers(explainer.detector, scale)[0]
        h, w = head.grid
        cells = [(0, 0), (h - 1, w - 1), (0, w - 1), (h // 2, w // 2), (h - 1, 1)]
        targets = [
            DetectionTarget(detection_at(r, c, scale=scale), attribute)
            for (r, c), attribute in zip(cells, ("score", "objectness", "x", "h", "w"), strict=True)
        ]
        # a detection of another scale: IoU-weighted cells inside its box at this scale
        other = (scale + 1) % len(explainer.detector.heads)
        big = DetectionTarget(
            detection_at(1, 1, scale=other).__class__(
                box_xyxy=(20.0, 10.0, 90.0, 70.0),
                class_id=3,
                class_name="x",
                score=0.5,
                objectness=0.5,
                scale=other,
                cell=(0, 0),
                anchor=1,
            )
        )
        crop_vs_tape(explainer, fwd, [*targets, big], scale, layer)
        # and a class target (every cell: the dense path) beside them
        crop_vs_tape(explainer, fwd, [ClassTarget(3), targets[0]], scale, layer, False)


def test_crops_equal_tape_on_default_model(detector, sample_rgb):
    explainer = Explainer(detector)
    fwd = explainer.forward(sample_rgb["zidane.jpg"])
    dets = explainer.detect(fwd)
    for scale, head in enumerate(detector.heads):
        layer = ODAM().layers(detector, scale)[0]
        h, w = head.grid
        border = [
            DetectionTarget(detection_at(0, 0, scale=scale)),
            DetectionTarget(detection_at(h - 1, w - 2, scale=scale), "y"),
        ]
        crop_vs_tape(explainer, fwd, [*(DetectionTarget(d) for d in dets), *border], scale, layer)


def test_odam_layers_of_the_default_model(detector):
    """The neck output each head's tail reads: before the head's 3×3 convolution."""
    assert ODAM().layers(detector, 0) == ("conv_27_leaky",)
    assert ODAM().layers(detector, 1) == ("route_34",)
    explainer = Explainer(detector)
    for scale, (conv, size) in enumerate([("conv_28", 3), ("conv_35", 3)]):
        tail = explainer.tail(scale, ODAM().layers(detector, scale)[0])
        assert conv in tail.layers
        assert detector.keras_model.get_layer(conv).kernel_size == (size, size)


def test_head_over_a_concatenation(tmp_path):
    """A head whose 1×1 convolution reads a concatenation directly (no spatial layer
    between): ODAM explains at that concatenation, exactly, and every head has a map."""
    from test_byo_darknet import YOLOV4_STYLE_3, write_model

    cfg, _ = write_model(tmp_path, "v4", YOLOV4_STYLE_3, seed=21)
    detector = load_detector(cfg, use_cache=False)
    model = detector.keras_model
    layers = [ODAM().layers(detector, s)[0] for s in range(len(detector.heads))]
    merges = [s for s, name in enumerate(layers) if len(parent_layers(model.get_layer(name))) > 1]
    assert merges, f"no head of this model reads a concatenation directly: {layers}"
    explainer = Explainer(detector)
    rng = np.random.default_rng(3)
    fwd = explainer.forward(rng.integers(0, 256, (120, 160, 3), dtype=np.uint8))
    for scale in merges:
        h, w = detector.heads[scale].grid
        targets = [
            DetectionTarget(detection_at(r, c, scale=scale)) for r, c in ((0, 0), (h // 2, w // 2))
        ]
        crop_vs_tape(explainer, fwd, targets, scale, layers[scale])
        explanation = explainer.explain(fwd, targets[1], "odam")
        assert [m.layer for m in explanation.maps][scale] == layers[scale]
        assert explanation.by_scale(scale).grid_map.max() > 0
