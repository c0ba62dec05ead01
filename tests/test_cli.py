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
    # What made these detections, as a batch's detections.json says it.
    assert bus["model"] == "yolov4-tiny" and "note" not in bus and "image_note" not in bus
    assert (bus["score_threshold"], bus["iou_threshold"], bus["max_detections"]) == (
        0.25,
        0.45,
        300,
    )
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
    # Which model, thresholds and box: the caption "person 0.99" could name two boxes.
    assert report["model"] == "yolov4-tiny"
    assert report["thresholds"] == {"score": 0.25, "iou": 0.45}
    assert report["detection"]["index"] == 0
    assert report["detection"]["box_xyxy"] == [round(v, 2) for v in det.box_xyxy]
    on_disk = json.loads(next(tmp_path.glob("*gradcam.json")).read_text(encoding="utf-8"))
    assert on_disk["model"] == "yolov4-tiny" and on_disk["detection"] == report["detection"]


@pytest.mark.parametrize(
    ("target", "status", "message"),
    [
        ("detection:99", 1, "detection(s)"),
        ("class:unicorn", 1, "unknown class"),
        ("box:1", 2, "use detection:K, class:NAME or seed"),  # malformed: a usage error
    ],
)
def test_explain_bad_target(capsys, samples, tmp_path, target, status, message):
    code, _, err = run(
        capsys, "explain", str(samples["zidane.jpg"]), "--target", target, "--out", str(tmp_path)
    )
    assert code == status
    assert len(err.strip().splitlines()) == 1 and message in err


def test_a_class_the_photo_has_none_of_is_explained_with_a_note(capsys, samples, tmp_path):
    image = str(samples["bus.jpg"])
    args = ("--scales", "0", "--method", "gradcam", "--out", str(tmp_path))
    code, _, err = run(capsys, "explain", image, "--target", "class:giraffe", *args)
    assert code == 0, err
    assert "no giraffe detected at score ≥ 0.25; the maps show what raises the giraffe" in err
    code, _, err = run(capsys, "explain", image, "--target", "class:bus", *args)
    assert code == 0 and "detected at score" not in err
    # the bus is found but cut by the cap: the note says so, not "no bus detected"
    code, _, err = run(
        capsys, "explain", image, "--target", "class:bus", "--max-detections", "1", *args
    )
    assert code == 0, err
    assert "no bus among the 1 detections kept (--max-detections) at score ≥ 0.25" in err


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


# -- methods, targets and detections (auto, odam, drise, --attribute, --max-detections) --


def test_the_cli_copies_of_library_constants_agree():
    """The CLI's options and the batch settings import no TensorFlow (``--help`` and a
    batch manifest stay light), so they spell some library defaults again: the same."""
    import dataclasses

    from yolocam_core.batch.settings import BatchSettings
    from yolocam_core.cams import DRise
    from yolocam_core.cli import options
    from yolocam_core.detector import DEFAULT_MAX_DETECTIONS
    from yolocam_core.targets import ATTRIBUTES

    assert options.ATTRIBUTES == ATTRIBUTES
    assert options.DEFAULT_MAX_DETECTIONS == DEFAULT_MAX_DETECTIONS
    assert options.DEFAULT_MASKS == DRise().masks
    batch = {f.name: f.default for f in dataclasses.fields(BatchSettings)}
    assert batch["drise_masks"] == DRise().masks and batch["drise_seed"] == DRise().seed
    assert batch["drise_precision"] == DRise().precision
    assert batch["max_detections"] == DEFAULT_MAX_DETECTIONS


def test_methods_all_leaves_drise_out_unless_named():
    from yolocam_core.cli.options import parse_methods
    from yolocam_core.errors import YolocamError

    assert "drise" not in parse_methods("all") and "odam" in parse_methods("all")
    assert parse_methods("all,drise")[-1] == "drise"
    assert parse_methods(["odam", "drise"]) == ("odam", "drise")
    assert parse_methods("auto") == ("auto",)
    for bad in ("auto,gradcam", "all,gradcam", "drise,drise"):
        with pytest.raises(YolocamError):
            parse_methods(bad)


def test_explain_help_documents_auto_and_drise(capsys):
    with pytest.raises(SystemExit):
        main(["explain", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "default auto" in text and "detection: odam" in text and "seed: seed" in text
    assert "drise" in text and "--masks" in text and "--attribute" in text
    assert "--max-detections" in text


def test_explain_auto_picks_the_target_kind_s_method_and_says_so(capsys, samples, tmp_path):
    image = str(samples["bus.jpg"])
    code, out, err = run(capsys, "explain", image, "--scales", "0", "--out", str(tmp_path))
    assert code == 0, err
    assert "odam (auto: the default for a detection target)" in out.splitlines()[0]
    assert list(tmp_path.glob("*_detection-0-person_odam_scale0_*.npy"))
    # One head shown: every head's score is printed beside it (the top one too).
    assert "  score at every scale: 13×13 0.9" in out and " · 26×26 0.00" in out
    code, out, err = run(
        capsys, "explain", image, "--target", "class:bus", "--scales", "0", "--out",
        str(tmp_path), "--json",
    )  # fmt: skip
    assert code == 0, err
    assert json.loads(out)["method"] == "gradcam"
    code, out, err = run(
        capsys, "explain", image, "--method", "odam", "--scales", "0", "--out", str(tmp_path)
    )
    assert code == 0, err
    assert out.startswith("bus.jpg: odam · ") or ": odam · " in out.splitlines()[0]
    assert "auto" not in out.splitlines()[0]


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (("--target", "seed", "--method", "gradcam"), "gradcam cannot explain the whole head"),
        (("--target", "class:bus", "--method", "drise"), "drise explains one detection"),
        (
            ("--target", "seed", "--attribute", "x"),
            "needs a detection target (detection:K); a seed target explains the whole head "
            "output (the article's seed), not one score",
        ),
        (
            ("--target", "class:bus", "--attribute", "w"),
            "a class target explains its class's score summed over the image",
        ),
        (
            ("--method", "drise", "--attribute", "objectness", "--masks", "4"),
            "not its 'objectness' alone",
        ),
        (("--masks", "10"), "--masks only apply to D-RISE"),
        (("--method", "odam", "--drise-seed", "1"), "--drise-seed only apply to D-RISE"),
        (
            ("--method", "odam", "--drise-precision", "float32"),
            "--drise-precision only apply to D-RISE",
        ),
    ],
)
def test_refused_method_target_pairs_are_one_line(capsys, samples, tmp_path, argv, message):
    code, out, err = run(capsys, "explain", str(samples["bus.jpg"]), *argv, "--out", str(tmp_path))
    assert code == 1
    assert out == "" and not list(tmp_path.iterdir())
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("yolocam: error: ") and message in lines[0]


@pytest.mark.parametrize(
    "argv",
    [
        ("--target", "seed", "--method", "gradcam"),
        ("--target", "class:bus", "--method", "drise"),
        ("--target", "seed", "--attribute", "x"),
    ],
)
def test_pairs_known_from_the_text_are_refused_before_the_model_loads(
    capsys, samples, tmp_path, monkeypatch, argv
):
    from yolocam_core.models import ModelSpec

    def load(self):
        raise AssertionError("the model was loaded before the refusal")

    monkeypatch.setattr(ModelSpec, "load", load)
    code, out, err = run(capsys, "explain", str(samples["bus.jpg"]), *argv, "--out", str(tmp_path))
    assert code == 1 and out == "" and "the model was loaded" not in err
    assert len(err.strip().splitlines()) == 1 and err.startswith("yolocam: error: ")


def test_masks_beyond_the_library_limit_is_a_usage_error(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["explain", "x.jpg", "--method", "drise", "--masks", "20001"])
    assert exc.value.code == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "over D-RISE's limit of 20,000" in err


def test_explain_attribute_names_the_files_and_the_target(capsys, samples, tmp_path):
    code, out, err = run(
        capsys, "explain", str(samples["bus.jpg"]), "--attribute", "objectness", "--scales",
        "0", "--out", str(tmp_path), "--json",
    )  # fmt: skip
    assert code == 0, err
    report = json.loads(out)
    assert report["method"] == "odam" and "objectness" in report["target"].lower()
    assert "objectness" in report["score_note"]
    assert "-objectness_odam_scale0" in report["scales"][0]["raw_map"]


def test_explain_drise_uses_the_masks_and_seed_given(capsys, samples, tmp_path):
    code, out, err = run(
        capsys, "explain", str(samples["bus.jpg"]), "--method", "drise", "--masks", "8",
        "--drise-seed", "3", "--scales", "0", "--out", str(tmp_path), "--json",
    )  # fmt: skip
    assert code == 0, err
    report = json.loads(out)
    assert report["method"] == "drise"
    assert "8 masks" in report["scales"][0]["layer"] and "seed 3" in report["scales"][0]["layer"]
    assert np.load(report["scales"][0]["raw_map"]).max() > 0
    # the same masks through float32 and bfloat16 forwards: said on the map, the maps
    # nearly the same
    layers, maps = {}, {}
    for precision in ("float32", "bfloat16"):
        code, out, err = run(
            capsys, "explain", str(samples["bus.jpg"]), "--method", "drise", "--masks", "8",
            "--drise-seed", "3", "--scales", "0", "--out", str(tmp_path / precision), "--json",
            "--drise-precision", precision,
        )  # fmt: skip
        assert code == 0, err
        scale = json.loads(out)["scales"][0]
        layers[precision], maps[precision] = scale["layer"], np.load(scale["raw_map"]).ravel()
    assert "bfloat16" not in layers["float32"] and "bfloat16 forwards" in layers["bfloat16"]
    assert np.corrcoef(maps["float32"], maps["bfloat16"])[0, 1] > 0.99


def test_drise_progress_bar_counts_masks_on_stderr(capsys):
    from yolocam_core.cams import DRise
    from yolocam_core.cli.options import drise_progress

    with drise_progress("odam") as progress:
        assert progress is None
    with drise_progress(DRise(masks=8), enabled=True) as progress:
        progress(4, 8)
        progress(8, 8)
    err = capsys.readouterr().err
    assert "D-RISE" in err and "8/8" in err


def test_max_detections_caps_and_says_so(capsys, samples, tmp_path):
    code, out, err = run(
        capsys, "detect", str(samples["bus.jpg"]), "--max-detections", "1", "--json"
    )
    assert code == 0, err
    assert len(json.loads(out)[0]["detections"]) == 1
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("yolocam: note: ")
    assert "showing the 1 best" in lines[0]
    code, out, err = run(capsys, "detect", str(samples["bus.jpg"]))
    assert code == 0 and err == ""  # the default cap is far above this image's count
    code, _, err = run(
        capsys, "explain", str(samples["bus.jpg"]), "--target", "detection:1",
        "--max-detections", "1", "--out", str(tmp_path),
    )  # fmt: skip
    assert code == 1 and "the 1 best are kept (the max-detections cap)" in err  # why K fails


def test_evaluate_auto_and_max_detections(capsys, samples):
    code, out, err = run(
        capsys, "evaluate", str(samples["bus.jpg"]), "--methods", "auto", "--scales", "0",
        "--max-detections", "1", "--steps", "4", "--seeds", "1", "--no-sanity", "--json",
    )  # fmt: skip
    assert code == 0, err
    report = json.loads(out)
    assert report["settings"]["methods"] == ["odam"]
    assert report["settings"]["max_detections"] == 1
    assert len(report["images"][0]["detections"]) == 1
    assert {row["method"] for row in report["rows"]} == {"odam"}
    assert "yolocam: note: " in err


def test_batch_defaults_to_each_target_s_method_and_caps_detections(capsys, samples, tmp_path):
    import shutil

    import pandas as pd

    folder = tmp_path / "in"
    folder.mkdir()
    shutil.copy(samples["bus.jpg"], folder / "bus.jpg")
    out = tmp_path / "out"
    code, _, err = run(
        capsys, "batch", str(folder), "--out", str(out), "--targets", "seed", "--scales",
        "0", "--max-detections", "2",
    )  # fmt: skip
    assert code == 0, err
    summary = pd.read_csv(out / "summary.csv")
    assert set(summary["method"]) == {"seed"}
    (report,) = [json.loads(p.read_text()) for p in out.rglob("detections.json")]
    assert len(report["detections"]) == 2 and "showing the 2 best" in report["note"]
    code, _, err = run(capsys, "batch", str(folder), "--out", str(out), "--masks", "5")
    assert code == 1 and "--masks only apply to D-RISE" in err


def test_report_writes_one_self_contained_html_page(capsys, samples, tmp_path):
    import re

    page = tmp_path / "bus.html"
    code, out, err = run(
        capsys, "report", str(samples["bus.jpg"]), "--target", "detection:1", "-o", str(page),
        "--max-detections", "3",
    )  # fmt: skip
    assert code == 0, err
    assert "odam (auto: the default for a detection target)" in out and str(page) in out
    text = page.read_text(encoding="utf-8")
    assert text.startswith("<!doctype html>")
    assert not re.search(r'src="(?!data:)', text)  # every image inline
    blob = re.search(r'id="yolocam-metadata">(.*?)</script>', text, re.S).group(1)
    record = json.loads(blob)
    assert record["method"]["name"] == "odam" and record["target"]["kind"] == "detection"
    assert [s["scale"] for s in record["scales"]] == [0, 1]
    assert len(record["detections"]) == 3 and record["model"] == "yolov4-tiny"
    assert "showing the 3 best" in record["detections_note"]
    assert text.count('class="scale') == 2 and "<tr class=chosen><td>1</td>" in text


def test_report_refusals_are_one_line_and_write_nothing(capsys, samples, tmp_path):
    page = tmp_path / "seed.html"
    image = str(samples["bus.jpg"])
    code, _, err = run(
        capsys, "report", image, "--target", "seed", "--method", "gradcam", "-o", str(page)
    )
    assert code == 1 and "gradcam cannot explain the whole head" in err
    assert len(err.strip().splitlines()) == 1 and not page.exists()
    code, _, err = run(capsys, "report", image, "-o", str(tmp_path / "nowhere" / "r.html"))
    assert code == 1 and "no folder" in err


def test_evaluate_drise_with_its_options(capsys, samples):
    code, out, err = run(
        capsys, "evaluate", str(samples["bus.jpg"]), "--methods", "drise", "--masks", "4",
        "--scales", "0", "--max-detections", "1", "--steps", "4", "--seeds", "1",
        "--no-sanity", "--json",
    )  # fmt: skip
    assert code == 0, err
    rows = json.loads(out)["rows"]
    assert len(rows) == 1 and rows[0]["method"] == "drise"


def test_detect_json_names_a_photo_the_network_sees_badly(capsys, samples, tmp_path, detector):
    """An elongated photo's warning is in detect --json, as in a batch's detections.json."""
    from PIL import Image

    band = tmp_path / "band.jpg"
    with Image.open(samples["bus.jpg"]) as image:
        image.crop((0, 200, image.width, 260)).save(band)  # 810×60
    code, out, err = run(capsys, "detect", str(band), "--json")
    assert code == 0, err
    (report,) = json.loads(out)
    warning = detector.image_warning((60, 810))
    assert warning and report["image_note"] == warning
