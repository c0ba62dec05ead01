"""`yolocam evaluate`, run in-process through the command's entry point (few steps)."""

from __future__ import annotations

import json

import pytest

from yolocam_core.cli.main import main

pytestmark = pytest.mark.slow

FAST = ("--steps", "4", "--seeds", "1")

ROW_KEYS = {
    "image",
    "detection",
    "class_name",
    "score",
    "detection_scale",
    "method",
    "scale",
    "scale_label",
    "scale_relative",
    "own_scale",
    "pointing_game",
    "energy_pointing_game",
    "deletion_auc",
    "insertion_auc",
    "random_deletion_auc",
    "random_insertion_auc",
    "sanity_spearman",
    "instance_hit",
    "support",
    "drise_spearman",
}
SUMMARY_KEYS = {
    "method",
    "scale",
    "scale_label",
    "detections",
    "pointing_game",
    "energy_pointing_game",
    "deletion_auc",
    "random_deletion_auc",
    "insertion_auc",
    "random_insertion_auc",
    "sanity_spearman",
    "instance_hit",
    "support",
    "drise_spearman",
}


def run(capsys, *argv: str) -> tuple[int, str, str]:
    try:
        code = main(list(argv))
    except SystemExit as exc:  # usage errors: argparse exits
        code = exc.code
    out, err = capsys.readouterr()
    return code, out, err


def test_json_schema(capsys, samples):
    image = str(samples["zidane.jpg"])
    code, out, err = run(
        capsys, "evaluate", image, "--methods", "gradcam,eigencam", *FAST, "--json",
        "--drise-masks", "100",
    )  # fmt: skip
    assert code == 0, err
    report = json.loads(out)
    assert set(report) == {"settings", "images", "rows", "summary"}
    assert report["settings"]["methods"] == ["gradcam", "eigencam"]
    assert report["settings"]["scales"] == [0, 1] and report["settings"]["steps"] == 4
    (entry,) = report["images"]
    assert entry["image"] == image and (entry["width"], entry["height"]) == (1280, 720)
    detections = entry["detections"]
    assert len(detections) >= 2
    rows = report["rows"]
    assert len(rows) == len(detections) * 2 * 2  # detections × methods × scales
    for row in rows:
        assert set(row) == ROW_KEYS
        assert row["image"] == image and row["method"] in ("gradcam", "eigencam")
        assert isinstance(row["pointing_game"], bool)
        assert 0 <= row["energy_pointing_game"] <= 1
        for key in ("deletion_auc", "insertion_auc", "random_deletion_auc"):
            assert 0 <= row[key] <= 1
        assert row["own_scale"] == (row["scale"] == row["detection_scale"])
        assert row["sanity_spearman"] is None or -1 <= row["sanity_spearman"] <= 1
        assert isinstance(row["instance_hit"], bool) and 0 < row["support"] <= 1
        assert -1 <= row["drise_spearman"] <= 1
        assert 0 <= row["scale_relative"] <= 1
    assert report["settings"]["drise_reference"] == {"masks": 100, "seed": 0}
    summary = report["summary"]
    assert [(s["method"], s["scale"]) for s in summary] == [
        ("gradcam", 0),
        ("gradcam", 1),
        ("gradcam", "own"),
        ("eigencam", 0),
        ("eigencam", 1),
        ("eigencam", "own"),
    ]
    for item in summary:
        assert set(item) == SUMMARY_KEYS
        assert item["detections"] == len(detections)


def test_table_by_default(capsys, samples):
    code, out, err = run(
        capsys,
        "evaluate",
        str(samples["bus.jpg"]),
        "--methods",
        "gradcam",
        "--scales",
        "0",
        "--min-score",
        "0.9",
        "--no-sanity",
        "--no-drise",
        "--details",
        *FAST,
    )
    assert code == 0, err
    assert err == ""
    assert "bus.jpg: 2 detection(s)" in out  # the 0.99 and 0.93 persons
    assert "Summary over 2 detection(s) in 1 image(s)" in out
    header = next(line for line in out.splitlines() if line.startswith("method"))
    assert header.split()[:5] == ["method", "scale", "n", "PG", "inst"]
    table = [line for line in out.splitlines() if line.startswith("gradcam ")]
    assert len(table) == 2 and "13×13 · stride 32" in table[0] and "own scale" in table[1]
    assert "At 13×13 · stride 32, " in out and "At each detection's own scale, " in out


def test_bad_files_are_one_line_each_and_others_still_run(capsys, samples, tmp_path):
    text = tmp_path / "notes.txt"
    text.write_text("not an image")
    code, out, err = run(
        capsys,
        "evaluate",
        str(tmp_path / "missing.jpg"),
        str(text),
        str(samples["zidane.jpg"]),
        "--methods",
        "eigencam",
        "--scales",
        "1",
        "--no-sanity",
        *FAST,
    )
    assert code == 1
    lines = err.strip().splitlines()
    assert len(lines) == 2 and all(line.startswith("yolocam: error: ") for line in lines)
    assert "missing.jpg: no such file" in lines[0] and "notes.txt: not an image" in lines[1]
    assert "Summary over 2 detection(s) in 1 image(s)" in out


@pytest.mark.parametrize(
    ("argv", "code", "message"),
    [
        (("--methods", "gradcam,nope"), 2, "--methods: unknown 'nope'; use all or some of"),
        (("--scales", "7"), 1, "--scales: this model has scales 0..1 (13×13"),
        (("--steps", "0"), 2, "argument --steps: 0 is outside 2..1000"),
        (("--no-drise", "--drise-masks", "50"), 1, "--drise-masks and --no-drise contradict"),
    ],
)
def test_usage_errors_are_one_line(capsys, samples, argv, code, message):
    got, out, err = run(capsys, "evaluate", str(samples["zidane.jpg"]), *argv, "--no-sanity")
    assert got == code
    assert out == ""
    assert err.count("\n") == 1 and err.startswith("yolocam: error: ") and message in err


def test_no_detection_is_not_an_error(capsys, samples):
    code, out, err = run(
        capsys, "evaluate", str(samples["zidane.jpg"]), "--score", "0.99", "--no-sanity", *FAST
    )
    assert code == 0, err
    assert "no detection at this --score" in out


def test_detections_all_below_min_score_name_min_score(capsys, samples):
    code, out, err = run(
        capsys, "evaluate", str(samples["bus.jpg"]), "--methods", "odam", "--no-drise",
        "--min-score", "0.999", "--no-sanity", *FAST,
    )  # fmt: skip
    assert code == 0, err
    assert "detection(s) scores at least --min-score 0.999; nothing to evaluate" in out
    assert "--score;" not in out


def test_instance_rate_cascade_and_drise_agreement(capsys, samples):
    """ODAM against Grad-CAM on bus.jpg's confident people: the columns the method
    choice rests on, with the cascade randomisation bounded by each method's layers."""
    code, out, err = run(
        capsys, "evaluate", str(samples["bus.jpg"]), "--methods", "gradcam,odam",
        "--scales", "0", "--min-score", "0.5", "--randomise", "cascade",
        "--drise-masks", "100", "--drise-seed", "3", "--json", *FAST,
    )  # fmt: skip
    assert code == 0, err
    report = json.loads(out)
    assert report["settings"]["sanity"] == "cascade"
    assert report["settings"]["drise_reference"] == {"masks": 100, "seed": 3}
    own = {s["method"]: s for s in report["summary"] if s["scale"] == "own"}
    assert set(own) == {"gradcam", "odam"}
    for item in own.values():
        assert 0 <= item["instance_hit"] <= item["pointing_game"] <= 1
        assert -1 <= item["sanity_spearman"] <= 1 and -1 <= item["drise_spearman"] <= 1
        assert 0 < item["support"] <= 1
    # a different D-RISE seed, a different reference
    code, again, err = run(
        capsys, "evaluate", str(samples["bus.jpg"]), "--methods", "odam", "--scales", "0",
        "--min-score", "0.5", "--no-sanity", "--drise-masks", "100", "--json", *FAST,
    )  # fmt: skip
    assert code == 0, err
    first = [r["drise_spearman"] for r in report["rows"] if r["method"] == "odam"]
    second = [r["drise_spearman"] for r in json.loads(again)["rows"]]
    assert len(first) == len(second) >= 2 and first != second


def test_drise_among_the_methods_is_the_reference_made_once(capsys, samples, monkeypatch):
    """`--methods odam,drise`: D-RISE runs once per image (its maps are the reference),
    and only a --drise-masks that differs from --masks asks for a second run."""
    from yolocam_core.cams import DRise

    runs = []
    saliency = DRise.saliency

    def counted(self, *args, **kwargs):
        runs.append(self.masks)
        return saliency(self, *args, **kwargs)

    monkeypatch.setattr(DRise, "saliency", counted)
    common = ("--scales", "0", "--min-score", "0.5", "--no-sanity", *FAST)
    image = str(samples["bus.jpg"])
    code, out, err = run(
        capsys, "evaluate", image, "--methods", "odam,drise", "--masks", "40", "--json", *common
    )
    assert code == 0, err
    report = json.loads(out)
    assert runs == [40]
    assert report["settings"]["drise_reference"] == {"masks": 40, "seed": 0}
    shared = [r for r in report["rows"] if r["method"] == "drise"]
    odam = [r["drise_spearman"] for r in report["rows"] if r["method"] == "odam"]
    assert len(shared) == len(odam) >= 2
    assert all(r["drise_spearman"] is None for r in shared)  # the reference itself
    assert all(-1 <= v < 1 for v in odam)

    # Another reference: D-RISE made twice, its own maps the same as when shared.
    runs.clear()
    code, again, err = run(
        capsys, "evaluate", image, "--methods", "odam,drise", "--masks", "40",
        "--drise-masks", "30", "--json", *common,
    )  # fmt: skip
    assert code == 0, err
    assert sorted(runs) == [30, 40]
    report = json.loads(again)
    assert report["settings"]["drise_reference"] == {"masks": 30, "seed": 0}
    fresh = [r for r in report["rows"] if r["method"] == "drise"]
    assert all(-1 <= r["drise_spearman"] <= 1 for r in fresh)
    same = ("pointing_game", "instance_hit", "deletion_auc", "insertion_auc", "support")
    assert [[r[k] for k in same] for r in fresh] == [[r[k] for k in same] for r in shared]

    # The table names the reference.
    code, out, err = run(
        capsys, "evaluate", image, "--methods", "odam", "--drise-masks", "30", *common
    )
    assert code == 0, err
    assert "D-RISE reference 30 masks 16×16 p=0.5 seed 0" in out
