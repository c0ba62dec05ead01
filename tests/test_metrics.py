"""Metrics: exact values on hand-made maps, boxes and a fake detector; the
deletion/insertion machinery on the real model; and the proof on the two sample photos:
for detections with score >= 0.5, Grad-CAM's deletion AUC is below the random map's and
its insertion AUC above it (run with -s to see the method × scale table)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from yolocam_core.detector import Detection, Letterbox
from yolocam_core.metrics import (
    Curves,
    PerturbationCurves,
    auc,
    box_iou,
    box_mask,
    deletion_insertion,
    energy_pointing_game,
    match_scores,
    pixel_order,
    pointing_game,
    random_heatmap,
    rank_correlation,
)

SAMPLES = ("bus.jpg", "zidane.jpg")
CONFIDENT = 0.5
#: Steps of the proof's curves: 8 keeps the test short; the AUCs move by ~0.01 from 8 to
#: 64 steps, the margins of Grad-CAM over the random map are > 0.1 (`yolocam evaluate`
#: uses 16).
PROOF_STEPS = 8
SUMMARY_KEYS = ("deletion_auc", "random_deletion_auc", "insertion_auc", "random_insertion_auc")


def det(box, class_id=0, score=0.9, scale=0) -> Detection:
    return Detection(
        box_xyxy=tuple(float(v) for v in box),
        class_id=class_id,
        class_name=f"class_{class_id}",
        score=score,
        objectness=score,
        scale=scale,
        cell=(0, 0),
        anchor=0,
    )


# -- pointing game and energy ----------------------------------------------------------------


def test_box_mask_uses_pixel_centres():
    mask = box_mask((4, 4), (0.5, 0.5, 2.5, 1.5))
    expected = np.zeros((4, 4), bool)
    expected[0:2, 0:3] = True
    np.testing.assert_array_equal(mask, expected)


def test_pointing_game_hit_miss_tolerance_and_constant_map():
    heat = np.zeros((10, 10), np.float32)
    heat[2, 7] = 1.0  # peak centre at (x, y) = (7.5, 2.5)
    assert pointing_game(heat, (6, 1, 9, 4)) is True
    assert pointing_game(heat, (0, 0, 5, 5)) is False
    # box ends 0.5 px left of and above the peak: distance sqrt(0.5) ≈ 0.71 px
    assert pointing_game(heat, (0, 0, 7, 2)) is False
    assert pointing_game(heat, (0, 0, 7, 2), tolerance=1.0) is True
    assert pointing_game(heat, (0, 0, 7, 2), tolerance=0.7) is False
    assert pointing_game(np.full((10, 10), 0.3), (0, 0, 10, 10)) is False
    with pytest.raises(ValueError, match="heatmap"):
        pointing_game(np.zeros(5), (0, 0, 1, 1))


def test_energy_pointing_game_known_shares():
    assert energy_pointing_game(np.ones((10, 10)), (0, 0, 5, 10)) == pytest.approx(0.5)
    heat = np.ones((10, 10))
    heat[:, :5] = 3.0  # 50 px × 3 inside, 50 px × 1 outside
    assert energy_pointing_game(heat, (0, 0, 5, 10)) == pytest.approx(0.75)
    assert energy_pointing_game(heat, (0, 0, 10, 10)) == pytest.approx(1.0)
    assert energy_pointing_game(heat, (20, 20, 30, 30)) == 0.0
    assert energy_pointing_game(np.zeros((4, 4)), (0, 0, 2, 2)) == 0.0
    with pytest.raises(ValueError, match="non-negative"):
        energy_pointing_game(-np.ones((4, 4)), (0, 0, 2, 2))


# -- IoU, match scores, AUC ---------------------------------------------------------------------


def test_box_iou_known_values():
    a = np.array([[0, 0, 2, 2], [0, 0, 1, 1], [5, 5, 6, 6]], float)
    b = np.array([[1, 1, 3, 3], [0, 0, 2, 2]], float)
    np.testing.assert_allclose(box_iou(a, b), [[1 / 7, 1.0], [0.0, 0.25], [0.0, 0.0]], rtol=1e-12)


def test_match_scores_take_iou_times_class_score_of_the_best_prediction():
    # one head, batch 2, a 1×1 grid with two anchors, three classes
    boxes = np.zeros((2, 1, 1, 2, 4))
    boxes[:, 0, 0, 0] = (0.5, 0.5, 0.5, 0.5)  # exactly the detection's box
    boxes[:, 0, 0, 1] = (0.75, 0.5, 0.5, 0.5)  # shifted by half a width: IoU 1/3
    scores = np.zeros((2, 1, 1, 2, 3))
    scores[0, 0, 0, :, 1] = (0.6, 0.9)  # 0.6 × 1 beats 0.9 × 1/3
    scores[1, 0, 0, :, 1] = (0.1, 0.9)  # 0.9 × 1/3 = 0.3 beats 0.1 × 1
    scores[:, 0, 0, :, 2] = 1.0  # another class does not count
    decoded = [(boxes, np.ones((2, 1, 1, 2)), scores)]
    got = match_scores(decoded, np.array([[0.25, 0.25, 0.75, 0.75]]), [1])
    np.testing.assert_allclose(got, [[0.6], [0.3]], rtol=1e-12)
    # several heads: the best over all of them
    weak = [(boxes, np.ones((2, 1, 1, 2)), scores * 0.5)]
    np.testing.assert_allclose(
        match_scores(weak + decoded, np.array([[0.25, 0.25, 0.75, 0.75]]), [1]), got
    )


def test_auc_by_trapezoid():
    x = np.linspace(0, 1, 17)
    assert auc(1 - x, x) == pytest.approx(0.5)
    assert auc(np.full(17, 0.3), x) == pytest.approx(0.3)
    np.testing.assert_allclose(auc(np.stack([x, x**0]), x), [0.5, 1.0])


# -- ordering, random maps, rank correlation ------------------------------------------------


def test_pixel_order_breaks_ties_with_the_given_key():
    heat = np.array([[1.0, 0.0], [0.0, 0.0]])
    tie = np.array([[0.0, 0.1], [0.9, 0.5]])
    np.testing.assert_array_equal(pixel_order(heat, tie), [0, 2, 3, 1])
    # default tie-break: a fixed-seed permutation of the flat region
    assert pixel_order(heat)[0] == 0
    np.testing.assert_array_equal(pixel_order(heat), pixel_order(heat))
    with pytest.raises(ValueError, match="tie_break"):
        pixel_order(heat, np.zeros((3, 3)))


def test_random_heatmap_is_reproducible_and_blocky_on_a_grid():
    a = random_heatmap((60, 80), seed=3)
    assert a.shape == (60, 80) and 0 <= a.min() and a.max() <= 1
    np.testing.assert_array_equal(a, random_heatmap((60, 80), seed=3))
    assert not np.array_equal(a, random_heatmap((60, 80), seed=4))
    coarse = random_heatmap((60, 80), seed=3, grid=(3, 4))
    assert coarse.shape == (60, 80)
    # neighbouring pixels of a 3×4 grid map are almost equal; of a per-pixel map, not
    assert np.abs(np.diff(coarse, axis=1)).mean() < 0.05 < np.abs(np.diff(a, axis=1)).mean()
    with pytest.raises(ValueError, match="upsample"):
        random_heatmap((60, 80), grid=(3, 4), upsample=lambda g: np.zeros((5, 5)))


def test_rank_correlation_equals_scipy_with_ties():
    from scipy.stats import spearmanr

    rng = np.random.default_rng(0)
    a = rng.integers(0, 5, (13, 13)).astype(float)  # many ties
    b = a + rng.normal(0, 2, a.shape)
    expected = float(spearmanr(a.ravel(), b.ravel()).statistic)
    assert rank_correlation(a, b) == pytest.approx(expected, abs=1e-12)
    assert rank_correlation(a, np.exp(a)) == pytest.approx(1.0)
    assert rank_correlation(a, -a) == pytest.approx(-1.0)
    assert math.isnan(rank_correlation(a, np.zeros_like(a)))


def test_curves_mean_and_select():
    x = np.linspace(0, 1, 3)
    one = Curves(x, np.array([[1.0, 0.5, 0.0], [1.0, 1.0, 0.0]]), np.zeros((2, 3)))
    two = Curves(x, np.array([[1.0, 0.0, 0.0], [1.0, 0.0, 0.0]]), np.ones((2, 3)))
    mean = Curves.mean([one, two])
    np.testing.assert_allclose(mean.deletion, [[1.0, 0.25, 0.0], [1.0, 0.5, 0.0]])
    np.testing.assert_allclose(mean.insertion_auc, [0.5, 0.5])
    np.testing.assert_allclose(one.select(1).deletion_auc, [0.75])


# -- deletion / insertion on a fake detector whose score is known ---------------------------


class FakeDetector:
    """An 8×8 'network' whose one prediction is exactly the box (2, 2)–(4, 4) with
    class-0 score = the share of the box's pixels still white (255)."""

    input_size = (8, 8)
    letterbox = False

    def __init__(self):
        self.batches: list[int] = []

    def letterbox_for(self, image_size):
        return Letterbox(tuple(image_size), 1.0, 1.0, 0.0, 0.0)

    def preprocess(self, image):
        return image.astype(np.float32)[None] / 255.0, self.letterbox_for(image.shape[:2])

    def predict(self, batch):
        self.batches.append(len(batch))
        b = len(batch)
        white = (batch[:, 2:4, 2:4, 0] == 1.0).mean(axis=(1, 2))
        boxes = np.tile(np.array([0.375, 0.375, 0.25, 0.25]), (b, 1, 1, 1, 1))
        return [(boxes, np.ones((b, 1, 1, 1)), white.reshape(b, 1, 1, 1, 1))]


@pytest.fixture
def toy():
    image = np.zeros((8, 8, 3), np.uint8)
    image[2:4, 2:4] = 255  # the object: 4 of 64 pixels
    inside = np.zeros((8, 8), np.float32)
    inside[2:4, 2:4] = 1.0
    return FakeDetector(), image, inside, det((2, 2, 4, 4))


def test_deletion_insertion_exact_on_a_fake_detector(toy):
    detector, image, inside, target = toy
    # 16 steps of 4 pixels: the object's 4 pixels go (or come back) in the first step
    curves = deletion_insertion(detector, image, inside, [target], steps=16, batch_size=4)
    np.testing.assert_allclose(curves.fractions, np.arange(17) / 16)
    np.testing.assert_allclose(curves.deletion[0], [1.0] + [0.0] * 16)
    np.testing.assert_allclose(curves.insertion[0], [0.0] + [1.0] * 16)
    assert curves.deletion_auc[0] == pytest.approx(1 / 32)
    assert curves.insertion_auc[0] == pytest.approx(1 - 1 / 32)
    # the worst map puts the object last
    worst = deletion_insertion(detector, image, 1 - inside, [target], steps=16, batch_size=4)
    assert worst.deletion_auc[0] == pytest.approx(31 / 32)
    assert worst.insertion_auc[0] == pytest.approx(1 / 32)
    # 2 shared end images + 2 × 15 steps, in batches of at most 4
    assert sum(detector.batches) == 2 * (2 + 2 * 15)  # two maps
    assert max(detector.batches) == 4


def test_partial_removal_and_random_baseline_in_between(toy):
    detector, image, inside, target = toy
    # a map that ranks two object pixels first, then the background, then the other two
    heat = np.full((8, 8), 0.5, np.float32)
    heat[2, 2:4] = 1.0
    heat[3, 2:4] = 0.0
    perturb = PerturbationCurves(detector, image, [target], steps=32)  # 2 pixels a step
    curves = perturb.curves(heat)
    assert curves.deletion[0, 1] == pytest.approx(0.5)  # half the object gone
    assert curves.deletion[0, 31] == pytest.approx(0.5) and curves.deletion[0, 32] == 0.0
    assert curves.insertion[0, 1] == pytest.approx(0.5)
    best = perturb.curves(inside)
    worst = perturb.curves(1 - inside)
    rnd = Curves.mean([perturb.curves(random_heatmap((8, 8), s)) for s in range(8)])
    assert best.deletion_auc[0] < rnd.deletion_auc[0] < worst.deletion_auc[0]
    assert best.insertion_auc[0] > rnd.insertion_auc[0] > worst.insertion_auc[0]


def test_perturbation_arguments_are_checked(toy):
    detector, image, _, target = toy
    with pytest.raises(ValueError, match="fill"):
        PerturbationCurves(detector, image, [target], fill="black")
    with pytest.raises(ValueError, match="steps"):
        PerturbationCurves(detector, image, [target], steps=0)
    with pytest.raises(ValueError, match="no detections"):
        PerturbationCurves(detector, image, [])
    with pytest.raises(ValueError, match="heatmap shape"):
        PerturbationCurves(detector, image, [target]).curves(np.zeros((4, 4)))
    big = np.zeros((64, 64, 3), np.uint8)
    big[16:32, 16:32] = 255
    blur = PerturbationCurves(detector, big, [target], fill="blur").fill  # σ ≈ 1.4 px
    assert blur.shape == big.shape and np.any((blur > 0) & (blur < 255))


# -- the real model ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def explainer(detector):
    from yolocam_core.explainer import Explainer

    return Explainer(detector)


@pytest.mark.slow
def test_curves_start_at_the_detection_score_and_end_near_zero(detector, sample_rgb):
    image = sample_rgb["bus.jpg"]
    detections = detector.detect(image)[:2]
    heat = random_heatmap(image.shape[:2], 0, (13, 13))
    perturb = PerturbationCurves(detector, image, detections, steps=4, fill="grey")
    curves = perturb.curves(heat)
    assert curves.deletion.shape == curves.insertion.shape == (2, 5)
    assert perturb.forward_passes == 2 + 2 * 3
    for k, d in enumerate(detections):
        assert curves.deletion[k, 0] == pytest.approx(d.score, abs=0.02)
        assert curves.insertion[k, -1] == curves.deletion[k, 0]
        assert curves.deletion[k, -1] < 0.05 and curves.insertion[k, 0] < 0.05
    # batching changes nothing
    again = PerturbationCurves(detector, image, detections, steps=4, batch_size=3).curves(heat)
    np.testing.assert_allclose(again.deletion, curves.deletion, atol=1e-5)


@pytest.mark.slow
def test_identical_maps_are_perturbed_once(explainer, sample_rgb):
    from yolocam_core.evaluate import ScoringSettings, evaluate_image

    image = sample_rgb["zidane.jpg"]
    fast = ScoringSettings(steps=4, seeds=(0,))
    result = evaluate_image(explainer, image, ["eigencam"], [0], settings=fast)
    assert len(result.detections) >= 2
    # EigenCAM's map does not depend on the target: one set of 2 × 3 perturbed images
    # for all detections, plus one for the random map and the 2 shared end images
    assert result.forward_passes == 2 + 6 + 6
    assert [r.method for r in result.rows] == ["eigencam"] * len(result.detections)


@pytest.mark.slow
def test_sanity_check_control_and_randomised(explainer, randomised, sample_rgb):
    from yolocam_core.metrics import sanity_check

    image = sample_rgb["bus.jpg"]
    detections = [d for d in explainer.detector.detect(image) if d.score >= CONFIDENT]
    same = sanity_check(explainer, explainer, image, detections, "gradcam", [0])
    np.testing.assert_allclose(same, 1.0)
    rho = sanity_check(explainer, randomised, image, detections, "gradcam", [0])
    assert rho.shape == (len(detections), 1)
    assert abs(float(np.nanmedian(rho))) < 0.5


@pytest.fixture(scope="module")
def randomised(explainer):
    from yolocam_core.metrics import randomised_explainer

    return randomised_explainer(explainer)


@pytest.fixture(scope="module")
def proof(explainer, randomised, sample_rgb):
    """Every method and scale on the confident detections of both sample photos."""
    from yolocam_core.cams import method_names
    from yolocam_core.evaluate import ScoringSettings, evaluate_image

    rows = []
    for name in SAMPLES:
        image = sample_rgb[name]
        fwd = explainer.forward(image)
        detections = [d for d in explainer.detect(fwd) if d.score >= CONFIDENT]
        result = evaluate_image(
            explainer,
            fwd,
            method_names(),
            detections=detections,
            name=name,
            settings=ScoringSettings(steps=PROOF_STEPS),
            random_explainer=randomised,
        )
        rows += result.rows
    return rows


@pytest.mark.slow
def test_gradcam_beats_the_random_map_on_confident_detections(proof):
    from yolocam_core.cli.evaluate import format_summary
    from yolocam_core.evaluate import OWN, reading, summarize

    summary = summarize(proof)
    print(
        f"\nbus.jpg + zidane.jpg, detections with score >= 0.5, {PROOF_STEPS} steps, grey "
        "fill, 3 random maps per scale:"
    )
    print(format_summary(summary))
    for scale in [*dict.fromkeys(r.scale for r in proof), OWN]:
        print(reading(summary, scale))
    by = {(s["method"], s["scale"]): s for s in summary}
    own = by[("gradcam", OWN)]
    assert own["detections"] >= 5
    assert own["deletion_auc"] < own["random_deletion_auc"]
    assert own["insertion_auc"] > own["random_insertion_auc"]
    # per scale, the mean over the detections predicted at that scale, at their scale
    for scale in sorted({r.detection_scale for r in proof}):
        rows = [r for r in proof if r.method == "gradcam" and r.scale == scale and r.own_scale]
        mean = {k: np.mean([getattr(r, k) for r in rows]) for k in SUMMARY_KEYS}
        assert mean["deletion_auc"] < mean["random_deletion_auc"], (scale, mean)
        assert mean["insertion_auc"] > mean["random_insertion_auc"], (scale, mean)
    # the sanity check: randomising the head's last layers changes Grad-CAM's maps
    assert abs(own["sanity_spearman"]) < 0.5


@pytest.mark.slow
def test_rows_are_complete_and_in_range(proof):
    from yolocam_core.cams import method_names

    detections = {(r.image, r.detection) for r in proof}
    assert len(proof) == len(detections) * len(method_names()) * 2
    for r in proof:
        assert 0.0 <= r.energy_pointing_game <= 1.0
        for value in (r.deletion_auc, r.insertion_auc, r.random_deletion_auc):
            assert 0.0 <= value <= 1.0
        assert r.score >= CONFIDENT


@pytest.mark.slow
def test_instance_support_and_drise_agreement_columns(explainer, sample_rgb):
    """Each row's instance hit, support and D-RISE agreement equal the metrics computed
    directly from the method's and D-RISE's maps of the same detection."""
    from yolocam_core.cams import DRise
    from yolocam_core.evaluate import ScoringSettings, evaluate_image, summarize
    from yolocam_core.metrics import agreement, instance_hit, same_class_others
    from yolocam_core.targets import DetectionTarget

    fwd = explainer.forward(sample_rgb["bus.jpg"])
    detections = [d for d in explainer.detect(fwd) if d.score >= CONFIDENT]
    assert sum(d.class_name == "person" for d in detections) >= 2  # several instances
    targets = [DetectionTarget(d) for d in detections]
    reference = explainer.explain_many(fwd, targets, DRise(masks=200, seed=0))
    result = evaluate_image(
        explainer,
        fwd,
        ["gradcam", "odam"],
        [0],
        detections=detections,
        settings=ScoringSettings(steps=4, seeds=(0,)),
        reference=reference,
    )
    for method in ("gradcam", "odam"):
        maps = explainer.explain_many(fwd, targets, method, [0], norm="per-map")
        rows = [r for r in result.rows if r.method == method]
        for r, e in zip(rows, maps, strict=True):
            grid, heat = e.maps[0].grid_map, e.maps[0].heatmap
            others = same_class_others(detections, r.detection)
            assert r.instance_hit == instance_hit(heat, detections[r.detection].box_xyxy, others)
            assert r.support == pytest.approx(float((grid > 0).mean()))
            expected = agreement(grid, reference[r.detection].by_scale(0).grid_map)
            assert r.drise_spearman == pytest.approx(expected)
    by = {(s["method"], s["scale"]): s for s in summarize(result.rows)}
    assert 0.0 <= by[("odam", 0)]["instance_hit"] <= 1.0
    assert by[("odam", 0)]["drise_spearman"] is not None
    with pytest.raises(ValueError, match="reference has"):
        evaluate_image(explainer, fwd, ["gradcam"], [0], detections=detections,
                       reference=reference[:1])  # fmt: skip


def test_reading_ranks_no_method_when_only_one_was_measured():
    from yolocam_core.evaluate import OWN, reading

    item = {
        "method": "seed",
        "scale": OWN,
        "scale_label": "own",
        "deletion_auc": 0.1,
        "random_deletion_auc": 0.3,
        "insertion_auc": 0.7,
        "random_insertion_auc": 0.4,
    }
    text = reading([item])
    assert "most faithful" not in text and "fastest" not in text
    assert text.startswith("At each detection's own scale, seed (the only method measured")
    assert "deletion AUC 0.10 vs 0.30 for a random map (lower" in text
    assert "insertion AUC 0.70 vs 0.40 (higher" in text
    two = reading([item, {**item, "method": "gradcam", "deletion_auc": 0.2}])
    assert "seed is the most faithful" in two


def test_reading_calls_a_near_tie_with_the_random_map_a_tie():
    from yolocam_core.evaluate import OWN, reading

    base = {"scale": OWN, "scale_label": "own", "random_deletion_auc": 0.072,
            "random_insertion_auc": 0.40}  # fmt: skip
    tie = [
        {**base, "method": "gradcam++", "deletion_auc": 0.070, "insertion_auc": 0.41},
        {**base, "method": "odam", "deletion_auc": 0.071, "insertion_auc": 0.405},
    ]
    text = reading(tie)
    assert "no method drops the score faster than a random map" in text
    assert "none restores it faster than a random map" in text
    clear = [{**tie[0], "deletion_auc": 0.03, "insertion_auc": 0.6}, tie[1]]
    assert "gradcam++ is the most faithful" in reading(clear)
