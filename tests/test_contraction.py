"""The channel-contracted fast path (yolocam_core.contraction) against the gradients.

For tails ``[pad] -> conv k×k -> ReLU-family -> 1×1 head`` the explainer computes
``sum_k A · dS/dA`` of many targets from one convolution-sized product; it must equal
contracting the exact gradients (which tests/test_odam.py checks against a tape), for
own-scale, other-scale (many cells, box borders) and class targets and every attribute,
on the hand model (no activation), a random-weight Darknet yolov3-tiny (leaky, explicit
padding, a border-heavy small input) and the default model; and tails of other shapes
must not take it.
"""

from __future__ import annotations

import numpy as np
import pytest
from darknet_helpers import random_weights, resize_cfg
from tiny_models import IMAGE, detection_at, hand_detector

from yolocam_core.cams import ODAM, get_method
from yolocam_core.detector import Detection
from yolocam_core.explainer import Explainer
from yolocam_core.targets import ClassTarget, DetectionTarget


def contracted_reference(explainer, fwd, targets, scale, layer):
    acts, grads, _ = explainer.gradients(fwd, targets, scale, layer)
    return np.einsum("hwk,nhwk->nhw", acts.astype(np.float64), grads.astype(np.float64))


def assert_fast_equals_gradients(explainer, fwd, targets, scale, layer):
    fast = explainer.contracted_maps(fwd, targets, scale, layer)
    assert fast is not None, f"the fast path should apply at {layer!r} (scale {scale})"
    ref = contracted_reference(explainer, fwd, targets, scale, layer)
    assert fast.shape == ref.shape
    for i, target in enumerate(targets):
        peak = max(float(np.abs(ref[i]).max()), 1e-12)
        err = float(np.abs(fast[i] - ref[i]).max())
        assert err <= 1e-4 * peak, f"{target}: max error {err:.3g} vs peak {peak:.3g}"
        assert np.abs(ref[i]).max() > 0, f"{target}: the reference map is empty"


def big_box(scale: int) -> DetectionTarget:
    """A detection of ``scale`` whose box covers many cells of every head."""
    return DetectionTarget(
        Detection(
            box_xyxy=(4.0, 2.0, 100.0, 90.0),
            class_id=1,
            class_name="x",
            score=0.5,
            objectness=0.5,
            scale=scale,
            cell=(0, 0),
            anchor=0,
        )
    )


def test_hand_model_without_activation():
    explainer = Explainer(hand_detector())
    fwd = explainer.forward(IMAGE)
    targets = [
        DetectionTarget(detection_at(r, c), attribute)
        for (r, c), attribute in (((1, 1), "score"), ((0, 0), "objectness"), ((2, 1), "h"))
    ]
    assert_fast_equals_gradients(explainer, fwd, targets, 0, "neck")


@pytest.fixture(scope="module")
def tiny_darknet(darknet_cfg_dir, tmp_path_factory):
    """yolov3-tiny at 96×128 (small grids: most cells touch a border), random weights."""
    from yolocam_core.models import load_detector
    from yolocam_core.models.darknet import parse_cfg, plan_model

    folder = tmp_path_factory.mktemp("tiny-darknet")
    cfg = folder / "yolov3-tiny.cfg"
    cfg.write_text(resize_cfg((darknet_cfg_dir / "yolov3-tiny.cfg").read_text(), 128, 96))
    plan = plan_model(parse_cfg(cfg.read_text()))
    weights = folder / "yolov3-tiny.weights"
    weights.write_bytes(random_weights(plan.convs, np.random.default_rng(7)))
    return Explainer(load_detector(cfg, weights=weights, use_cache=False))


def test_random_darknet_model_with_leaky_tails(tiny_darknet):
    explainer = tiny_darknet
    rng = np.random.default_rng(3)
    fwd = explainer.forward(rng.integers(0, 256, (90, 130, 3), dtype=np.uint8))
    for scale, head in enumerate(explainer.detector.heads):
        layer = ODAM().layers(explainer.detector, scale)[0]
        h, w = head.grid
        targets = [
            DetectionTarget(detection_at(r, c, scale=scale), attribute)
            for (r, c), attribute in zip(
                [(0, 0), (h - 1, w - 1), (0, w - 1), (h // 2, w // 2)],
                ("score", "objectness", "x", "w"),
                strict=True,
            )
        ]
        other = (scale + 1) % len(explainer.detector.heads)
        assert_fast_equals_gradients(
            explainer, fwd, [*targets, big_box(other), ClassTarget(2)], scale, layer
        )


def test_default_model_and_maps_unchanged(detector, sample_rgb):
    """The default model's neck tails take the fast path, and ODAM's maps through it
    equal the maps through the gradients (one target at a time takes the crops)."""
    explainer = Explainer(detector)
    fwd = explainer.forward(sample_rgb["bus.jpg"])
    detections = explainer.detect(fwd, 0.1)
    # every attribute (the decoding's scale_x_y is 1.05 here), and a class target
    attributes = ("score", "objectness", "x", "y", "w", "h")
    targets = [
        DetectionTarget(d, attributes[k % len(attributes)]) for k, d in enumerate(detections[:6])
    ] + [ClassTarget(0)]
    for scale in range(len(detector.heads)):
        layer = ODAM().layers(detector, scale)[0]
        assert_fast_equals_gradients(explainer, fwd, targets, scale, layer)
    together = explainer.explain_many(fwd, targets, "odam", norm="per-map")
    for target, many in zip(targets, together, strict=True):
        alone = explainer.explain(fwd, target, "odam", norm="per-map")
        # the scores read on the way (many targets) equal the scores computed alone
        np.testing.assert_allclose(many.scale_scores, alone.scale_scores, rtol=1e-5)
        for a, b in zip(many.maps, alone.maps, strict=True):
            np.testing.assert_allclose(
                a.grid_map, b.grid_map, rtol=1e-4, atol=1e-6 * b.grid_map.max()
            )


def test_other_tails_do_not_take_it(detector):
    """The head-input layer (a 1×1 tail: no spatial convolution) and a tail with a side
    input or several spatial layers fall back to the gradients."""
    explainer = Explainer(detector)
    assert explainer._conv_tail(0, detector.heads[0].cam_layer) is None
    assert explainer._conv_tail(0, "conv_26_leaky") is None  # conv 3×3, 1×1, 3×3, 1×1
    assert get_method("odam").contracts and get_method("hirescam").contracts
    assert not get_method("gradcam").contracts and not get_method("layercam").contracts
