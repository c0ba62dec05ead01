"""What yolocam writes: an explanation's files and records, the detections report, the
names of outputs, and the TensorFlow start-up (no model needed)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
from PIL import Image

from yolocam_core import render
from yolocam_core.detector import Detection
from yolocam_core.explainer import Explanation, ScaleMap
from yolocam_core.outputs import (
    detections_report,
    explanation_prefix,
    explanation_record,
    image_tag,
    save_explanation,
    target_stem,
)


def _explanation(height: int = 30, width: int = 40) -> Explanation:
    rng = np.random.default_rng(0)
    maps = tuple(
        ScaleMap(
            scale=s,
            label=f"{g}×{g} · stride {416 // g}",
            layer=f"conv_{s}",
            grid_map=rng.random((g, g), np.float32),
            heatmap=rng.random((height, width), np.float32),
            score=score,
            relative=score / 0.8,
            share=score / 0.81,
        )
        for s, g, score in ((0, 13, 0.8), (1, 26, 0.005))
    )
    return Explanation(
        method="gradcam",
        target="dog 0.80",
        norm="per-map",
        box_xyxy=(5.0, 5.0, 20.0, 25.0),
        image_size=(height, width),
        maps=maps,
        target_kind="detection",
        score_note="the detection's score",
        scale_scores=(0.8, 0.005),
        own_scale=0,
    )


def test_save_explanation_writes_one_naming_scheme_and_a_record(tmp_path):
    image = np.full((30, 40, 3), 100, np.uint8)
    explanation = _explanation()
    prefix = explanation_prefix(target_stem("detection", 3, "hot dog"), "gradcam++")
    assert prefix == "detection-3-hot_dog_gradcam++"
    saved = save_explanation(tmp_path, prefix, image, explanation, image_name="x.jpg")
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        [
            f"{prefix}_scale0_13x13.png",
            f"{prefix}_scale0_13x13.npy",
            f"{prefix}_scale1_26x26.png",
            f"{prefix}_scale1_26x26.npy",
            f"{prefix}_sheet.png",
            f"{prefix}.json",
        ]
    )
    for files, scale_map in zip(saved.maps, explanation.maps, strict=True):
        np.testing.assert_array_equal(np.load(files.raw_map), scale_map.grid_map)
        overlay = Image.open(files.overlay)
        assert overlay.size == (40, 30)
        # each overlay says what it shows, in its own text chunks
        claim = json.loads(overlay.text["yolocam"])
        assert claim["method"] == "gradcam" and claim["target"] == "dog 0.80"
        assert claim["norm"] == "per-map" and claim["scale_scores"] == [0.8, 0.005]
        assert claim["scale"]["scale"] == scale_map.scale and claim["own_scale"] == 0
        assert claim["scale"]["weak"] == scale_map.weak and not claim["ignores_target"]
        assert overlay.text["Title"].startswith(f"gradcam · dog 0.80 · {scale_map.label}")
        assert claim["yolocam_version"] == render.yolocam_version() and claim["model"] is None
    record = json.loads(saved.record.read_text(encoding="utf-8"))
    assert record["yolocam_version"] == render.yolocam_version()
    assert record == explanation_record(explanation, saved, "x.jpg", relative_to=tmp_path)
    assert record["image"] == "x.jpg" and record["target_kind"] == "detection"
    assert record["score_note"] == "the detection's score" and record["norm"] == "per-map"
    assert record["scale_scores"] == [0.8, 0.005] and record["own_scale"] == 0
    assert [s["weak"] for s in record["scales"]] == [False, True]
    assert record["scales"][1]["raw_map"] == f"{prefix}_scale1_26x26.npy"
    assert record["sheet"] == f"{prefix}_sheet.png"

    (tmp_path / "m").mkdir()
    named = save_explanation(tmp_path / "m", "p", image, explanation, model="yolov4-tiny")
    assert json.loads(named.record.read_text(encoding="utf-8"))["model"] == "yolov4-tiny"
    with Image.open(named.maps[0].overlay) as overlay:
        assert json.loads(overlay.text["yolocam"])["model"] == "yolov4-tiny"
    eigen = Explanation(**{**vars(explanation), "method": "eigencam"})
    record = explanation_record(eigen, saved, "x.jpg")
    assert record["ignores_target"] is True

    again = save_explanation(tmp_path / ".", "seed_seed", image, explanation, sheet=False)
    assert again.sheet is None and not (tmp_path / "seed_seed_sheet.png").exists()


def test_image_tags_tell_apart_photos_with_one_name(tmp_path, monkeypatch):
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    first, second = image_tag(tmp_path / "a" / "x.jpg"), image_tag(tmp_path / "b" / "x.jpg")
    assert first != second and first.startswith("x-") and len(first) == len("x-") + 8
    monkeypatch.chdir(tmp_path)
    assert image_tag("a/x.jpg") == first  # the resolved path, however it is written
    assert image_tag("a/../a/x.jpg") == first
    assert image_tag("a/my photo (1).jpg").startswith("my_photo__1_-")


def test_target_stems():
    assert target_stem("detection", 0, "person") == "detection-0-person"
    assert target_stem("class", 16, "dog") == "class-dog"
    assert target_stem("seed", -1) == "seed"
    assert explanation_prefix("seed", "seed", "bus-0123abcd") == "bus-0123abcd_seed_seed"


def test_detections_report_schema():
    det = Detection((1.234, 2.0, 30.0, 40.0), 16, "dog", 0.87654321, 0.9, 1, (3, 4), 2)
    report = detections_report("x.jpg", (480, 640), [det], score_threshold=0.25)
    assert list(report) == ["image", "width", "height", "score_threshold", "detections"]
    assert (report["width"], report["height"]) == (640, 480)
    assert report["detections"] == [det.to_dict()]
    assert report["detections"][0]["box_xyxy"] == [1.23, 2.0, 30.0, 40.0]


def test_tensorflow_starts_quietly_with_its_threads_capped():
    """The native start-up lines (CUDA probing, CPU features) never reach stderr; the
    thread cap of the first call holds."""
    env = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}
    loud = subprocess.run(
        [sys.executable, "-c", "import tensorflow as tf; tf.constant(0.0)"],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
    )
    assert loud.stderr, "control: TensorFlow printed nothing at start-up here; nothing to prove"
    code = (
        "import os\n"
        "from yolocam_core.runtime import start_tensorflow\n"
        "start_tensorflow(threads=1)\n"
        "start_tensorflow(threads=4)  # once per process: no effect\n"
        "import tensorflow as tf\n"
        "tf.constant(1.0) + 1.0\n"
        "print(os.environ['TF_NUM_INTRAOP_THREADS'], os.environ['TF_NUM_INTEROP_THREADS'])\n"
    )
    quiet = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=300, env=env
    )
    assert quiet.returncode == 0 and quiet.stderr == "", quiet.stderr
    assert quiet.stdout.split() == ["1", "1"]
