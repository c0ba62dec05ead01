"""Darknet models from your own files, through ``load_detector(path)`` and the CLI.

OpenCV DNN's Darknet importer is the reference (an implementation nobody here wrote):
Debian's yolov3.cfg (80 classes) and a three-scale yolov4-style cfg (mish, swish, SPP,
scale_x_y, letter_box, 7 classes) with random weights give the same raw decoded
outputs; options (input size, anchors, class names) equal editing the cfg; weights
that do not fit say expected and actual bytes; conversions are cached by content.
"""

from __future__ import annotations

import json
import re
import warnings
from pathlib import Path

import numpy as np
import pytest
from darknet_helpers import (
    assert_decoded_match,
    opencv_as_decoded,
    opencv_forward,
    random_weights,
    resize_cfg,
)

from yolocam_core import load_detector
from yolocam_core.errors import ConfigError, ModelFileError, ModelNotFoundError, WeightsError
from yolocam_core.models.classes import COCO_CLASSES
from yolocam_core.models.darknet import load_darknet

YOLOV4_STYLE_3 = """# three heads; mish, swish, leaky; SPP; scale_x_y; letter_box; 7 classes
[net]
width=160
height=160
channels=3
letter_box=1

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
size=3
stride=2
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
filters=64
size=3
stride=2
pad=1
activation=mish

[convolutional]
batch_normalize=1
filters=64
size=3
stride=2
pad=1
activation=leaky

### SPP ###
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
size=1
stride=1
pad=1
activation=leaky

[convolutional]
size=1
stride=1
pad=1
filters=36
activation=linear

[yolo]
mask = 6,7,8
anchors = 12,16, 19,36, 40,28, 36,75, 76,55, 72,146, 142,110, 192,243, 459,401
classes=7
num=9
scale_x_y = 1.05

[route]
layers=-3

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
layers=-1, 4

[convolutional]
batch_normalize=1
filters=64
size=3
stride=1
pad=1
activation=mish

[convolutional]
size=1
stride=1
pad=1
filters=36
activation=linear

[yolo]
mask = 3,4,5
anchors = 12,16, 19,36, 40,28, 36,75, 76,55, 72,146, 142,110, 192,243, 459,401
classes=7
num=9
scale_x_y = 1.1

[route]
layers=-3

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
layers=-1, 3

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
filters=36
activation=linear

[yolo]
mask = 0,1,2
anchors = 12,16, 19,36, 40,28, 36,75, 76,55, 72,146, 142,110, 192,243, 459,401
classes=7
num=9
scale_x_y = 1.2
"""
V4_CLASSES = ["ant", "bee", "cat", "dog", "eel", "fox", "gnu"]


def write_model(folder: Path, stem: str, cfg_text: str, seed: int) -> tuple[Path, Path]:
    """cfg and random weights (``<stem>.weights`` beside ``<stem>.cfg``)."""
    cfg = folder / f"{stem}.cfg"
    cfg.write_text(cfg_text)
    weights = folder / f"{stem}.weights"
    weights.write_bytes(random_weights(load_darknet(cfg).convs, np.random.default_rng(seed)))
    return cfg, weights


def compare(detector, cfg: Path, weights: Path, seed: int) -> None:
    """Our detector's decoded heads against OpenCV's on one random input."""
    height, width = detector.input_size
    x = np.random.default_rng(seed).uniform(0.0, 1.0, (1, height, width, 3)).astype(np.float32)
    theirs = opencv_as_decoded(opencv_forward(cfg, weights, x), detector.heads)
    assert_decoded_match(detector.predict(x), theirs, atol=1e-3, rtol=1e-3)


def with_classes(text: str, classes: int, anchors_per_head: int = 3) -> str:
    """A cfg for another class count: every [yolo] ``classes=`` and the ``filters=`` of
    the convolution before it."""
    text = re.sub(r"(?m)^classes\s*=\s*\d+", f"classes={classes}", text)
    return re.sub(r"(?m)^filters\s*=\s*255", f"filters={anchors_per_head * (5 + classes)}", text)


@pytest.fixture(scope="module")
def yolov3_files(darknet_cfg_dir, tmp_path_factory):
    folder = tmp_path_factory.mktemp("yolov3")
    text = resize_cfg((darknet_cfg_dir / "yolov3.cfg").read_text(), 256, 256)
    cfg, weights = write_model(folder, "yolov3", text, seed=3)
    yield cfg, weights
    weights.unlink()  # 248 MB


def test_yolov3_cfg_by_path_matches_opencv(yolov3_files):
    cfg, weights = yolov3_files
    detector = load_detector(str(cfg), use_cache=False)  # weights found beside the cfg
    assert [h.grid for h in detector.heads] == [(8, 8), (16, 16), (32, 32)]
    assert detector.class_names == COCO_CLASSES  # 80 classes: the COCO preset
    assert detector.name == "yolov3.cfg" and not detector.letterbox
    compare(detector, cfg, weights, seed=30)


def test_yolov4_style_three_scales_custom_classes_match_opencv(tmp_path):
    cfg, weights = write_model(tmp_path, "v4", YOLOV4_STYLE_3, seed=4)
    names = tmp_path / "v4.names"
    names.write_text("\n".join(V4_CLASSES))
    detector = load_detector(cfg, classes=names, use_cache=False)
    assert [(h.grid, h.stride, h.scale_x_y) for h in detector.heads] == [
        ((5, 5), 32, 1.05),
        ((10, 10), 16, 1.1),
        ((20, 20), 8, 1.2),
    ]
    assert detector.class_names == tuple(V4_CLASSES) and detector.letterbox  # letter_box=1
    assert [h.cam_layer for h in detector.heads] == [
        "conv_12_leaky",
        "conv_19_mish",
        "conv_26_swish",
    ]
    compare(detector, cfg, weights, seed=40)
    assert not load_detector(cfg, classes=names, letterbox=False, use_cache=False).letterbox


def test_options_equal_editing_the_cfg(darknet_cfg_dir, tmp_path):
    """yolov3-tiny with 5 classes, run at 320 with other anchors: the same as OpenCV on
    a cfg edited by hand to that size and those anchors."""
    text = with_classes((darknet_cfg_dir / "yolov3-tiny.cfg").read_text(), 5)
    cfg, weights = write_model(tmp_path, "tiny5", text, seed=5)
    anchors = "8,10, 20,22, 30,50, 70,80, 120,150, 300,280"
    detector = load_detector(
        cfg, input_size=320, anchors=anchors, classes=list("abcde"), use_cache=False
    )
    assert [h.grid for h in detector.heads] == [(10, 10), (20, 20)]
    assert detector.heads[0].anchors == ((70, 80), (120, 150), (300, 280))
    edited = resize_cfg(text, 320, 320)
    edited = re.sub(r"(?m)^anchors\s*=.*$", f"anchors = {anchors}", edited)
    edited_cfg = tmp_path / "edited.cfg"
    edited_cfg.write_text(edited)
    compare(detector, edited_cfg, weights, seed=50)


def test_weights_that_do_not_fit_name_expected_and_actual_bytes(darknet_cfg_dir, tmp_path):
    text = with_classes((darknet_cfg_dir / "yolov3-tiny.cfg").read_text(), 5)
    cfg, weights = write_model(tmp_path, "tiny", text, seed=6)
    good = weights.read_bytes()
    for data, word in ((good + b"\0" * 8, "too long"), (good[:-4], "too short")):
        bad = tmp_path / "bad.weights"
        bad.write_bytes(data)
        with pytest.raises(WeightsError) as info:
            load_detector(cfg, weights=bad, use_cache=False)
        message = str(info.value)
        assert f"expected {len(good):,} bytes" in message, message
        assert f"got {len(data):,} bytes" in message and word in message
        assert "bad.weights does not fit tiny.cfg" in message
        assert "same classes and filters" in message


def test_weights_no_trained_model_has_are_refused_and_not_cached(darknet_cfg_dir, tmp_path):
    """The right size and header, but normal random floats: negative batch-norm variances
    (then NaN maps, and exit 0, were cached); or values that overflow when folded."""
    text = with_classes((darknet_cfg_dir / "yolov3-tiny.cfg").read_text(), 5)
    cfg, weights = write_model(tmp_path, "tiny", text, seed=7)
    data = weights.read_bytes()
    header = len(data) - 4 * sum(c.num_values for c in load_darknet(cfg).convs)
    noise = np.random.default_rng(0).normal(size=(len(data) - header) // 4).astype("<f4")
    huge = np.full_like(noise, 3e30)
    for values, words in ((noise, "batch-norm variances are negative"), (huge, "overflows")):
        bad = tmp_path / "noise.weights"
        bad.write_bytes(data[:header] + values.tobytes())
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # said in the message, not warned
            with pytest.raises(WeightsError, match=words) as info:
                load_detector(cfg, weights=bad)
        assert "noise.weights" in str(info.value) and "conv_0" in str(info.value)
        with pytest.raises(WeightsError, match=words):  # refused again: nothing was cached
            load_detector(cfg, weights=bad)


def test_missing_or_wrong_files_are_named(darknet_cfg_dir, tmp_path):
    cfg = tmp_path / "alone.cfg"
    cfg.write_text((darknet_cfg_dir / "yolov3-tiny.cfg").read_text())
    with pytest.raises(ModelNotFoundError, match=r"alone\.weights does not exist; pass"):
        load_detector(cfg)
    with pytest.raises(ModelFileError, match=r"is a Darknet weights file: give its \.cfg"):
        load_detector(tmp_path / "alone.weights")
    with pytest.raises(ModelNotFoundError, match=r"nothing\.cfg: no such file"):
        load_detector(tmp_path / "nothing.cfg")
    cfg.write_bytes(b"\x00\x01\x02" * 100)
    with pytest.raises(ConfigError, match="binary file, not a Darknet cfg"):
        load_detector(cfg, weights=cfg)


def test_conversion_is_cached_by_content(darknet_cfg_dir, tmp_path, monkeypatch):
    from yolocam_core.models import darknet

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    text = with_classes((darknet_cfg_dir / "yolov3-tiny.cfg").read_text(), 2)
    text = resize_cfg(text, 128, 128)
    cfg, _ = write_model(tmp_path, "cached", text, seed=7)
    first = load_detector(cfg, classes=["a", "b"])
    entries = sorted(p.name for p in (tmp_path / "cache" / "yolocam" / "models").iterdir())
    assert len(entries) == 1 and entries[0].startswith("cached-")

    def no_build(*args, **kwargs):
        raise AssertionError("converted again although cached")

    monkeypatch.setattr(darknet, "build_model", no_build)
    again = load_detector(cfg, classes=["a", "b"])
    x = np.random.default_rng(8).uniform(0, 1, (1, 128, 128, 3)).astype(np.float32)
    for a, b in zip(first.predict(x), again.predict(x), strict=True):
        np.testing.assert_allclose(a[2], b[2], atol=1e-6)
    monkeypatch.undo()
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    load_detector(cfg, classes=["a", "b"], input_size=160)  # other options: another entry
    assert len(list((tmp_path / "cache" / "yolocam" / "models").iterdir())) == 2


def test_cli_detect_and_explain_a_darknet_model(tmp_path, capsys, samples):
    from yolocam_core.cli.main import main

    cfg, weights = write_model(tmp_path, "v4", YOLOV4_STYLE_3, seed=9)
    names = tmp_path / "v4.names"
    names.write_text("\n".join(V4_CLASSES))
    image = str(samples["zidane.jpg"])
    own = ["--model", str(cfg), "--weights", str(weights), "--classes", str(names)]
    assert main(["detect", image, *own, "--score", "0.9", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert {d["class_name"] for d in report[0]["detections"]} <= set(V4_CLASSES)
    out = tmp_path / "out"
    code = main(["explain", image, *own, "--target", "seed", "--out", str(out), "--json"])
    assert code == 0
    explained = json.loads(capsys.readouterr().out)
    assert [s["label"] for s in explained["scales"]] == [
        "5×5 · stride 32",
        "10×10 · stride 16",
        "20×20 · stride 8",
    ]
    # Weights that do not fit: one line with both sizes.
    bad = tmp_path / "bad.weights"
    bad.write_bytes(weights.read_bytes()[:-8])
    assert main(["detect", image, "--model", str(cfg), "--weights", str(bad)]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "expected" in err[0] and f"got {bad.stat().st_size:,} bytes" in err[0]
