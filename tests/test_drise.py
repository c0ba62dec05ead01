"""D-RISE: the similarity by hand, the compiled batch against NumPy, masks, determinism
for a seed, progress and the explainer's use of it (few masks, tiny and small models)."""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf
from tiny_models import IMAGE, detection_at, hand_detector

from yolocam_core.cams import DRise
from yolocam_core.cams.drise import _build_batch, detection_vectors, similarity
from yolocam_core.errors import YolocamError
from yolocam_core.explainer import Explainer
from yolocam_core.targets import DetectionTarget


def test_similarity_by_hand():
    # detection: box (0, 0, 2, 2), class vector (1, 0)
    # prediction a: box (0, 0, 2, 2)  -> IoU 1;  probs (1, 0) -> cos 1;   objectness 0.5
    # prediction b: box (1, 0, 3, 2)  -> inter 1·2 = 2, union 4 + 4 − 2 = 6, IoU 1/3;
    #               probs (3, 4) -> cos 3/5;  objectness 1.0  -> 1/3 · 3/5 · 1 = 0.2
    # prediction c: box (5, 5, 6, 6)  -> IoU 0 -> 0
    boxes = np.array([[0, 0, 2, 2], [1, 0, 3, 2], [5, 5, 6, 6]], float)
    objectness = np.array([0.5, 1.0, 1.0])
    probs = np.array([[1.0, 0.0], [3.0, 4.0], [1.0, 0.0]])
    got = similarity(boxes, objectness, probs, np.array([[0, 0, 2, 2.0]]), np.array([[1.0, 0]]))
    np.testing.assert_allclose(got[:, 0], [0.5, 0.2, 0.0], atol=1e-12)


def test_compiled_batch_equals_numpy_similarity():
    """The compiled masking + forward + similarity against NumPy on the decoded heads."""
    explainer = Explainer(hand_detector())
    fwd = explainer.forward(IMAGE)
    dets = [detection_at(1, 1), detection_at(0, 2)]
    boxes, probs = detection_vectors(explainer, fwd, dets)
    np.testing.assert_allclose(boxes[0], [1 / 3, 1 / 3, 2 / 3, 2 / 3], atol=1e-6)
    run = _build_batch(explainer)
    rng = np.random.default_rng(0)
    masks = rng.random((4, 3, 3, 1)).astype(np.float32)
    masks[0] = 1.0  # the unmasked image
    got = run(tf.constant(fwd.tensor), tf.constant(masks), tf.constant(boxes), tf.constant(probs))
    got = got.numpy()  # (B, S, D)
    assert got.shape == (4, 1, 2)
    predicted = explainer.detector.predict(fwd.tensor * masks)
    for b in range(4):
        pb, po, ps = (x[b] for x in predicted[0])
        xyxy = np.concatenate([pb[..., :2] - pb[..., 2:] / 2, pb[..., :2] + pb[..., 2:] / 2], -1)
        expected = similarity(
            xyxy.reshape(-1, 4),
            po.reshape(-1),
            (ps / po[..., None]).reshape(-1, 1),
            boxes,
            probs,
        ).max(axis=0)
        np.testing.assert_allclose(got[b, 0], expected, rtol=1e-5, atol=1e-7)


def test_masks_follow_the_recipe():
    cam = DRise(masks=200, grid=4, probability=0.3, seed=3)
    grids, shifts, cell = cam.mask_plan((32, 40))
    assert grids.shape == (200, 4, 4) and cell == (8, 10)
    assert abs(grids.mean() - 0.3) < 0.05
    assert shifts[:, 0].max() < 8 and shifts[:, 1].max() < 10
    masks = cam.masks_for(grids[:5], shifts[:5], cell, (32, 40))
    assert masks.shape == (5, 32, 40) and masks.min() >= 0 and masks.max() <= 1
    # mask 0 is its grid upsampled (bilinear) and shifted: a cell that is 1 with all its
    # neighbours 1 gives ones in its interior
    assert np.isclose(masks.mean(), grids[:5].mean(), atol=0.15)


def test_deterministic_for_a_seed_and_batches_do_not_matter():
    explainer = Explainer(hand_detector())
    fwd = explainer.forward(IMAGE)
    dets = [detection_at(1, 1), detection_at(2, 0)]
    a = DRise(masks=12, grid=2, seed=5, batch_size=4).saliency(explainer, fwd, dets)
    b = DRise(masks=12, grid=2, seed=5, batch_size=5).saliency(explainer, fwd, dets)
    c = DRise(masks=12, grid=2, seed=6, batch_size=4).saliency(explainer, fwd, dets)
    np.testing.assert_allclose(a.per_head, b.per_head, rtol=1e-6, atol=1e-9)
    np.testing.assert_allclose(a.combined, b.combined, rtol=1e-6, atol=1e-9)
    assert not np.allclose(a.per_head, c.per_head)
    assert a.per_head.shape == (2, 1, *a.combined.shape[1:])


def test_explain_many_shares_the_masks_and_reports_progress():
    explainer = Explainer(hand_detector())
    dets = [detection_at(1, 1), detection_at(0, 0)]
    calls = []
    cam = DRise(masks=10, grid=2, seed=1, batch_size=4)
    many = explainer.explain_many(
        IMAGE, [DetectionTarget(d) for d in dets], cam, progress=lambda *a: calls.append(a)
    )
    assert calls == [(0, 10), (4, 10), (8, 10), (10, 10)]
    one = explainer.explain(IMAGE, DetectionTarget(dets[1]), cam)
    np.testing.assert_allclose(many[1].maps[0].grid_map, one.maps[0].grid_map, rtol=1e-6)
    assert many[0].method == "drise" and "10 masks" in many[0].maps[0].layer
    with pytest.raises(YolocamError, match="layer"):
        explainer.explain(IMAGE, DetectionTarget(dets[0]), cam, layer="neck")


def test_options_are_checked():
    for bad in (
        {"masks": 0},
        {"grid": 1},
        {"probability": 1.0},
        {"batch_size": 0},
        {"precision": "float16"},
    ):
        with pytest.raises(YolocamError):
            DRise(**bad)


def test_drise_on_a_small_model_all_heads():
    """Per-head maps on a three-head model: shape, the combined map is no smaller than
    each head's (max over heads of the per-mask weights)."""
    from keras_models import small_model

    from yolocam_core.models.keras_import import detector_from_keras_model

    explainer = Explainer(detector_from_keras_model(small_model(heads=3, size=64), classes="voc"))
    image = np.random.default_rng(0).integers(0, 256, (64, 64, 3), dtype=np.uint8)
    fwd = explainer.forward(image)
    det = detection_at(1, 1, scale=0)
    maps = DRise(masks=8, seed=0, batch_size=8).saliency(explainer, fwd, [det])
    assert maps.per_head.shape == (1, 3, 16, 16)
    assert np.all(maps.combined[0] >= maps.per_head[0].max(axis=0) - 1e-6)


def test_auto_precision_follows_the_cpu(monkeypatch):
    from yolocam_core.cams import drise

    monkeypatch.setattr(drise, "native_bfloat16", lambda: True)
    assert DRise().resolved_precision() == "bfloat16"
    assert DRise(precision="float32").resolved_precision() == "float32"
    monkeypatch.setattr(drise, "native_bfloat16", lambda: False)
    assert DRise().resolved_precision() == "float32"
    assert DRise(precision="bfloat16").resolved_precision() == "bfloat16"


def test_bfloat16_batch_is_close_to_float32_and_says_so():
    """The masked forwards in bfloat16 (a mixed_bfloat16 copy of the model) give the
    float32 similarities to bfloat16's precision, and the maps name the precision."""
    explainer = Explainer(hand_detector())
    fwd = explainer.forward(IMAGE)
    dets = [detection_at(1, 1), detection_at(0, 2)]
    boxes, probs = detection_vectors(explainer, fwd, dets)
    masks = np.random.default_rng(1).random((6, 3, 3, 1)).astype(np.float32)
    args = [tf.constant(x) for x in (fwd.tensor, masks, boxes, probs)]
    exact = _build_batch(explainer, "float32")(*args).numpy()
    rounded = _build_batch(explainer, "bfloat16")(*args).numpy()
    np.testing.assert_allclose(rounded, exact, rtol=3e-2, atol=1e-3)
    assert np.abs(rounded - exact).max() > 0  # really another arithmetic
    cam = DRise(masks=12, grid=2, seed=5, precision="bfloat16")
    result = explainer.explain_many(IMAGE, [DetectionTarget(d) for d in dets], cam)
    assert "bfloat16 forwards" in result[0].maps[0].layer
    plain = DRise(masks=12, grid=2, seed=5, precision="float32")
    assert "bfloat16" not in explainer.explain(IMAGE, DetectionTarget(dets[0]), plain).maps[0].layer


@pytest.mark.slow
def test_bfloat16_maps_of_the_default_model_rank_like_float32(detector, sample_rgb):
    """On yolov4-tiny and bus.jpg, the same masks through bfloat16 and float32 forwards
    rank the map's pixels alike (Spearman ≥ 0.99 per detection and head), far closer
    than two seeds of float32 do."""
    from scipy.stats import spearmanr

    explainer = Explainer(detector)
    fwd = explainer.forward(sample_rgb["bus.jpg"])
    dets = explainer.detect(fwd)[:3]
    exact = DRise(masks=64, seed=3, precision="float32").saliency(explainer, fwd, dets)
    rounded = DRise(masks=64, seed=3, precision="bfloat16").saliency(explainer, fwd, dets)
    assert (exact.precision, rounded.precision) == ("float32", "bfloat16")
    for d in range(len(dets)):
        for s in range(len(detector.heads)):
            a, b = exact.per_head[d, s].ravel(), rounded.per_head[d, s].ravel()
            assert spearmanr(a, b)[0] >= 0.99, (d, s)


def test_no_bfloat16_copy_of_a_model_too_large(monkeypatch):
    """The copy holds its own weights: past the cap, auto falls back to float32 and an
    explicit bfloat16 is refused with the reason."""
    from yolocam_core.cams import drise

    monkeypatch.setattr(drise, "BFLOAT16_COPY_MAX_PARAMS", 1)
    monkeypatch.setattr(drise, "native_bfloat16", lambda: True)
    explainer = Explainer(hand_detector())
    fwd = explainer.forward(IMAGE)
    dets = [detection_at(1, 1)]
    assert DRise(masks=4, grid=2).saliency(explainer, fwd, dets).precision == "float32"
    with pytest.raises(YolocamError, match="parameters; a bfloat16 copy"):
        DRise(masks=4, grid=2, precision="bfloat16").saliency(explainer, fwd, dets)


def test_a_model_without_a_config_falls_back_to_float32(monkeypatch):
    """A subclassed Keras model may have no get_config(): auto runs in float32."""
    from yolocam_core.cams import drise

    monkeypatch.setattr(drise, "native_bfloat16", lambda: True)
    explainer = Explainer(hand_detector())
    model = explainer.detector.keras_model

    def no_config():
        raise NotImplementedError("subclassed")

    monkeypatch.setattr(model, "get_config", no_config)
    fwd = explainer.forward(IMAGE)
    assert DRise(masks=4, grid=2).saliency(explainer, fwd, [detection_at(1, 1)]).precision == (
        "float32"
    )
    with pytest.raises(YolocamError, match="cannot make a bfloat16 copy"):
        DRise(masks=4, grid=2, precision="bfloat16").saliency(explainer, fwd, [detection_at(1, 1)])
