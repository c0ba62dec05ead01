"""Our Keras conversion against OpenCV DNN's Darknet importer (an implementation nobody
here wrote): raw decoded outputs and final detections.

OpenCV's [yolo] output per head is (H·W·A, 5 + C), rows in (row, col, anchor) order:
cx, cy, w, h (fractions of the input), objectness, then objectness × sigmoid(class)
set to 0 where it is ≤ 0.2 (its region-layer threshold). We compare boxes and
objectness everywhere, class scores where OpenCV's are non-zero, and check ours are
below the threshold where OpenCV's are zero.

Tolerances: 1e-3 absolute on every value (sigmoids, box centres); box widths and
heights are ``exp(raw) · anchor / input`` and can reach a few tens with random weights,
so for boxes it is 1e-3 absolute plus 1e-3 relative.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
from darknet_helpers import (
    assert_decoded_match,
    opencv_as_decoded,
    opencv_forward,
    random_weights,
    resize_cfg,
)

from yolocam_core.detector import Detector
from yolocam_core.models.darknet import load_darknet, load_weights


def box_iou(a, b) -> float:
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def assert_same_detections(ours, theirs):
    """``ours``/``theirs``: lists of (class_id, (x1, y1, x2, y2), score). Same count;
    each of ours pairs with a distinct one of theirs of the same class, box IoU ≥ 0.95
    and score within 0.01."""
    assert len(ours) == len(theirs), f"{len(ours)} detections vs OpenCV's {len(theirs)}"
    unused = list(range(len(theirs)))
    for class_id, box, score in ours:
        candidates = [k for k in unused if theirs[k][0] == class_id]
        assert candidates, f"no OpenCV detection of class {class_id} left for {box}"
        best = max(candidates, key=lambda k: box_iou(box, theirs[k][1]))
        assert box_iou(box, theirs[best][1]) >= 0.95, (box, theirs[best])
        assert abs(score - theirs[best][2]) <= 0.01, (score, theirs[best])
        unused.remove(best)


def as_tuples(detections):
    return [(d.class_id, d.box_xyxy, d.score) for d in detections]


# -- (a) the default model with its real weights ------------------------------------------


@pytest.fixture(scope="module")
def opencv_default_net(default_model_files):
    cfg, weights, _ = default_model_files
    return cv2.dnn.readNetFromDarknet(str(cfg), str(weights))


@pytest.mark.slow
@pytest.mark.parametrize("sample", ["bus.jpg", "zidane.jpg"])
def test_default_model_matches_opencv(detector, opencv_default_net, sample_rgb, sample):
    image = sample_rgb[sample]
    tensor, letterbox = detector.preprocess(image)
    net_h, net_w = detector.input_size
    blob = cv2.dnn.blobFromImage(image, 1 / 255.0, (net_w, net_h), swapRB=False, crop=False)
    # Our preprocessing is OpenCV's blobFromImage (resize INTER_LINEAR, then /255).
    np.testing.assert_allclose(blob.transpose(0, 2, 3, 1), tensor, atol=1e-6)

    net = opencv_default_net
    net.setInput(blob)
    theirs = opencv_as_decoded(net.forward(net.getUnconnectedOutLayersNames()), detector.heads)
    ours = detector.predict(tensor)
    assert_decoded_match(ours, theirs, atol=1e-3)

    ours_dets = detector.postprocess(ours, letterbox)
    theirs_dets = detector.postprocess(theirs, letterbox)
    assert ours_dets, "no detection at all on a sample photo"
    assert_same_detections(as_tuples(ours_dets), as_tuples(theirs_dets))


@pytest.mark.slow
def test_default_model_detections_with_opencv_nms(detector, opencv_default_net, sample_rgb):
    """Independent of our postprocess: threshold + cv2.dnn.NMSBoxesBatched written here
    on OpenCV's raw outputs, against our Detector.detect."""
    image = sample_rgb["bus.jpg"]
    img_h, img_w = image.shape[:2]
    net_h, net_w = detector.input_size
    net = opencv_default_net
    net.setInput(cv2.dnn.blobFromImage(image, 1 / 255.0, (net_w, net_h), swapRB=False))
    rows = np.concatenate(net.forward(net.getUnconnectedOutLayersNames()))
    boxes, scores, classes = [], [], []
    for row in rows:
        for class_id in np.nonzero(row[5:] > 0.25)[0]:
            cx, cy, w, h = row[:4] * [img_w, img_h, img_w, img_h]
            boxes.append([cx - w / 2, cy - h / 2, w, h])
            scores.append(float(row[5 + class_id]))
            classes.append(int(class_id))
    keep = np.asarray(cv2.dnn.NMSBoxesBatched(boxes, scores, classes, 0.25, 0.45)).reshape(-1)
    reference = []
    for k in keep.tolist():
        x, y, w, h = boxes[k]
        clipped = (max(x, 0), max(y, 0), min(x + w, img_w), min(y + h, img_h))
        reference.append((classes[k], clipped, scores[k]))
    ours = detector.detect(image, score_threshold=0.25, iou_threshold=0.45)
    assert len(ours) >= 4
    assert_same_detections(as_tuples(ours), reference)


# -- (b) Debian's yolov3 family with random weights -----------------------------------------

DEBIAN_MODELS = {
    # name: (input size, expected grids)
    "yolov3-tiny": (320, [(10, 10), (20, 20)]),
    "yolov3": (256, [(8, 8), (16, 16), (32, 32)]),
    "yolov3-spp": (256, [(8, 8), (16, 16), (32, 32)]),
}


def compare_with_opencv(cfg_text: str, folder: Path, seed: int):
    """Write cfg + random weights, run ours (Detector.predict) and OpenCV on one random
    input; return (built, ours, theirs). The weights file is deleted afterwards."""
    cfg = folder / "model.cfg"
    cfg.write_text(cfg_text)
    rng = np.random.default_rng(seed)
    built = load_darknet(cfg)
    weights = folder / "model.weights"
    weights.write_bytes(random_weights(built.convs, rng))
    try:
        load_weights(built, weights)
        height, width = built.input_size
        x = rng.uniform(0.0, 1.0, (1, height, width, 3)).astype(np.float32)
        outs = opencv_forward(cfg, weights, x)
    finally:
        weights.unlink()
    for out, head in zip(outs, built.heads, strict=True):
        assert out.shape == (head.grid[0] * head.grid[1] * head.num_anchors, 5 + head.num_classes)
    detector = Detector(built.model, built.heads, [], name=cfg.stem)
    return built, detector.predict(x), opencv_as_decoded(outs, built.heads)


@pytest.fixture(scope="module", params=sorted(DEBIAN_MODELS))
def debian_model(request, darknet_cfg_dir, tmp_path_factory):
    name = request.param
    size, _ = DEBIAN_MODELS[name]
    text = resize_cfg((darknet_cfg_dir / f"{name}.cfg").read_text(), size, size)
    folder = tmp_path_factory.mktemp(name)
    return name, *compare_with_opencv(text, folder, seed=len(name))


def test_debian_cfg_matches_opencv(debian_model):
    name, built, ours, theirs = debian_model
    size, grids = DEBIAN_MODELS[name]
    assert [h.grid for h in built.heads] == grids
    assert [h.stride for h in built.heads] == [size // g[1] for g in grids]
    assert_decoded_match(ours, theirs, atol=1e-3, rtol=1e-3)


def test_random_weights_exercise_the_comparison(debian_model):
    """The random model is not degenerate: raw values spread (boxes differ from their
    anchors, objectness away from 0.5) and OpenCV's threshold zeroes some class scores
    and keeps others, so both branches of the score comparison are used."""
    _, _, ours, theirs = debian_model
    for (_, obj, _), (_, _, cv_score) in zip(ours, theirs, strict=True):
        assert obj.std() > 0.05
        assert 0.05 < (cv_score > 0).mean() < 0.95


# -- (c) a yolov4-style cfg written here --------------------------------------------------

YOLOV4_STYLE = """# yolov4-style: mish, swish, logistic, relu, leaky; CSP route groups; shortcuts
# (one with an activation); SPP maxpools; scale_x_y; two heads; non-square input.
[net]
batch=64
subdivisions=8
width=160
height=128
channels=3

[convolutional]
batch_normalize=1
filters=16
size=3
stride=1
pad=1
activation=mish

[convolutional]
batch_normalize=1
filters=32
size=3
stride=2
pad=1
activation=mish

[convolutional]
batch_normalize=1
filters=32
size=1
stride=1
pad=1
activation=swish

[route]
layers=-1
groups=2
group_id=1

[convolutional]
batch_normalize=1
filters=16
size=3
stride=1
pad=1
activation=leaky

[convolutional]
batch_normalize=1
filters=16
size=1
stride=1
pad=1
activation=logistic

[shortcut]
from=-3
activation=linear

[route]
layers=-1,-6

[maxpool]
size=2
stride=2

[convolutional]
batch_normalize=1
filters=64
size=3
stride=1
pad=1
activation=leaky

### SPP ###
[convolutional]
batch_normalize=1
filters=32
size=1
stride=1
pad=1
activation=leaky

[maxpool]
stride=1
size=5

[route]
layers=-2

[maxpool]
stride=1
size=9

[route]
layers=-4

[maxpool]
stride=1
size=13

[route]
layers=-1,-3,-5,-6
### End SPP ###

[convolutional]
batch_normalize=1
filters=64
size=3
stride=2
pad=1
activation=mish

[convolutional]
batch_normalize=1
filters=64
size=1
stride=1
pad=1
activation=relu

[shortcut]
from=-2
activation=leaky

[convolutional]
size=1
stride=1
pad=1
filters=24
activation=linear

[yolo]
mask = 3,4,5
anchors = 10,14,  23,27,  37,58,  81,82,  135,169,  344,319
classes=3
num=6
scale_x_y = 1.1
jitter=.3
ignore_thresh = .7
truth_thresh = 1
iou_loss=ciou

[route]
layers = -4

[convolutional]
batch_normalize=1
filters=32
size=1
stride=1
pad=1
activation=leaky

[upsample]
stride=2

[route]
layers = -1, 9

[convolutional]
batch_normalize=1
filters=32
size=3
stride=1
pad=1
activation=swish

[convolutional]
size=1
stride=1
pad=1
filters=24
activation=linear

[yolo]
mask = 0,1,2
anchors = 10,14,  23,27,  37,58,  81,82,  135,169,  344,319
classes=3
num=6
scale_x_y = 1.2
"""


def test_yolov4_style_cfg_matches_opencv(tmp_path):
    """OpenCV 4.14's Darknet importer supports every activation used here (leaky,
    mish, swish, logistic, relu, linear — and a shortcut's activation), so all of
    them are compared against it rather than by hand."""
    built, ours, theirs = compare_with_opencv(YOLOV4_STYLE, tmp_path, seed=4)
    assert [(h.grid, h.stride, h.scale_x_y) for h in built.heads] == [
        ((16, 20), 8, 1.1),
        ((32, 40), 4, 1.2),
    ]
    assert [h.cam_layer for h in built.heads] == ["shortcut_19_leaky", "conv_26_swish"]
    assert_decoded_match(ours, theirs, atol=1e-3, rtol=1e-3)
    # A wrong scale_x_y moves a centre by (scale - 1)·(sigmoid - 0.5) of a cell, which
    # can be below 1e-3 of the input width: compare centres in cell units as well.
    for head, (boxes, _, _), (cv_boxes, _, _) in zip(built.heads, ours, theirs, strict=True):
        cells = np.array([head.grid[1], head.grid[0]])
        np.testing.assert_allclose(boxes[..., :2] * cells, cv_boxes[..., :2] * cells, atol=1e-3)
        offsets = boxes[..., :2] * cells % 1.0
        # Some sigmoid is ≥ 0.2 from 0.5, so a wrong scale moves it ≥ 0.02 cell.
        assert np.abs(offsets - 0.5).max() > 0.25
