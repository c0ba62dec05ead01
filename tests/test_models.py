"""The models package: ModelSpec (parsing, equality, hashing, pickling), the input-size
parser, one conversion path and cache-key scheme for every Darknet model,
Detector.replace, the per-section plan against the built graph, and the Keras
internals module."""

from __future__ import annotations

import pickle
import subprocess
import sys

import keras
import numpy as np
import pytest

from yolocam_core.errors import ModelFileError
from yolocam_core.models import ModelSpec, load_detector, parse_input_size
from yolocam_core.models.cache import conversion_key

# -- ModelSpec -----------------------------------------------------------------------------


def test_spec_parses_user_strings_into_one_hashable_value(tmp_path, monkeypatch):
    names = tmp_path / "my.names"
    names.write_text("a\nb\n")
    monkeypatch.chdir(tmp_path)
    written = ModelSpec.from_options(
        "yolov4-tiny", anchors="10,13  16,30", input_size="320", classes="my.names"
    )
    parsed = ModelSpec.from_options(
        "yolov4-tiny", anchors=[[10, 13], [16, 30]], input_size=(320, 320), classes=names
    )
    assert written == parsed and hash(written) == hash(parsed) and len({written, parsed}) == 1
    assert written.anchors == ((10.0, 13.0), (16.0, 30.0))
    assert written.input_size == (320, 320) and written.classes == str(names)
    assert pickle.loads(pickle.dumps(written)) == written  # what batch workers receive
    assert written.replace(letterbox=True) != written
    assert written.replace(letterbox=True).letterbox is True and written.letterbox is None
    assert ModelSpec.from_options(classes=["x", "y"]).classes == ("x", "y")
    assert ModelSpec.from_options(classes="COCO").classes == "coco"
    assert ModelSpec() == ModelSpec.from_options()


def test_spec_makes_existing_paths_absolute_and_keeps_names(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "m.cfg").write_text("[net]\n")
    assert ModelSpec.from_options("m.cfg").source == str(tmp_path / "m.cfg")
    assert ModelSpec.from_options("missing.cfg").source == "missing.cfg"
    assert ModelSpec.from_options("yolov4-tiny").source == "yolov4-tiny"


@pytest.mark.parametrize(
    ("value", "expected"),
    [(416, (416, 416)), ("608", (608, 608)), ((320, 416), (320, 416)), ("416x320", (320, 416)),
     (None, None)],
)  # fmt: skip
def test_input_size_parser(value, expected):
    assert parse_input_size(value) == expected


@pytest.mark.parametrize(
    ("value", "message"),
    [("abc", "not a whole number"), (100, "multiples of 32"), (0, "multiples of 32"),
     (8192, "between 1 and 4096"), (True, "not a whole number"), (416.5, "not a whole number"),
     ((1, 2, 3), "one number or (height, width)"), ("4x4x4", "WIDTHxHEIGHT")],
)  # fmt: skip
def test_input_size_parser_refuses(value, message):
    with pytest.raises(ModelFileError, match=message.replace("(", r"\(").replace(")", r"\)")):
        parse_input_size(value)


def test_bad_options_are_refused_when_the_spec_is_built():
    with pytest.raises(ModelFileError, match="'x' is not a number"):
        ModelSpec.from_options(anchors="10,x")
    with pytest.raises(ModelFileError, match="anchor masks"):
        ModelSpec.from_options(anchor_masks="a;b")


# -- one conversion path and key scheme ----------------------------------------------------


def test_conversion_key_scheme():
    key = conversion_key("yolov4-tiny", "[net]", "ab" * 32, {"anchors": None, "input_size": None})
    assert key == conversion_key("yolov4-tiny", "[net]", "ab" * 32, {})
    assert key.startswith("yolov4-tiny-") and len(key) == len("yolov4-tiny-") + 16
    other = conversion_key("yolov4-tiny", "[net]", "ab" * 32, {"input_size": [320, 320]})
    assert other != key and other.startswith("yolov4-tiny-")
    assert conversion_key("my model!", "[net]", "0" * 64, {}).startswith("my_model_-")


@pytest.mark.slow
def test_named_model_with_options_takes_the_same_path(tmp_path, monkeypatch, sample_rgb):
    from yolocam_core.models import cache, loading

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    calls = []
    real = loading.load_darknet_detector

    def spy(*args, **kwargs):
        calls.append(kwargs)
        return real(*args, **kwargs)

    monkeypatch.setattr(loading, "load_darknet_detector", spy)
    plain = load_detector("yolov4-tiny")
    resized = load_detector("yolov4-tiny", input_size=320, letterbox=True)
    assert len(calls) == 2 and [c["key_name"] for c in calls] == ["yolov4-tiny"] * 2
    entries = sorted(p.name for p in (tmp_path / "yolocam" / "models").iterdir())
    version = f"-v{cache.CONVERTER_VERSION}"
    assert len(entries) == 2
    assert all(e.startswith("yolov4-tiny-") and e.endswith(version) for e in entries)
    assert [h.grid for h in plain.heads] == [(13, 13), (26, 26)]
    assert [h.grid for h in resized.heads] == [(10, 10), (20, 20)] and resized.letterbox
    assert resized.class_names == plain.class_names and resized.name == "yolov4-tiny"
    assert resized.detect(sample_rgb["bus.jpg"])  # still a working COCO detector


# -- Detector.replace ----------------------------------------------------------------------


def test_detector_replace(detector, sample_rgb):
    boxed = detector.replace(letterbox=not detector.letterbox, name="boxed")
    assert boxed is not detector and boxed.keras_model is detector.keras_model
    assert boxed.heads == detector.heads and boxed.class_names == detector.class_names
    assert boxed.letterbox != detector.letterbox and boxed.name == "boxed"
    assert detector.name == "yolov4-tiny"  # the original is untouched
    renamed = detector.replace(name="other")
    tensor, _ = detector.preprocess(sample_rgb["bus.jpg"])
    for a, b in zip(detector.predict(tensor), renamed.predict(tensor), strict=True):
        np.testing.assert_array_equal(a[2], b[2])
    with pytest.raises(TypeError, match="unknown fields \\['colour'\\]"):
        detector.replace(colour="red")


# -- the per-section plan against the built graph ------------------------------------------


@pytest.mark.parametrize("cfg_name", ["yolov3-tiny.cfg", "yolov3-spp.cfg", "yolov4-tiny"])
def test_plan_matches_the_built_graph(cfg_name, darknet_cfg_dir, default_model_files):
    """Every planned layer name exists in the built model with the planned shape, and
    the heads planned are the model's outputs."""
    from yolocam_core.models.darknet import build_model, load_config, plan_model

    path = default_model_files[0] if cfg_name == "yolov4-tiny" else darknet_cfg_dir / cfg_name
    plan = plan_model(load_config(path))
    built = build_model(plan)
    for layer in plan.layers:
        if layer.name == "image":
            continue
        output = built.model.get_layer(layer.name).output
        assert tuple(output.shape[1:]) == layer.shape, layer.section.where()
    assert [tuple(o.shape[1:3]) for o in built.model.outputs] == [h.grid for h in plan.heads]
    for head in plan.heads:
        built.model.get_layer(head.cam_layer)
        assert built.model.get_layer(head.output_name).output.shape[-1] == (
            head.num_anchors * (5 + head.num_classes)
        )
    assert sum(c.num_parameters for c in plan.convs) == built.model.count_params()


# -- Keras internals -----------------------------------------------------------------------


def test_keras_internals_on_a_small_graph():
    from yolocam_core import keras_internals as ki

    inputs = keras.Input((8, 8, 3), name="image")
    feat = keras.layers.Conv2D(4, 3, padding="same", name="feat")
    x = feat(inputs)
    out = keras.layers.Conv2D(6, 1, name="head")(keras.layers.ReLU(name="act")(x))
    model = keras.Model(inputs, out)
    head = model.get_layer("head")
    assert ki.producer_name(out) == "head"
    operation, node = ki.producer(out)
    assert operation is head and ki.node_outputs(node)[0] is out
    assert ki.producer_name(ki.node_inputs(node)[0]) == "act"
    assert [p.name for p in ki.parent_layers(head)] == ["act"]
    assert ki.consumer_names(feat) == {"act"}
    assert ki.ancestor_names(head) == {"act", "feat", "image"}
    assert ki.activation_elements(model) == 8 * 8 * 3 + 8 * 8 * 4 * 2 + 8 * 8 * 6
    assert ki.keras_symbol("keras.layers", "Dense") is keras.layers.Dense
    assert ki.keras_symbol("keras.layers", "NoSuchLayer") is None
    assert ki.keras_symbol("os", "system") is None
    assert ki.builtin_function("relu") is keras.activations.relu
    assert ki.builtin_function("system") is None
    assert "Conv2D" in ki.public_classes("layers")


def test_models_package_imports_without_tensorflow():
    code = (
        "import sys, yolocam_core.models as m; m.ModelSpec.from_options('yolov4-tiny', "
        "input_size=320); print('tensorflow' in sys.modules, 'keras' in sys.modules)"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.stdout.split() == ["False", "False"], result.stderr[-500:]
