"""`yolocam batch`: a folder with good and corrupt files, resume, interruption, and the
same summary rows from the local engine (1 and 2 workers) and from Ray Data.

The good images are half-size copies of the sample photos (bus 405×540 with 4
detections, zidane 640×360 with 2), to keep the suite fast.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from yolocam_core.batch import (
    DONE_MARKER,
    ERROR_MARKER,
    METRIC_COLUMNS,
    SUMMARY_COLUMNS,
    TIMING_COLUMNS,
    BatchSettings,
    image_dir,
    run_batch,
)
from yolocam_core.cli.main import main
from yolocam_core.errors import YolocamError

pytestmark = pytest.mark.slow

GOOD = ("bus.jpg", "more/zidane.jpg")
BAD = {
    "empty.png": "the file is empty",
    "text.jpg": "not an image file",
    "trunc.jpg": "truncated or corrupt",
}
METHODS = ("gradcam", "eigencam")
#: The settings of the reference run (the CLI's defaults plus two methods).
SETTINGS = BatchSettings(methods=METHODS)


def _small_jpeg(source: Path, target: Path) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    with Image.open(source) as image:
        image.resize((image.width // 2, image.height // 2)).save(target, "JPEG", quality=90)


@pytest.fixture(scope="module")
def folder(tmp_path_factory, samples) -> Path:
    """2 good images (one in a subfolder), 3 corrupt ones and a file that is no image."""
    root = tmp_path_factory.mktemp("batch-in")
    _small_jpeg(samples["bus.jpg"], root / "bus.jpg")
    _small_jpeg(samples["zidane.jpg"], root / "more" / "zidane.jpg")
    (root / "trunc.jpg").write_bytes((root / "bus.jpg").read_bytes()[:3000])
    (root / "text.jpg").write_text("this is not a photo\n")
    (root / "empty.png").write_bytes(b"")
    (root / "notes.txt").write_text("not listed: not an image extension\n")
    return root


def frame_without_timing(path: Path) -> pd.DataFrame:
    return pd.read_parquet(path).drop(columns=list(TIMING_COLUMNS))


@pytest.fixture(scope="module")
def reference(folder, tmp_path_factory):
    """The CLI, in process, with local engine and 1 worker: (out, code, stdout, stderr)."""
    out = tmp_path_factory.mktemp("batch-out") / "run"
    stdout, stderr = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
        code = main(["batch", str(folder), "--out", str(out), "--methods", *METHODS])
    return out, code, stdout.getvalue(), stderr.getvalue()


def test_summary_has_rows_for_good_images_and_errors_for_corrupt_ones(reference, folder, detector):
    out, code, stdout, stderr = reference
    assert code == 1, stderr
    lines = stderr.strip().splitlines()
    assert len(lines) == 4, stderr  # one line per failed file, then the summary line
    assert all(line.startswith("yolocam: error: ") for line in lines)
    for name, message in BAD.items():
        assert any(f": {name}: " in line and message in line for line in lines[:3]), lines
    assert "3 of 5 image(s) failed" in lines[3] and str(out / "summary.csv") in lines[3]
    assert "5 image(s): 5 processed, 0 already complete, 3 failed" in stdout

    frame = pd.read_parquet(out / "summary.parquet")
    assert list(frame.columns) == list(SUMMARY_COLUMNS)
    csv = pd.read_csv(out / "summary.csv", dtype=SUMMARY_COLUMNS)
    pd.testing.assert_frame_equal(csv, frame, check_dtype=False, rtol=1e-9)
    assert sorted(set(frame["image"])) == sorted([*GOOD, *BAD])  # notes.txt not listed

    errors = frame[frame["status"] == "error"]
    assert sorted(errors["image"]) == sorted(BAD)
    for row in errors.itertuples():
        assert BAD[row.image] in row.error and row.error.startswith(f"{row.image}: ")
        assert pd.isna(row.method) and pd.isna(row.detection)
        assert (image_dir(out, row.image) / ERROR_MARKER).is_file()
        assert not (image_dir(out, row.image) / DONE_MARKER).exists()

    for rel in GOOD:
        rows = frame[frame["image"] == rel]
        detections = detector.detect(str(folder / rel))
        assert len(detections) >= 2
        heads = detector.heads
        assert len(rows) == len(detections) * len(METHODS) * len(heads)
        assert (rows["status"] == "ok").all() and (rows["n_detections"] == len(detections)).all()
        folder_out = image_dir(out, rel)
        saved = json.loads((folder_out / "detections.json").read_text())
        assert saved["detections"] == [d.to_dict() for d in detections]
        marker = json.loads((folder_out / DONE_MARKER).read_text())
        assert len(marker["rows"]) == len(rows)
        width, height = Image.open(folder / rel).size
        for row in rows.itertuples():
            det = detections[row.detection]
            assert (row.class_name, row.det_scale) == (det.class_name, det.scale)
            assert [row.x1, row.y1, row.x2, row.y2] == pytest.approx(det.box_xyxy)
            assert row.target == "detection" and row.method in METHODS
            assert row.grid == "{}x{}".format(*heads[row.scale].grid)
            assert np.load(out / row.raw_map).shape == heads[row.scale].grid
            assert Image.open(out / row.overlay).size == (width, height)
            if row.method == "gradcam" and row.scale == det.scale:
                # at its own scale, the explained score is the detection's score
                assert row.target_score == pytest.approx(det.score, abs=1e-4)
        # Each row says how strong its scale's score is beside the others' and how the
        # overlay was normalised, as the JSON record next to it does.
        for (_, method), group in rows.groupby(["detection", "method"]):
            scores = group["target_score"].to_numpy(float)
            assert group["relative"].to_numpy(float) == pytest.approx(scores / scores.max())
            assert group["share"].to_numpy(float) == pytest.approx(scores / scores.sum())
            assert group["weak"].tolist() == [bool(s < 0.01 * scores.max()) for s in scores]
            assert group["ignores_target"].tolist() == [method == "eigencam"] * len(group)
            # a detection's class score compares across scales: one shared colour scale
            assert set(group["norm"]) == {"shared"}


def test_resume_skips_finished_images_and_retries_failed_ones(reference, folder, detector):
    out = reference[0]
    before = pd.read_parquet(out / "summary.parquet")
    markers = {rel: image_dir(out, rel) / DONE_MARKER for rel in GOOD}
    mtimes = {rel: m.stat().st_mtime_ns for rel, m in markers.items()}
    overlay = out / before[before["status"] == "ok"]["overlay"].iloc[0]
    overlay_mtime = overlay.stat().st_mtime_ns
    errors: list[str] = []

    report = run_batch(
        folder,
        out,
        SETTINGS,
        progress=False,
        log=errors.append,
    )
    assert (report.total, report.skipped, report.computed, report.failed) == (5, 2, 3, 3)
    assert len(errors) == 3  # the corrupt files were retried, and failed again
    assert {rel: m.stat().st_mtime_ns for rel, m in markers.items()} == mtimes
    assert overlay.stat().st_mtime_ns == overlay_mtime
    after = pd.read_parquet(out / "summary.parquet")
    pd.testing.assert_frame_equal(
        after.drop(columns=list(TIMING_COLUMNS)), before.drop(columns=list(TIMING_COLUMNS))
    )
    ok = before["status"] == "ok"
    assert after[ok]["seconds"].tolist() == before[ok]["seconds"].tolist()  # not recomputed

    # With nothing left to do, the model is not even loaded; the summary is rebuilt
    # from the markers alone (copy2 keeps size and mtime, so the sources match).
    good_only = folder.parent / "good-only"
    copy = folder.parent / "good-only-out"
    for rel in GOOD:
        (good_only / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(folder / rel, good_only / rel)
    shutil.copytree(out, copy)

    def no_model(settings):
        raise AssertionError("the model was loaded although every image was complete")

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr("yolocam_core.batch.runner.load_explainer", no_model)
        report = run_batch(good_only, copy, SETTINGS, progress=False)
    assert (report.skipped, report.computed, report.failed) == (2, 0, 0)
    rebuilt = pd.read_parquet(copy / "summary.parquet")
    pd.testing.assert_frame_equal(rebuilt, before[ok].reset_index(drop=True))

    # Other settings make every marker stale: everything is recomputed.
    report = run_batch(
        good_only,
        copy,
        BatchSettings(methods=("gradcam",)),
        progress=False,
    )
    assert (report.skipped, report.computed) == (0, 2)
    assert set(pd.read_parquet(copy / "summary.parquet")["method"]) == {"gradcam"}


def test_interrupted_run_loses_nothing_that_was_finished(tmp_path, folder, detector):
    """Kill a real `yolocam batch` process after its first finished image; resume."""
    root = tmp_path / "in"
    root.mkdir()
    for k in range(4):
        for rel in GOOD:
            shutil.copy2(folder / rel, root / f"{k}-{Path(rel).name}")
    out = tmp_path / "out"
    proc = subprocess.Popen(
        [sys.executable, "-m", "yolocam_core.cli", "batch", str(root), "--out", str(out)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    deadline = time.monotonic() + 120
    try:
        while not list(out.glob(f"images/*/{DONE_MARKER}")):
            assert proc.poll() is None, proc.stderr.read().decode()
            assert time.monotonic() < deadline, "no image finished within 120 s"
            time.sleep(0.02)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
        proc.stderr.close()

    finished = {}
    for marker_path in out.glob(f"images/*/{DONE_MARKER}"):
        marker = json.loads(marker_path.read_text())  # complete JSON: written atomically
        for row in marker["rows"]:
            assert (out / row["overlay"]).is_file() and (out / row["raw_map"]).is_file()
        finished[marker["image"]] = marker_path.stat().st_mtime_ns
    assert 1 <= len(finished) < 8, "the kill did not land mid-run"
    unfinished = sorted({p.name for p in root.iterdir()} - set(finished))
    junk = image_dir(out, unfinished[0]) / "half-written.png"  # as if killed mid-image
    junk.parent.mkdir(parents=True, exist_ok=True)
    junk.write_bytes(b"\x89PNG half")

    report = run_batch(root, out, BatchSettings())
    assert (report.skipped, report.computed, report.failed) == (len(finished), 8 - len(finished), 0)
    assert not junk.exists()
    for rel, mtime in finished.items():
        assert (image_dir(out, rel) / DONE_MARKER).stat().st_mtime_ns == mtime
    frame = pd.read_parquet(out / "summary.parquet")
    assert sorted(set(frame["image"])) == sorted(p.name for p in root.iterdir())
    assert (frame["status"] == "ok").all()


def test_two_local_workers_give_the_same_rows(reference, folder, tmp_path, detector):
    out = tmp_path / "two"
    report = run_batch(folder, out, SETTINGS, workers=2, log=lambda _: None)
    assert (report.computed, report.failed) == (5, 3)
    pd.testing.assert_frame_equal(
        frame_without_timing(out / "summary.parquet"),
        frame_without_timing(reference[0] / "summary.parquet"),
    )


def test_local_workers_are_capped_at_the_cpus(folder, tmp_path, monkeypatch, detector):
    """More workers than CPUs only compete, each with its own model: capped, and said."""
    import yolocam_core.batch.runner as runner

    monkeypatch.setattr(runner, "available_cpus", lambda: 1)
    two = tmp_path / "in"
    two.mkdir()
    for name in ("bus.jpg", "more/zidane.jpg"):
        shutil.copy2(folder / name, two / Path(name).name)
    lines: list[str] = []
    settings = BatchSettings(methods=("eigencam",))
    report = run_batch(two, tmp_path / "out", settings, workers=4, log=lines.append)
    assert (report.computed, report.failed) == (2, 0)
    assert lines == [
        "yolocam: note: 4 workers asked for, 1 CPU(s) available to this process; using 1"
    ]


@pytest.mark.filterwarnings("ignore::DeprecationWarning:ray.data.context")
def test_ray_engine_gives_the_same_rows(reference, folder, tmp_path, detector):
    """Ray Data on a local Ray (2 CPUs): parallel reads, 2 actors holding the model."""
    try:
        import ray.data  # noqa: F401 - an optional extra, installed by requirements-dev.txt
    except ImportError:
        pytest.fail("Ray Data is missing: pip install -r requirements-dev.txt", pytrace=False)
    out = tmp_path / "ray"
    report = run_batch(
        folder,
        out,
        SETTINGS,
        engine="ray",
        workers=2,
        log=lambda _: None,
    )
    assert (report.computed, report.failed) == (5, 3)
    pd.testing.assert_frame_equal(
        frame_without_timing(out / "summary.parquet"),
        frame_without_timing(reference[0] / "summary.parquet"),
    )
    for rel in GOOD:
        assert (image_dir(out, rel) / DONE_MARKER).is_file()


def test_class_and_seed_targets(folder, tmp_path, detector):
    one = tmp_path / "one"
    one.mkdir()
    shutil.copy2(folder / "bus.jpg", one / "bus.jpg")
    persons = [k for k, d in enumerate(detector.detect(str(one / "bus.jpg"))) if d.class_id == 0]
    assert len(persons) >= 2

    settings = BatchSettings(targets="class:Person", scales=(1,), sheet=True)
    run_batch(one, tmp_path / "class", settings)
    frame = pd.read_parquet(tmp_path / "class" / "summary.parquet")
    # one class map, repeated for every detection of that class
    assert frame["detection"].tolist() == persons and (frame["scale"] == 1).all()
    assert set(frame["target_label"]) == {"class person"} and frame["overlay"].nunique() == 1
    assert list((image_dir(tmp_path / "class", "bus.jpg")).glob("*_sheet.png"))

    settings = BatchSettings(targets="seed", methods=("seed",))
    run_batch(one, tmp_path / "seed", settings)
    frame = pd.read_parquet(tmp_path / "seed" / "summary.parquet")
    assert frame["scale"].tolist() == [0, 1] and frame["detection"].isna().all()

    with pytest.raises(YolocamError, match="unknown class"):
        run_batch(
            one,
            tmp_path / "bad",
            BatchSettings(targets="class:unicorn"),
        )


def test_notes_of_a_photo_the_network_sees_badly_are_kept_and_said(folder, tmp_path, detector):
    """An elongated photo and a cap on detections: the run goes on, each image says why
    its results are poor (stderr, summary ``note``, ``detections.json``)."""
    one = tmp_path / "in"
    one.mkdir()
    with Image.open(folder / "bus.jpg") as image:
        image.crop((0, 200, image.width, 260)).save(one / "band.jpg")  # 405×60
    shutil.copy2(folder / "bus.jpg", one / "bus.jpg")
    lines: list[str] = []
    settings = BatchSettings(methods=("eigencam",), max_detections=1)
    report = run_batch(one, tmp_path / "out", settings, progress=False, log=lines.append)
    assert report.failed == 0
    band = detector.image_warning((60, 405))
    assert band and "elongated" in band
    frame = pd.read_parquet(tmp_path / "out" / "summary.parquet")
    notes = dict(zip(frame["image"], frame["note"], strict=False))
    assert notes["band.jpg"].startswith(band)
    left_out = json.loads((image_dir(tmp_path / "out", "bus.jpg") / "detections.json").read_text())
    assert left_out["note"] and "image_note" not in left_out
    assert left_out["max_detections"] == 1  # what made the list, as detect --json says
    assert notes["bus.jpg"] == left_out["note"]  # bus: more than one detection, one kept
    assert (
        json.loads((image_dir(tmp_path / "out", "band.jpg") / "detections.json").read_text())[
            "image_note"
        ]
        == band
    )
    assert sorted(lines) == [
        f"yolocam: note: band.jpg: {notes['band.jpg']}",
        f"yolocam: note: bus.jpg: {notes['bus.jpg']}",
    ]


def test_metrics_columns_are_the_scorer_s_for_each_row_s_detection(folder, tmp_path, detector):
    """`batch --metrics` and `yolocam evaluate` share ImageScorer: each row's metrics are
    its map's scores against the row's own detection (not another one's)."""
    from yolocam_core.evaluate import ScoringSettings, evaluate_image
    from yolocam_core.explainer import Explainer

    one = tmp_path / "one"
    one.mkdir()
    shutil.copy2(folder / "more" / "zidane.jpg", one / "zidane.jpg")
    settings = BatchSettings(methods=("gradcam",), metrics=True, metrics_steps=4)
    run_batch(one, tmp_path / "out", settings)
    frame = pd.read_parquet(tmp_path / "out" / "summary.parquet")
    assert list(frame.columns) == [*SUMMARY_COLUMNS, *METRIC_COLUMNS]

    fast = ScoringSettings(steps=4, seeds=(0,))
    evaluation = evaluate_image(
        Explainer(detector), str(one / "zidane.jpg"), ["gradcam"], settings=fast
    )
    expected = {(r.detection, r.scale): r for r in evaluation.rows}
    assert len(frame) == len(expected) > 0
    for row in frame.itertuples():
        ref = expected[(row.detection, row.scale)]
        assert bool(row.pointing_game) == ref.pointing_game
        assert row.energy_pointing_game == pytest.approx(ref.energy_pointing_game, abs=1e-6)
        assert row.deletion_auc == pytest.approx(ref.deletion_auc, abs=1e-6)
        assert row.insertion_auc == pytest.approx(ref.insertion_auc, abs=1e-6)


def test_bad_input_is_one_line(capsys, tmp_path, folder):
    empty = tmp_path / "empty"
    empty.mkdir()
    cases = [  # (arguments, exit code: 2 for a malformed option, message)
        ([str(tmp_path / "missing")], 1, "no such folder"),
        ([str(folder / "bus.jpg")], 1, "not a folder"),
        ([str(empty)], 1, "no image files found"),
        ([str(folder), "--address", "ray://x:10001"], 1, "--address is for --engine ray"),
        ([str(folder), "--methods", "gradcam,nope"], 2, "unknown 'nope'"),
    ]
    for argv, want, message in cases:
        code = main(["batch", *argv, "--out", str(tmp_path / "out")])
        err = capsys.readouterr().err.strip().splitlines()
        assert code == want and len(err) == 1 and message in err[0], (argv, err)
    with pytest.raises(SystemExit) as exc:
        main(["batch", str(folder), "--out", str(tmp_path / "out"), "--workers", "0"])
    assert exc.value.code == 2
    assert "must be at least 1" in capsys.readouterr().err
    assert not os.path.exists(tmp_path / "out" / "summary.csv")


def test_the_settings_hold_the_model_spec_and_its_files_stamp_the_fingerprint(
    tmp_path, monkeypatch
):
    """The CLI's model options become one ModelSpec in the settings (paths absolute: a Ray
    actor runs in another folder); every worker loads that spec. Another spec, or a
    changed model file, is another fingerprint."""
    from yolocam_core.cli.main import build_parser
    from yolocam_core.cli.options import model_spec_from_args
    from yolocam_core.models import ModelSpec

    monkeypatch.chdir(tmp_path)
    Path("names.txt").write_text("cat\ndog\n")
    args = build_parser().parse_args(
        ["batch", "in", "--out", "o", "--classes", "names.txt", "--no-letterbox"]
    )
    spec = model_spec_from_args(args)
    assert spec == ModelSpec(classes=str(tmp_path / "names.txt"), letterbox=False)
    default = build_parser().parse_args(["batch", "in", "--out", "o"])
    assert model_spec_from_args(default) == ModelSpec()
    assert (
        BatchSettings().model == ModelSpec()
        and BatchSettings(model="yolov4-tiny").model == ModelSpec()
    )

    stamped = BatchSettings(model=spec).fingerprint()
    assert BatchSettings(model=spec).fingerprint() == stamped
    assert BatchSettings(model=spec.replace(input_size=(320, 320))).fingerprint() != stamped
    Path("names.txt").write_text("cat\ndog\nbird\n")  # another file: other settings
    assert BatchSettings(model=spec).fingerprint() != stamped


def test_available_cpus_follow_a_container_s_cpu_quota(tmp_path):
    """A cgroup quota (docker --cpus 1.5) caps the CPUs batch workers are counted from,
    rounded up; no quota ('max', or none readable) leaves the affinity mask's count."""
    import os

    from yolocam_core.runtime import available_cpus

    mask = len(os.sched_getaffinity(0))
    (tmp_path / "cpu.max").write_text("150000 100000\n")
    assert available_cpus(tmp_path) == min(mask, 2)
    (tmp_path / "cpu.max").write_text("max 100000\n")
    assert available_cpus(tmp_path) == mask
    (tmp_path / "cpu.max").unlink()
    v1 = tmp_path / "cpu"
    v1.mkdir()
    (v1 / "cpu.cfs_quota_us").write_text("50000\n")
    (v1 / "cpu.cfs_period_us").write_text("100000\n")
    assert available_cpus(tmp_path) == 1
    (v1 / "cpu.cfs_quota_us").write_text("-1\n")
    assert available_cpus(tmp_path) == mask
    assert available_cpus(tmp_path / "missing") == mask
