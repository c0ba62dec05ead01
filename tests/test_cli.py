"""The `yolocam` command, run in-process through its entry point."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from yolocam_core.cli.main import main


def run(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_detect_json_schema(capsys, samples):
    code, out, err = run(
        capsys, "detect", str(samples["bus.jpg"]), str(samples["zidane.jpg"]), "--json"
    )
    assert code == 0, err
    report = json.loads(out)
    assert [r["image"] for r in report] == [str(samples["bus.jpg"]), str(samples["zidane.jpg"])]
    bus = report[0]
    assert (bus["width"], bus["height"]) == (810, 1080)
    assert {d["class_name"] for d in bus["detections"]} >= {"person", "bus"}
    for det in bus["detections"]:
        assert set(det) == {
            "class_id",
            "class_name",
            "score",
            "box_xyxy",
            "scale",
            "cell",
            "anchor",
        }
        x1, y1, x2, y2 = det["box_xyxy"]
        assert 0 <= x1 < x2 <= 810 and 0 <= y1 < y2 <= 1080
        assert det["scale"] in (0, 1) and det["anchor"] in (0, 1, 2)
    scores = [d["score"] for d in bus["detections"]]
    assert scores == sorted(scores, reverse=True) and min(scores) > 0.25


def test_detect_table_and_thresholds(capsys, samples):
    code, out, _ = run(capsys, "detect", str(samples["bus.jpg"]), "--score", "0.9")
    assert code == 0
    assert "bus.jpg (810×1080)" in out
    high = [line for line in out.splitlines() if "stride" in line]
    code, out_low, _ = run(capsys, "detect", str(samples["bus.jpg"]), "--score", "0.3")
    low = [line for line in out_low.splitlines() if "stride" in line]
    assert 0 < len(high) < len(low)


def test_detect_bad_files_are_one_line_each_and_others_still_run(capsys, samples, tmp_path):
    text = tmp_path / "notes.txt"
    text.write_text("not an image")
    empty = tmp_path / "empty.jpg"
    empty.write_bytes(b"")
    code, out, err = run(
        capsys,
        "detect",
        str(tmp_path / "missing.jpg"),
        str(text),
        str(empty),
        str(samples["zidane.jpg"]),
    )
    assert code == 1
    lines = err.strip().splitlines()
    assert len(lines) == 3
    assert "missing.jpg: no such file" in lines[0]
    assert "notes.txt: not an image" in lines[1]
    assert "empty.jpg: the file is empty" in lines[2]
    assert all(line.startswith("yolocam: error: ") for line in lines)
    assert "zidane.jpg (1280×720)" in out


def test_usage_error_is_one_line(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["detect", "x.jpg", "--score", "2"])
    assert exc.value.code == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "outside [0, 1]" in err


def test_unknown_model_is_one_line(capsys, samples):
    code, _, err = run(capsys, "detect", str(samples["bus.jpg"]), "--model", "yolov9000")
    assert code == 1
    assert err.strip().splitlines() == [
        "yolocam: error: unknown model 'yolov9000'; available: yolov4-tiny"
    ]


def test_explain_writes_overlays_sheet_and_raw_maps(capsys, samples, tmp_path, detector):
    code, out, err = run(
        capsys,
        "explain",
        str(samples["bus.jpg"]),
        "--target",
        "detection:0",
        "--method",
        "gradcam",
        "--out",
        str(tmp_path),
        "--json",
    )
    assert code == 0, err
    report = json.loads(out)
    assert report["method"] == "gradcam" and report["target"].startswith("person")
    assert [s["scale"] for s in report["scales"]] == [0, 1]
    for item, head in zip(report["scales"], detector.heads, strict=True):
        grid = np.load(item["raw_map"])
        assert grid.shape == head.grid
        assert item["label"] == head.label
        from PIL import Image

        assert Image.open(item["overlay"]).size == (810, 1080)
    # The explained score at the detection's own scale is the detection's score.
    det = detector.detect(str(samples["bus.jpg"]))[0]
    assert report["scales"][det.scale]["score"] == pytest.approx(det.score, abs=1e-4)
    assert (tmp_path / report["sheet"].split("/")[-1]).is_file()


@pytest.mark.parametrize(
    ("target", "message"),
    [
        ("detection:99", "detection(s)"),
        ("class:unicorn", "unknown class"),
        ("box:1", "use detection:K, class:NAME or seed"),
    ],
)
def test_explain_bad_target(capsys, samples, tmp_path, target, message):
    code, _, err = run(
        capsys, "explain", str(samples["zidane.jpg"]), "--target", target, "--out", str(tmp_path)
    )
    assert code == 1
    assert len(err.strip().splitlines()) == 1 and message in err


def test_explain_class_and_seed_with_one_scale(capsys, samples, tmp_path):
    code, out, err = run(
        capsys,
        "explain",
        str(samples["zidane.jpg"]),
        "--target",
        "class:tie",
        "--scales",
        "1",
        "--method",
        "seed",
        "--norm",
        "shared",
        "--out",
        str(tmp_path),
        "--json",
    )
    assert code == 0, err
    assert [s["scale"] for s in json.loads(out)["scales"]] == [1]
    code, out, err = run(
        capsys, "explain", str(samples["zidane.jpg"]), "--target", "seed", "--out", str(tmp_path)
    )
    assert code == 0, err
    assert "whole head output" in out


def test_console_script_help_is_fast_and_lists_commands():
    result = subprocess.run(
        [sys.executable, "-m", "yolocam_core.cli", "--help"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0
    assert "detect" in result.stdout and "explain" in result.stdout
    # Importing the CLI (as the console script does) must not import TensorFlow.
    check = subprocess.run(
        [sys.executable, "-c", "import yolocam_core.cli, sys; print('tensorflow' in sys.modules)"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert check.stdout.strip() == "False"
