"""Bad model files and options: each is refused with one readable message, before the
costly work where that can be known before; the good files beside them still load.

Darknet: cfgs asking for huge inputs, parameters or activations, unparsable values,
weights with NaN / infinity or a wrong header. Keras: zip bombs (a config.json or a
model.weights.h5 that inflates far beyond its size), too many entries, truncated or
non-JSON files, and every way of smuggling code the config format allows (a Lambda
nested in a wrapper, a class whose module claims to be Keras', a function or an
object given by module). Files: symbolic-link loops and named pipes.
"""

from __future__ import annotations

import io
import json
import os
import re
import time
import zipfile
from pathlib import Path

import h5py
import keras
import numpy as np
import pytest
from darknet_helpers import random_weights, weights_header
from keras_models import small_model

from yolocam_core.errors import (
    ConfigError,
    ModelFileError,
    ModelNotFoundError,
    UnsafeModelError,
    WeightsError,
    YolocamError,
)
from yolocam_core.models import load_detector
from yolocam_core.models.darknet import parse_cfg, plan_model

pytestmark = pytest.mark.filterwarnings("ignore:You are saving your model as an HDF5 file")

TINY_CFG = """[net]
width=64
height=64
channels=3

[convolutional]
batch_normalize=1
filters=8
size=3
stride=2
pad=1
activation=leaky

[maxpool]
size=2
stride=2

[convolutional]
size=1
stride=1
pad=1
filters=18
activation=linear

[yolo]
mask=0,1,2
anchors=10,13, 16,30, 33,23
classes=1
num=3
"""


def write_darknet(folder: Path, text: str = TINY_CFG, stem: str = "tiny") -> tuple[Path, Path]:
    """A cfg and random weights that fit it."""
    cfg = folder / f"{stem}.cfg"
    cfg.write_text(text)
    weights = folder / f"{stem}.weights"
    convs = plan_model(parse_cfg(text)).convs
    weights.write_bytes(random_weights(convs, np.random.default_rng(3)))
    return cfg, weights


def edit(text: str, pattern: str, replacement: str) -> str:
    edited, count = re.subn(pattern, replacement, text, count=1, flags=re.M)
    assert count == 1, pattern
    return edited


# -- Darknet -------------------------------------------------------------------------------


def cfg_case(pattern: str, replacement: str):
    """A case: the tiny cfg with one edit (weights of the original beside it)."""

    def make(folder: Path) -> dict:
        cfg, weights = write_darknet(folder)
        cfg.write_text(edit(TINY_CFG, pattern, replacement))
        return {"name": cfg, "weights": weights}

    return make


def weights_case(change):
    """A case: the tiny cfg with its weights changed by ``change(bytes) -> bytes``."""

    def make(folder: Path) -> dict:
        cfg, weights = write_darknet(folder)
        weights.write_bytes(change(weights.read_bytes()))
        return {"name": cfg, "weights": weights}

    return make


def non_finite(value: float, count: int):
    def change(data: bytes) -> bytes:
        values = np.frombuffer(data, "<f4", offset=20).copy()
        values[5 : 5 + count] = value
        return data[:20] + values.tobytes()

    return change


def many_sections(folder: Path) -> dict:
    body = "[maxpool]\nsize=1\nstride=1\n\n" * 2500
    cfg, weights = write_darknet(folder)
    cfg.write_text(TINY_CFG.replace("[maxpool]\nsize=2\nstride=2\n", body, 1))
    return {"name": cfg, "weights": weights}


def symlink_loop(suffix: str):
    def make(folder: Path) -> dict:
        link = folder / f"loop{suffix}"
        os.symlink(link.name, link)
        return {"name": link}

    return make


def fifo(suffix: str):
    def make(folder: Path) -> dict:
        path = folder / f"pipe{suffix}"
        os.mkfifo(path)
        return {"name": path}

    return make


def weights_loop(folder: Path) -> dict:
    cfg, weights = write_darknet(folder)
    weights.unlink()
    os.symlink(weights.name, weights)
    return {"name": cfg}


def names_lines(count: int):
    def make(folder: Path) -> dict:
        cfg, _ = write_darknet(folder)
        names = folder / "many.names"
        names.write_text("x\n" * count)
        return {"name": cfg, "classes": names}

    return make


def names_fifo(folder: Path) -> dict:
    cfg, _ = write_darknet(folder)
    os.mkfifo(folder / "pipe.names")
    return {"name": cfg, "classes": folder / "pipe.names"}


DARKNET_CASES = {
    # (the case, the error, fragments of its one message)
    "width=100000": (
        cfg_case(r"^width=64", "width=100000"),
        ConfigError,
        ["tiny.cfg", "[net] at line 2", "100000×64", "between 1 and 4096"],
    ),
    "anchors=abc, def": (
        cfg_case(r"^anchors=.*$", "anchors = abc, def"),
        ConfigError,
        ["[yolo] at line 27", "anchors='abc, def'", "comma-separated list of numbers"],
    ),
    "weights with NaN": (
        weights_case(non_finite(np.nan, 7)),
        WeightsError,
        ["tiny.weights", "7 of its", "not finite numbers (NaN or infinity)"],
    ),
    "weights with infinity": (
        weights_case(non_finite(np.inf, 1)),
        WeightsError,
        ["1 of its", "not finite"],
    ),
    "negative filters": (
        cfg_case(r"^filters=8", "filters=-8"),
        ConfigError,
        ["[convolutional] at line 8", "filters=-8 must be positive"],
    ),
    "huge classes=": (
        cfg_case(r"^classes=1", "classes=1000000000"),
        ConfigError,
        ["classes=1000000000 must be between 1 and 10,000"],
    ),
    "huge filters (parameters)": (
        cfg_case(r"^filters=8", "filters=400000000"),
        ConfigError,
        ["parameters, more than yolocam's limit of 256,000,000"],
    ),
    "4096×4096 input (activation memory)": (
        cfg_case(
            r"^width=64\nheight=64\nchannels=3",
            "width=4096\nheight=4096\nchannels=3\n"
            "[convolutional]\nfilters=64\nsize=1\nactivation=leaky",
        ),
        ConfigError,
        ["4096×4096 needs about", "GiB of activations", "limit of 3 GiB"],
    ),
    "channels=100000": (
        cfg_case(r"^channels=3", "channels=100000"),
        ConfigError,
        ["channels=100000 must be between 1 and 64"],
    ),
    "2,500 sections": (many_sections, ConfigError, ["has 2,503 layer sections", "at most 2,000"]),
    "scale_x_y=nan": (
        cfg_case(r"^num=3", "num=3\nscale_x_y=nan"),
        ConfigError,
        ["scale_x_y=nan must be a positive number"],
    ),
    "maxpool larger than its input": (
        cfg_case(r"^size=2\nstride=2", "size=100\nstride=2\npadding=0"),
        ConfigError,
        ["size=100 is larger than its padded input", "empty"],
    ),
    "upsample stride=0": (
        cfg_case(r"^\[maxpool\]\nsize=2\nstride=2", "[upsample]\nstride=0"),
        ConfigError,
        ["stride=0 must be positive"],
    ),
    "weights header with negative version": (
        weights_case(lambda data: weights_header(major=-5, minor=2) + data[20:]),
        WeightsError,
        ["does not start with a Darknet weights header", "-5.2.0"],
    ),
    "weights header claiming another version": (
        weights_case(lambda data: weights_header(major=0, minor=1) + b"\0" * 4 + data[20:]),
        WeightsError,
        ["header says version 0.1.0 (16-byte header)", "fit a 20-byte header"],
    ),
    "cfg that is a symbolic-link loop": (
        symlink_loop(".cfg"),
        ModelFileError,
        ["loop.cfg: a symbolic-link loop"],
    ),
    "cfg that is a named pipe": (fifo(".cfg"), ModelFileError, ["pipe.cfg: is a named pipe"]),
    "weights that are a symbolic-link loop": (
        weights_loop,
        ModelFileError,
        ["tiny.weights: a symbolic-link loop"],
    ),
    "names file with 10^6 lines": (
        names_lines(10**6),
        ModelFileError,
        ["many.names is 2,000,000 bytes", "under 1,048,576"],
    ),
    "names file with 400,000 lines": (
        names_lines(400_000),
        ModelFileError,
        ["has 400,000 names but the model predicts 1 classes"],
    ),
    "names file that is a named pipe": (
        names_fifo,
        ModelFileError,
        ["pipe.names: is a named pipe (FIFO)"],
    ),
}


def check_one_message(error: BaseException, fragments: list[str]) -> None:
    message = str(error)
    assert "\n" not in message and "Traceback" not in message and len(message) < 700, message
    for fragment in fragments:
        assert fragment in message, f"{fragment!r} not in {message!r}"


@pytest.mark.parametrize("case", list(DARKNET_CASES))
def test_bad_darknet_input_is_one_message(case, tmp_path):
    make, error, fragments = DARKNET_CASES[case]
    options = make(tmp_path)
    started = time.perf_counter()
    with pytest.raises(error) as info:
        load_detector(options.pop("name"), use_cache=False, **options)
    check_one_message(info.value, fragments)
    assert time.perf_counter() - started < 30, "refused only after costly work"


def test_refused_before_building(tmp_path, monkeypatch):
    """Limits and bad weights are known from the cfg and the weights' size alone: no
    Keras layer is built for them."""
    from yolocam_core.models import darknet

    def no_build(*args, **kwargs):
        raise AssertionError("built the model although the input was refusable")

    monkeypatch.setattr(darknet, "build_model", no_build)
    for case in (
        "width=100000",
        "huge filters (parameters)",
        "weights header with negative version",
    ):
        make, error, _ = DARKNET_CASES[case]
        folder = tmp_path / re.sub(r"\W", "_", case)
        folder.mkdir()
        options = make(folder)
        with pytest.raises(error):
            load_detector(options.pop("name"), use_cache=False, **options)


def test_good_darknet_files_beside_the_bad_still_load(tmp_path):
    cfg, weights = write_darknet(tmp_path)
    detector = load_detector(cfg, use_cache=False)
    assert [h.grid for h in detector.heads] == [(16, 16)] and detector.num_classes == 1
    bad = tmp_path / "nan.weights"
    bad.write_bytes(non_finite(np.nan, 2)(weights.read_bytes()))
    with pytest.raises(WeightsError):
        load_detector(cfg, weights=bad, use_cache=False)
    assert load_detector(cfg, use_cache=False).num_classes == 1


# -- Keras files ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def keras_file(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("keras") / "small.keras"
    small_model(heads=2, size=64).save(path)
    return path


@pytest.fixture(scope="module")
def h5_file(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("h5") / "small.h5"
    small_model(heads=2, size=64).save(path)
    return path


def rezip(source: Path, target: Path, replace: dict[str, bytes] | None = None, extra=()) -> Path:
    """A copy of a .keras zip with entries replaced (deflated) and extra entries."""
    with zipfile.ZipFile(source) as old, zipfile.ZipFile(target, "w") as new:
        for entry in old.infolist():
            data = (replace or {}).get(entry.filename, old.read(entry))
            new.writestr(entry.filename, data, compress_type=zipfile.ZIP_DEFLATED)
        for name, data in extra:
            new.writestr(name, data, compress_type=zipfile.ZIP_DEFLATED)
    return target


def edited_keras(source: Path, target: Path, change) -> Path:
    """A copy of a .keras zip whose config.json is ``change(config)``."""
    with zipfile.ZipFile(source) as old:
        config = json.loads(old.read("config.json"))
    change(config)
    return rezip(source, target, {"config.json": json.dumps(config).encode()})


def edited_h5(source: Path, target: Path, change) -> Path:
    target.write_bytes(source.read_bytes())
    with h5py.File(target, "r+") as handle:
        config = json.loads(handle.attrs["model_config"])
        result = change(config)
        text = result if isinstance(result, str) else json.dumps(config)
        handle.attrs["model_config"] = text.encode("utf-8")
    return target


def layer_named(config: dict, class_name: str) -> dict:
    return next(e for e in config["config"]["layers"] if e["class_name"] == class_name)


def wrap_in_time_distributed_lambda(config: dict) -> None:
    """Put a Lambda (Keras 2 style: marshalled bytecode) inside a TimeDistributed that
    replaces the first Conv2D: the code sits one level below the layer list."""
    entry = layer_named(config, "Conv2D")
    entry["class_name"] = "TimeDistributed"
    inner_name = entry["config"]["name"]
    entry["config"] = {
        "name": inner_name,
        "layer": {
            "class_name": "Lambda",
            "config": {
                "name": "hidden_code",
                "function": ["4wEAAAAAAAAAAAAAAAAAAAAA", None, None],
                "function_type": "lambda",
                "module": "__main__",
            },
        },
    }


def claim_keras_module(config: dict) -> None:
    entry = layer_named(config, "Conv2D")
    entry.update(class_name="EvilLayer", module="keras.layers", registered_name=None)


def registered_elsewhere(config: dict) -> None:
    layer_named(config, "Conv2D")["registered_name"] = "somepkg>Conv2D"


def activation_by_module(config: dict) -> None:
    layer_named(config, "Conv2D")["config"]["activation"] = {"module": "os", "config": "system"}


def activation_function(config: dict) -> None:
    layer_named(config, "Conv2D")["config"]["activation"] = {
        "module": "os", "class_name": "function", "config": "system", "registered_name": "system",
    }  # fmt: skip


def lambda_in_keras_ops_map(config: dict) -> None:
    """A keras.ops operation that takes a function (vectorized_map), given a lambda."""
    entry = layer_named(config, "Conv2D")
    entry.update(class_name="VectorizedMap", module="keras.src.ops.core", registered_name=None)
    entry["config"]["function"] = {"class_name": "__lambda__", "config": {"value": "AAAA"}}


def deep_nesting(config: dict) -> str:
    return "[" * 100_000 + "]" * 100_000


def zip_bomb_config(source: Path, target: Path) -> Path:
    with zipfile.ZipFile(source) as old:
        text = old.read("config.json")
    return rezip(source, target, {"config.json": text + b" " * (20 << 20)})


def zip_bomb_weights(source: Path, target: Path) -> Path:
    return rezip(source, target, {"model.weights.h5": b"\0" * (200 << 20)})


def lying_header(source: Path, target: Path) -> Path:
    """config.json whose zip headers claim 100 bytes while 5 MB are stored."""
    rezip(source, target, {"config.json": b" " * (5 << 20)})
    data = bytearray(target.read_bytes())
    with zipfile.ZipFile(io.BytesIO(bytes(data))) as archive:
        info = archive.getinfo("config.json")
    real = (5 << 20).to_bytes(4, "little")
    for position in [m.start() for m in re.finditer(re.escape(real), bytes(data))]:
        data[position : position + 4] = (100).to_bytes(4, "little")
    target.write_bytes(bytes(data))
    assert info.file_size == 5 << 20
    return target


def many_entries(source: Path, target: Path) -> Path:
    return rezip(source, target, extra=[(f"assets/{k}.txt", b"x") for k in range(3000)])


def truncated(source: Path, target: Path) -> Path:
    target.write_bytes(source.read_bytes()[:5000])
    return target


def huge_fixed_input(_source: Path, target: Path) -> Path:
    inputs = keras.Input((8192, 8192, 3))
    x = keras.layers.Conv2D(8, 3, strides=32, padding="same")(inputs)
    keras.Model(inputs, [keras.layers.Conv2D(75, 1)(x)]).save(target)
    return target


def many_activations(_source: Path, target: Path) -> Path:
    inputs = keras.Input((None, None, 3))
    x = keras.layers.Conv2D(64, 3, padding="same")(inputs)
    x = keras.layers.Conv2D(8, 3, strides=32, padding="same")(x)
    keras.Model(inputs, [keras.layers.Conv2D(75, 1)(x)]).save(target)
    return target


KERAS_CASES = {
    "zip bomb: config.json inflating to 20 MiB": (
        "keras", zip_bomb_config, {}, ModelFileError,
        ["config.json inflates to 20 MiB, more than the 16 MiB"],
    ),
    "zip bomb: model.weights.h5 inflating 200 MiB": (
        "keras", zip_bomb_weights, {}, ModelFileError,
        ["model.weights.h5 inflates from", "to 209,715,200 bytes", "zip bomb"],
    ),
    "zip headers that lie about a size": (
        "keras", lying_header, {}, ModelFileError,
        ["is not a readable .keras file"],
    ),
    ".keras with 3,000 entries": (
        "keras", many_entries, {}, ModelFileError,
        ["holds 3,003 files", "at most 64"],
    ),
    "truncated .h5": ("h5", truncated, {}, ModelFileError, ["not a readable HDF5 file"]),
    ".h5 whose config is not JSON": (
        "h5", lambda s, t: edited_h5(s, t, lambda c: "{not json"), {}, ModelFileError,
        ["the model architecture is not valid JSON"],
    ),
    ".h5 whose config nests 100,000 levels": (
        "h5", lambda s, t: edited_h5(s, t, deep_nesting), {}, ModelFileError,
        ["nested too deeply"],
    ),
    "Lambda nested in TimeDistributed (.h5)": (
        "h5", lambda s, t: edited_h5(s, t, wrap_in_time_distributed_lambda), {},
        UnsafeModelError, ["Lambda layer 'hidden_code'", "inside '", "--trust-model-code"],
    ),
    "Lambda nested in TimeDistributed (.keras)": (
        "keras", lambda s, t: edited_keras(s, t, wrap_in_time_distributed_lambda), {},
        UnsafeModelError, ["Lambda layer 'hidden_code'"],
    ),
    "custom class whose module claims keras.layers": (
        "keras", lambda s, t: edited_keras(s, t, claim_keras_module), {}, UnsafeModelError,
        ["module 'keras.layers' claims to be Keras' but Keras has no 'EvilLayer'"],
    ),
    "built-in class name registered as another class": (
        "keras", lambda s, t: edited_keras(s, t, registered_elsewhere), {}, UnsafeModelError,
        ["registered as 'somepkg>Conv2D'"],
    ),
    "activation given as {module, config}": (
        "keras", lambda s, t: edited_keras(s, t, activation_by_module), {}, UnsafeModelError,
        ["an object naming Python module 'os' without a class"],
    ),
    "activation given as a function of module os": (
        "keras", lambda s, t: edited_keras(s, t, activation_function), {}, ModelFileError,
        ["the custom function 'system' (Python module 'os')"],
    ),
    "keras.ops operation given a lambda": (
        "keras", lambda s, t: edited_keras(s, t, lambda_in_keras_ops_map), {}, UnsafeModelError,
        ["serialized Python function (lambda)"],
    ),
    ".keras that is a symbolic-link loop": (
        "keras", lambda s, t: (os.symlink(t.name, t), t)[1], {}, ModelFileError,
        ["a symbolic-link loop"],
    ),
    ".h5 that is a named pipe": (
        "h5", lambda s, t: (os.mkfifo(t), t)[1], {}, ModelFileError,
        ["is a named pipe (FIFO)"],
    ),
    "model saved with an 8192×8192 input": (
        "keras", huge_fixed_input, {"anchors": "10,13, 16,30, 33,23"}, ModelFileError,
        ["its input 8192×8192", "between 1 and 4096"],
    ),
    "model run at 4064×4064 (activation memory)": (
        "keras", many_activations, {"anchors": "10,13, 16,30, 33,23", "input_size": 4064},
        ModelFileError, ["GiB of activations per image", "limit of 3 GiB"],
    ),
    "input size 8192": (
        "keras", lambda s, t: s, {"input_size": 8192}, ModelFileError,
        ["8192×8192: each side must be between 1 and 4096"],
    ),
}  # fmt: skip


@pytest.mark.parametrize("case", list(KERAS_CASES))
def test_bad_keras_input_is_one_message(case, tmp_path, keras_file, h5_file):
    kind, make, options, error, fragments = KERAS_CASES[case]
    source = keras_file if kind == "keras" else h5_file
    path = make(source, tmp_path / f"bad{source.suffix}")
    started = time.perf_counter()
    with pytest.raises(error) as info:
        load_detector(path, **options)
    check_one_message(info.value, fragments)
    assert time.perf_counter() - started < 30


def test_good_keras_files_still_load(keras_file, h5_file):
    for path in (keras_file, h5_file):
        detector = load_detector(path)
        assert [h.grid for h in detector.heads] == [(2, 2), (4, 4)]


def test_code_check_walks_every_depth_and_key():
    """Each smuggling route, found in a config that is otherwise clean."""
    from yolocam_core.models.keras_safety import inspect_config

    def model_with(entry: dict) -> dict:
        return {"class_name": "Functional", "config": {"name": "m", "layers": [entry]}}

    deep = {"class_name": "Dense", "config": {"name": "d", "units": 1}}
    for depth in range(40):  # a Lambda 40 wrappers down
        deep = {"class_name": "TimeDistributed", "config": {"name": f"w{depth}", "layer": deep}}
    deep["config"]["layer"]["config"]["layer"] = {"class_name": "Lambda", "config": {"name": "x"}}
    routes = {
        "nested Lambda": model_with(deep),
        "fn key": model_with({"class_name": "Dense", "config": {"name": "d", "fn": "os.system"}}),
        "registered_name only": model_with(
            {"class_name": "Dense", "config": {"name": "d", "kernel_initializer": {
                "registered_name": "pkg>Evil", "config": {}}}}
        ),
        "unknown legacy class": model_with({"class_name": "MyLayer", "config": {"name": "d"}}),
        "__typespec__": model_with({"class_name": "__typespec__", "config": []}),
    }  # fmt: skip
    for route, config in routes.items():
        report = inspect_config(config, "h5")
        assert report.code, route
    clean = model_with({"class_name": "Dense", "config": {"name": "d", "activation": "relu"}})
    report = inspect_config(clean, "h5")
    assert not report.code and not report.unsupported


def test_trusted_code_still_loads_through_the_cli_flag(tmp_path):
    """The check refuses, trust lets through (what the CLI's --trust-model-code does)."""
    path = tmp_path / "lambda.keras"
    inputs = keras.Input((64, 64, 3))
    x = keras.layers.TimeDistributed(keras.layers.Lambda(lambda t: t * 1.0), name="td")(
        keras.layers.Reshape((1, 64, 64, 3))(inputs)
    )
    x = keras.layers.Reshape((64, 64, 3))(x)
    x = keras.layers.Conv2D(8, 3, strides=32, padding="same", name="feat")(x)
    keras.Model(inputs, [keras.layers.Conv2D(75, 1, name="head")(x)]).save(path)
    with pytest.raises(UnsafeModelError, match=r"Lambda layer .* \(inside 'td'\)"):
        load_detector(path, anchors="10,13, 16,30, 33,23")
    detector = load_detector(path, anchors="10,13, 16,30, 33,23", trust_model_code=True)
    assert detector.heads[0].cam_layer == "feat"


def test_every_error_is_a_yolocam_error():
    for cases in (DARKNET_CASES, KERAS_CASES):
        for entry in cases.values():
            error = entry[-2]
            assert issubclass(error, YolocamError) and not issubclass(error, ModelNotFoundError)
