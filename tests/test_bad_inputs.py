"""Bad or odd inputs to the commands and to batch runs.

Each ends in one readable line (the CLI: ``yolocam: error: …`` and a non-zero exit; a
batch run: an error row), the good inputs of the same call are still processed, what
can be known before the model is loaded is refused before it (``no_model``), and
nothing hangs (``watchdog`` fails a test that blocks, e.g. on a named pipe).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from yolocam_core.cli.main import main

PREFIX = "yolocam: error: "


def run(capsys, *argv: str) -> tuple[int, str, list[str]]:
    """(exit status, stdout, stderr lines) of the command run in this process."""
    try:
        code = main(list(argv))
    except SystemExit as exc:  # usage errors: argparse exits
        code = exc.code
    out, err = capsys.readouterr()
    return code, out, err.strip().splitlines()


@pytest.fixture
def watchdog():
    """Fail (not hang) if the test blocks for two minutes."""

    def expire(signum, frame):
        raise TimeoutError("blocked for 120 s (reading a named pipe?)")

    previous = signal.signal(signal.SIGALRM, expire)
    signal.alarm(120)
    yield
    signal.alarm(0)
    signal.signal(signal.SIGALRM, previous)


@pytest.fixture
def no_model(monkeypatch):
    """Fail if a model is loaded: the input must be refused before the costly work."""
    from yolocam_core.models import ModelSpec

    def refuse(self, *args, **kwargs):
        raise AssertionError("the model was loaded before the bad input was refused")

    monkeypatch.setattr(ModelSpec, "load", refuse)


def _half(source: Path, target: Path) -> Path:
    target.parent.mkdir(parents=True, exist_ok=True)
    with Image.open(source) as image:
        image.resize((image.width // 2, image.height // 2)).save(target, "JPEG", quality=90)
    return target


@pytest.fixture(scope="module")
def bad(tmp_path_factory, samples) -> dict[str, Path]:
    """Files that are no usable image, each with a part of the message it must get."""
    root = tmp_path_factory.mktemp("bad")
    os.mkfifo(root / "fifo.jpg")
    (root / "loop.jpg").symlink_to("loop.jpg")
    (root / "dangling.jpg").symlink_to("missing.jpg")
    (root / "folder.jpg").mkdir()
    (root / "afile.txt").write_text("a file, not a folder\n")
    (root / "empty.jpg").write_bytes(b"")
    (root / "trunc.jpg").write_bytes(Path(samples["bus.jpg"]).read_bytes()[:5000])
    Image.fromarray(np.full((1, 100_000, 3), 200, np.uint8)).save(root / "wide.png")
    Image.fromarray(np.linspace(0, 1000, 64 * 64, dtype=np.float32).reshape(64, 64), "F").save(
        root / "float1000.tif"
    )
    Image.fromarray(np.full((4, 4), np.nan, np.float32), "F").save(root / "nan.tif")
    return {
        "fifo.jpg": root / "fifo.jpg",
        "loop.jpg": root / "loop.jpg",
        "dangling.jpg": root / "dangling.jpg",
        "folder.jpg": root / "folder.jpg",
        "under": root / "afile.txt" / "x.jpg",
        "empty.jpg": root / "empty.jpg",
        "trunc.jpg": root / "trunc.jpg",
        "wide.png": root / "wide.png",
        "float1000.tif": root / "float1000.tif",
        "nan.tif": root / "nan.tif",
    }


#: The part of the one-line message each bad file gets.
MESSAGES = {
    "fifo.jpg": "is a named pipe (FIFO), not a regular file; refused",
    "loop.jpg": "a symbolic-link loop",
    "dangling.jpg": "a symbolic link to a missing file (missing.jpg)",
    "folder.jpg": "is a folder, not an image file",
    "under": "afile.txt is a file, not a folder",
    "empty.jpg": "the file is empty (0 bytes)",
    "trunc.jpg": "truncated or corrupt",
    "wide.png": "100000×1 is too elongated",
    "float1000.tif": "floating-point pixels from 0 to 1000",
    "nan.tif": "NaN or infinite",
}


@pytest.fixture(scope="module")
def good(tmp_path_factory, samples) -> dict[str, Path]:
    """Odd files that are usable: a 1×1 image, a float32 TIFF in [0, 1], a small photo."""
    root = tmp_path_factory.mktemp("good")
    Image.fromarray(np.full((1, 1, 3), 90, np.uint8)).save(root / "one.png")
    with Image.open(samples["zidane.jpg"]) as photo:
        grey = np.asarray(photo.convert("L"))
    Image.fromarray(grey).save(root / "grey.png")
    Image.fromarray((grey / 255.0).astype(np.float32), "F").save(root / "float01.tif")
    _half(samples["bus.jpg"], root / "bus.jpg")
    return {p.name: p for p in root.iterdir()}


def test_detect_refuses_every_bad_file_in_one_line_before_loading_the_model(
    capsys, bad, watchdog, no_model
):
    code, out, err = run(capsys, "detect", *map(str, bad.values()))
    assert code == 1 and out == ""
    assert len(err) == len(bad), err
    for line, (name, path) in zip(err, bad.items(), strict=True):
        assert line.startswith(f"{PREFIX}{path}: ") and MESSAGES[name] in line, line


def test_an_empty_image_path_is_named(capsys, no_model):
    code, out, err = run(capsys, "detect", "")
    assert code == 1 and out == ""
    assert err == [f"{PREFIX}an empty path (''): name an image file"]


@pytest.mark.slow
def test_detect_still_processes_the_good_files_among_bad_ones(capsys, bad, good, watchdog):
    paths = [bad["fifo.jpg"], good["one.png"], bad["loop.jpg"], good["float01.tif"]]
    paths += [bad["wide.png"], good["grey.png"], good["bus.jpg"]]
    code, out, err = run(capsys, "detect", *map(str, paths), "--json")
    assert code == 1
    refused = [line[len(PREFIX) :].split(": ")[0] for line in err if line.startswith(PREFIX)]
    assert refused == [str(bad[n]) for n in ("fifo.jpg", "loop.jpg", "wide.png")]
    notes = [line for line in err if not line.startswith(PREFIX)]
    assert len(notes) == 1 and notes[0].startswith(f"yolocam: note: {good['one.png']}: This")
    reports = {Path(r["image"]).name: r for r in json.loads(out)}
    assert set(reports) == {"one.png", "float01.tif", "grey.png", "bus.jpg"}
    assert (reports["one.png"]["width"], reports["one.png"]["height"]) == (1, 1)
    # The float32 TIFF in [0, 1] is the 8-bit grey photo, not an all-black image.
    assert reports["float01.tif"]["detections"] == reports["grey.png"]["detections"]
    assert len(reports["float01.tif"]["detections"]) >= 1
    assert len(reports["bus.jpg"]["detections"]) >= 2


@pytest.mark.parametrize(
    ("make_out", "message"),
    [
        (lambda tmp: tmp / "file.txt", "is a file, not a folder"),
        (lambda tmp: tmp / "file.txt" / "sub", "file.txt is a file, not a folder"),
        (lambda tmp: Path("/proc"), "cannot write in this folder"),
        (lambda tmp: Path("/sys/yolocam-test"), "cannot create the folder (permission denied)"),
        (lambda tmp: "", "--out is empty"),
    ],
    ids=["a file", "under a file", "unwritable", "not creatable", "empty"],
)
def test_explain_checks_the_output_folder_before_loading_the_model(
    capsys, tmp_path, good, no_model, make_out, message
):
    (tmp_path / "file.txt").write_text("not a folder\n")
    out_dir = make_out(tmp_path)
    code, out, err = run(capsys, "explain", str(good["bus.jpg"]), "--out", str(out_dir))
    assert code == 1 and out == ""
    assert len(err) == 1 and err[0].startswith(PREFIX) and message in err[0], err


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--scales", "0,0"], "--scales '0,0': scale 0 given more than once"),
        (["--scales", "0,x"], "use 'all' or head indices like 0,1"),
        (["--scales", "-1"], "use 'all' or head indices like 0,1"),
        (["--scales", ""], "use 'all' or head indices like 0,1"),
        (["--target", "box:1"], "use detection:K, class:NAME or seed"),
        (["--target", "garbage"], "use detection:K, class:NAME or seed"),
        (["--target", "detection:-1"], "K in detection:K must be a whole number"),
        (
            ["--input-size", "100"],
            "--input-size 100×100: YOLO inputs must be positive multiples of 32",
        ),
        (["--anchors", "abc, def"], "anchors"),
        (["--anchors", "1,2,3"], "--anchors: got 3 numbers, which is not a whole number of"),
    ],
)
def test_malformed_explain_options_are_usage_errors_before_loading_the_model(
    capsys, tmp_path, good, no_model, argv, message
):
    """Exit status 2, as argparse's own usage errors (README), before the output folder."""
    out = tmp_path / "o"
    code, _, err = run(capsys, "explain", str(good["bus.jpg"]), "--out", str(out), *argv)
    assert code == 2
    assert len(err) == 1 and err[0].startswith(PREFIX) and message in err[0], err
    assert "(see `yolocam explain --help`)" in err[0] and not out.exists()


def test_report_checks_its_output_file_before_loading_the_model(capsys, good, no_model):
    code, out, err = run(
        capsys, "report", str(good["bus.jpg"]), "-o", "/sys/x.html", "--model", "garbage.h5"
    )
    assert code == 1 and out == ""
    assert len(err) == 1 and "--output /sys/x.html: cannot write it" in err[0], err


@pytest.mark.parametrize(
    "argv",
    [
        ["report", "x.jpg", "-o", "r.html", "--out", "foo"],  # --out is not --output
        ["explain", "x.jpg", "--targ", "seed"],
        ["evaluate", "x.jpg", "--no-s"],
        ["batch", "in", "--out", "o", "--metrics-s", "4"],
        ["detect", "x.jpg", "--js"],
    ],
)
def test_abbreviated_options_are_refused(capsys, argv, no_model):
    code, out, err = run(capsys, *argv)
    assert code == 2 and out == ""
    assert len(err) == 1 and "unrecognized arguments" in err[0], err


def test_explain_refuses_a_named_pipe_before_loading_the_model(
    capsys, tmp_path, bad, watchdog, no_model
):
    code, _, err = run(capsys, "explain", str(bad["fifo.jpg"]), "--out", str(tmp_path))
    assert code == 1 and len(err) == 1 and MESSAGES["fifo.jpg"] in err[0]


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["detect", "x.jpg", "--score", "1.5"], "1.5 is outside [0, 1]"),
        (["detect", "x.jpg", "--iou", "nan"], "nan is outside [0, 1]"),
        (["explain", "x.jpg", "--opacity", "2"], "2.0 is outside [0, 1]"),
        (["evaluate", "x.jpg", "--steps", "0"], "0 is outside 2..1000"),
        (["evaluate", "x.jpg", "--steps", "1"], "1 is outside 2..1000"),
        (["evaluate", "x.jpg", "--steps", "1000000"], "1000000 is outside 2..1000"),
        (["batch", "in", "--out", "o", "--workers", "0"], "0 must be at least 1"),
        (["batch", "in", "--out", "o", "--metrics-steps", "x"], "'x' is not a whole number"),
        (["batch", "in", "--out", "o", "--metrics-steps", "1"], "1 is outside 2..1000"),
        (["batch", "in", "--out", "o", "--metrics-steps", "100000"], "100000 is outside 2..1000"),
    ],
)
def test_bad_numbers_are_usage_errors(capsys, argv, message):
    code, _, err = run(capsys, *argv)
    assert code == 2 and len(err) == 1 and message in err[0], err


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["evaluate", "{img}", "--methods", ""], "--methods: unknown (none given)"),
        (["evaluate", "{img}", "--methods", "nosuch"], "--methods: unknown 'nosuch'"),
        (["evaluate", "{img}", "--methods", "gradcam,gradcam"], "method gradcam given more"),
        (["evaluate", "{img}", "--methods", "all,gradcam"], "all already has gradcam"),
        (["evaluate", "{img}", "--scales", "1,1"], "scale 1 given more than once"),
        (["evaluate", "{img}", "--scales", "-1"], "use 'all' or head indices"),
        (["evaluate", "{img}", "--input-size", "100"], "multiples of 32"),
        (["batch", "{dir}", "--out", "{out}", "--methods", "nope"], "unknown 'nope'"),
        (["batch", "{dir}", "--out", "{out}", "--scales", "0,0"], "scale 0 given more"),
        (["batch", "{dir}", "--out", "{out}", "--targets", "detection:0"], "use detections"),
        (["batch", "{dir}", "--out", "{out}", "--targets", "garbage"], "use detections"),
        (["batch", "{dir}", "--out", "{out}", "--anchors", "1,2,3"], "width,height pairs"),
    ],
)
def test_malformed_evaluate_and_batch_options_are_usage_errors_before_loading_the_model(
    capsys, tmp_path, good, no_model, argv, message
):
    values = {"img": str(good["bus.jpg"]), "dir": str(good["bus.jpg"].parent)}
    values["out"] = str(tmp_path / "out")
    code, _, err = run(capsys, *(a.format(**values) for a in argv))
    assert code == 2
    assert len(err) == 1 and err[0].startswith(PREFIX) and message in err[0], err
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["batch", "{dir}", "--out", "{dir}"], "is the input folder"),
        (
            ["batch", "{dir}", "--out", "{out}", "--metrics-steps", "5"],
            "--metrics-steps only applies with --metrics",
        ),
        (
            ["evaluate", "{img}", "--no-sanity", "--randomise", "cascade"],
            "--randomise and --no-sanity contradict each other",
        ),
        (
            ["batch", "{dir}", "--out", "{out}", "--targets", "seed", "--methods", "gradcam"],
            "gradcam cannot explain the whole head output",
        ),
        (
            ["batch", "{dir}", "--out", "{out}", "--targets", "class:dog", "--methods", "drise"],
            "drise explains one detection",
        ),
    ],
)
def test_evaluate_and_batch_options_are_checked_before_loading_the_model(
    capsys, tmp_path, good, no_model, argv, message
):
    values = {"img": str(good["bus.jpg"]), "dir": str(good["bus.jpg"].parent)}
    values["out"] = str(tmp_path / "out")
    code, _, err = run(capsys, *(a.format(**values) for a in argv))
    assert code == 1
    assert len(err) == 1 and err[0].startswith(PREFIX) and message in err[0], err
    assert not (tmp_path / "out").exists()


@pytest.mark.slow
def test_explain_names_two_photos_with_one_name_apart(capsys, tmp_path, samples):
    """a/x.jpg and b/x.jpg explained into one --out: two sets of files, none overwritten."""
    first = _half(samples["bus.jpg"], tmp_path / "a" / "x.jpg")
    second = _half(samples["zidane.jpg"], tmp_path / "b" / "x.jpg")
    out = tmp_path / "out"
    records = []
    for path in (first, second):
        code, stdout, err = run(capsys, "explain", str(path), "--out", str(out), "--json")
        assert code == 0, err
        records.append(json.loads(stdout))
    files = [{Path(s["raw_map"]).name for s in r["scales"]} for r in records]
    assert not files[0] & files[1]
    assert all(name.startswith("x-") for name in files[0] | files[1])
    for record in records:
        for item in record["scales"]:
            assert Path(item["raw_map"]).is_file() and Path(item["overlay"]).is_file()
    # each file is still the one its run wrote
    first_map = np.load(records[0]["scales"][0]["raw_map"])
    second_map = np.load(records[1]["scales"][0]["raw_map"])
    assert not np.array_equal(first_map, second_map)
    assert len(list(out.glob("*.json"))) == 2  # one record per explanation


@pytest.mark.slow
def test_a_one_pixel_image_is_explained_with_the_apps_warning(capsys, tmp_path, good):
    code, out, err = run(
        capsys, "explain", str(good["one.png"]), "--target", "seed", "--out", str(tmp_path)
    )
    assert code == 0, err
    assert "seed" in out and len(list(tmp_path.glob("*.npy"))) == 2
    assert len(err) == 1 and err[0].startswith(f"yolocam: note: {good['one.png']}: ")
    assert "This photo is only 1×1 px: the network sees it enlarged 416×" in err[0]


@pytest.mark.slow
def test_detect_warns_about_a_photo_too_small_for_the_network(capsys, good):
    code, out, err = run(capsys, "detect", str(good["one.png"]), str(good["bus.jpg"]))
    assert code == 0 and "(1×1): 0 detection(s)" in out
    assert len(err) == 1 and err[0].startswith(f"yolocam: note: {good['one.png']}: This photo")


@pytest.mark.slow
def test_a_closed_pipe_ends_quietly(samples):
    """`yolocam detect … --json | head -1`: no BrokenPipeError traceback, exit 1."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "yolocam_core.cli", "detect", str(samples["bus.jpg"]), "--json"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    proc.stdout.close()  # the reader is gone before anything is written
    err = proc.stderr.read().decode()
    assert proc.wait(timeout=300) == 1
    assert err == ""


def test_images_are_refused_by_name_in_the_message_even_if_it_is_not_utf8(
    capsys, tmp_path, no_model
):
    folder = os.fsencode(tmp_path)
    name = os.path.join(folder, b"caf\xe9.jpg")
    with open(name, "wb") as handle:
        handle.write(b"not an image")
    code, _, err = run(capsys, "detect", os.fsdecode(name))
    assert code == 1
    assert err == [f"{PREFIX}{tmp_path}/caf\\xe9.jpg: not an image file Pillow can read (use "
                   "JPEG, PNG, WebP, BMP, TIFF, …)"]  # fmt: skip


@pytest.mark.slow
def test_batch_turns_special_files_into_error_rows_and_processes_the_rest(
    capsys, tmp_path, bad, good, watchdog
):
    """A folder with a named pipe, a symbolic-link loop, a too elongated image, a file
    whose name is not UTF-8 and good images; the output folder inside the input folder."""
    root = tmp_path / "in"
    root.mkdir()
    os.mkfifo(root / "fifo.jpg")
    (root / "loop.jpg").symlink_to("loop.jpg")
    shutil.copy2(bad["wide.png"], root / "wide.png")
    shutil.copy2(good["bus.jpg"], root / "bus.jpg")
    shutil.copy2(good["one.png"], root / "zz-after.png")
    with open(os.path.join(os.fsencode(root), b"caf\xe9.jpg"), "wb") as handle:
        handle.write(good["bus.jpg"].read_bytes())
    out = root / "out"
    code, stdout, err = run(capsys, "batch", str(root), "--out", str(out))
    assert code == 1
    failed = {"fifo.jpg": MESSAGES["fifo.jpg"], "loop.jpg": MESSAGES["loop.jpg"]}
    failed["wide.png"] = MESSAGES["wide.png"]
    notes = [line for line in err if line.startswith("yolocam: note: ")]
    assert len(notes) == 1 and notes[0].startswith(
        "yolocam: note: zz-after.png: This photo is only 1×1 px"
    )
    err = [line for line in err if line not in notes]
    assert len(err) == len(failed) + 1, err  # one line per failure, then the summary line
    for name, message in failed.items():
        assert any(line.startswith(f"{PREFIX}{name}: ") and message in line for line in err)
    assert "6 image(s): 6 processed, 0 already complete, 3 failed" in stdout

    frame = pd.read_parquet(out / "summary.parquet")
    status = frame.groupby("image")["status"].first().to_dict()
    assert status == {
        "bus.jpg": "ok",
        "caf\\xe9.jpg": "ok",
        "zz-after.png": "ok",
        "fifo.jpg": "error",
        "loop.jpg": "error",
        "wide.png": "error",
    }
    same = frame[frame["image"] == "caf\\xe9.jpg"].drop(columns=["image", "seconds"])
    bus = frame[frame["image"] == "bus.jpg"].drop(columns=["image", "seconds"])
    assert same["det_score"].tolist() == bus["det_score"].tolist()
    assert same["target_score"].tolist() == bus["target_score"].tolist()
    for rel in frame["overlay"].dropna():
        assert (out / rel).is_file()

    # Again: the output folder inside the input folder is not read as input.
    code, stdout, err = run(capsys, "batch", str(root), "--out", str(out))
    assert "6 image(s): 3 processed, 3 already complete, 3 failed" in stdout


@pytest.mark.parametrize(
    "argv",
    [
        ["explain", "{missing}"],
        ["report", "{missing}", "-o", "{out}"],
        ["detect", "{missing}"],
        ["evaluate", "{missing}"],
    ],
)
def test_a_lone_missing_image_is_refused_before_tensorflow_starts(tmp_path, argv):
    """The most common mistake, a typo in the path, fails at once (TensorFlow's start
    takes about 3 s): checked in a fresh interpreter, whose modules tell."""
    missing, out = tmp_path / "missing.jpg", tmp_path / "r.html"
    argv = [a.format(missing=missing, out=out) for a in argv]
    code = (
        "import sys; from yolocam_core.cli.main import main; "
        f"status = main({argv!r}); print(status, 'tensorflow' in sys.modules)"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.stdout.split() == ["1", "False"], done.stderr
    assert done.stderr.strip().splitlines() == [f"yolocam: error: {missing}: no such file"]
