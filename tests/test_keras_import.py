"""Keras models from the popular Keras YOLOv3 projects, through our importer.

1. The article's model (YOLOv3-Lite-MobileNetV2, VOC, 416) saved as ``.h5`` and as
   ``.keras``: heads found by shape at 13×13, 26×26, 52×52 with the layers the article
   used, the same raw outputs as the model that was saved, every CAM method at every
   scale, and the ``seed`` method equal to a transcription of the article's snippet
   run on the in-memory model.
2. tf.keras 2 ``.h5`` files (written with tf_keras, the Keras 2 API those projects use):
   mapped layers and registered activations, outputs equal to tf_keras's own.
3. Safety: Lambda layers refused in ``.keras`` and ``.h5`` (without running them) unless
   trusted, also through the CLI flag; corrupted and weights-only files give readable
   errors; post-processed outputs are refused with what to export.
4. Decoding options: VOC detections name VOC classes; anchors, masks and class counts
   that do not fit the model are named in the error.
"""

from __future__ import annotations

import json

import keras
import numpy as np
import pytest
import tensorflow as tf
from article_reference import article_heatmap
from keras_models import article_model, make_one_class_fire, small_model

from yolocam_core import load_detector
from yolocam_core.cams import get_method, method_names
from yolocam_core.errors import ModelFileError, UnsafeModelError
from yolocam_core.explainer import Explainer
from yolocam_core.models.anchors import anchors_for_heads, parse_anchors, parse_masks
from yolocam_core.models.classes import VOC_CLASSES
from yolocam_core.models.keras_import import detector_from_keras_model
from yolocam_core.models.keras_safety import inspect_model_file
from yolocam_core.targets import ClassTarget, SeedTarget

pytestmark = [
    # the article passes [model.inputs] (a nested list) to Model: Keras 3 warns, works
    pytest.mark.filterwarnings("ignore:The structure of `inputs`:UserWarning"),
    pytest.mark.filterwarnings("ignore:You are saving your model as an HDF5 file"),
    # the article's loop multiplies numpy scalars with tensors (numpy 2 copy= notice)
    pytest.mark.filterwarnings("ignore:__array__ implementation doesn't accept a copy"),
]

ARTICLE_LAYERS = [f"conv_pw_pred_{k}_3_leaky_relu" for k in (1, 2, 3)]
ARTICLE_HEADS = [f"predict_conv_{k}" for k in (1, 2, 3)]


# -- 1. the article's model ----------------------------------------------------------------


@pytest.fixture(scope="module")
def article(tmp_path_factory):
    """(in-memory model, {"h5": path, "keras": path})."""
    model = article_model()
    folder = tmp_path_factory.mktemp("article")
    paths = {"h5": folder / "yolo3lite_mobilenetv2_voc.h5", "keras": folder / "article.keras"}
    model.save(paths["h5"])
    model.save(paths["keras"])
    return model, paths


@pytest.fixture(scope="module")
def article_explainers(article):
    _, paths = article
    return {fmt: Explainer(load_detector(path, classes="voc")) for fmt, path in paths.items()}


@pytest.fixture(scope="module")
def square_photo(sample_rgb):
    """bus.jpg cropped square: letterboxing then adds no padding, so the article's
    plain resize of the map to the photo and ours agree pixel for pixel."""
    image = sample_rgb["bus.jpg"]
    side = min(image.shape[:2])
    return np.ascontiguousarray(image[:side, :side])


@pytest.mark.parametrize("fmt", ["h5", "keras"])
def test_article_model_heads_found_by_shape(article, article_explainers, fmt):
    model, _ = article
    detector = article_explainers[fmt].detector
    assert detector.input_size == (416, 416) and detector.letterbox
    assert [h.grid for h in detector.heads] == [(13, 13), (26, 26), (52, 52)]
    assert [h.stride for h in detector.heads] == [32, 16, 8]
    assert [h.cam_layer for h in detector.heads] == ARTICLE_LAYERS
    assert [h.output_name for h in detector.heads] == ARTICLE_HEADS
    assert [h.anchors[0] for h in detector.heads] == [(116, 90), (30, 61), (10, 13)]
    assert detector.num_classes == 20 and detector.class_names == VOC_CLASSES
    # The fast path (gradient through the final convolution only) applies to every head.
    assert article_explainers[fmt]._tail_exact == (True, True, True)
    x = np.random.default_rng(0).uniform(0, 1, (1, 416, 416, 3)).astype(np.float32)
    expected = model(x, training=False)
    for got, want in zip(detector.raw_outputs(x), expected, strict=True):
        np.testing.assert_allclose(got.numpy(), want.numpy(), atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("fmt", ["h5", "keras"])
def test_article_model_every_method_at_three_scales(article_explainers, square_photo, fmt):
    explainer = article_explainers[fmt]
    fwd = explainer.forward(square_photo)
    targets = [SeedTarget(), ClassTarget(VOC_CLASSES.index("bus"))]
    for method in method_names():
        varied = []
        # the gradient methods refuse the whole head output (its score has no sign)
        usable = [t for t in targets if method in ("seed", "eigencam") or t.kind != "seed"]
        for result in explainer.explain_many(fwd, usable, method=method):
            assert [m.grid_map.shape for m in result.maps] == [(13, 13), (26, 26), (52, 52)]
            cam = get_method(method)
            expected = [
                "+".join(cam.layers(explainer.detector, s)) for s in range(3)
            ]  # the head-input layers, ODAM's the neck outputs before them
            assert [m.layer for m in result.maps] == expected
            if method != "odam":
                assert expected == ARTICLE_LAYERS
            for m in result.maps:
                assert m.heatmap.shape == square_photo.shape[:2]
                assert np.isfinite(m.grid_map).all(), (method, m.label)
                assert 0.0 <= m.heatmap.min() and m.heatmap.max() <= 1.0
                varied.append(m.grid_map.std() > 0)
        # Random weights: a ReLU'd map may be all zero for some target and scale; the
        # methods without ReLU never are.
        assert all(varied) if method in ("seed", "eigencam") else sum(varied) >= 2, method


@pytest.mark.parametrize("fmt", ["h5", "keras"])
def test_article_seed_equals_the_article_snippet(article, article_explainers, square_photo, fmt):
    """The article ran its snippet on its in-memory model with the layer names
    ``conv_pw_pred_{1,2,3}_3_leaky_relu`` and ``model.outputs[s]``; we explain the
    model loaded from the file. Same maps (the +1 the article starts from vanishes
    under min–max normalisation; see tests/test_explainer.py)."""
    model, _ = article
    explainer = article_explainers[fmt]
    img = explainer.detector.preprocess(square_photo)[0][0]  # letterboxed, ÷255
    H, W = square_photo.shape[:2]  # noqa: N806
    ours = explainer.explain(square_photo, SeedTarget(), method="seed", norm="per-map")
    for s, layer in enumerate(ARTICLE_LAYERS):
        expected = article_heatmap(model, layer, s, img, W, H)
        got = ours.by_scale(s).heatmap
        assert got.shape == expected.shape == (H, W)
        # With random weights the raw map is ~10 with a spread of ~0.03, and the
        # article sums 1280 channels in float32: its own rounding is ~1e-4 of the
        # spread, which min–max normalisation turns into ~1e-4 of the heatmap.
        err = float(np.abs(got - expected).max())
        assert err <= 1e-3, f"{fmt} scale {s}: max abs diff {err:.3g}"
        # The snippet's arithmetic in float64 at grid resolution: ours (float32 maps)
        # within 1e-4 of the spread.
        grad_model = tf.keras.models.Model(
            [model.inputs], [model.get_layer(layer).output, model.outputs[s]]
        )
        with tf.GradientTape() as tape:
            conv_outputs, predictions = grad_model(np.array([img]))
        grads = tape.gradient(predictions, conv_outputs)[0].numpy().astype(np.float64)
        output = conv_outputs[0].numpy().astype(np.float64)
        weights = ((output > 0) * (grads > 0) * grads).mean(axis=(0, 1))
        exact = output @ weights
        spread = float(np.ptp(exact))
        assert np.abs(ours.by_scale(s).grid_map - exact).max() <= 1e-4 * max(spread, 1e-12)


# -- 2. tf.keras 2 files -----------------------------------------------------------------------


@pytest.fixture(scope="module")
def legacy_h5(tmp_path_factory):
    """A two-head model saved by tf.keras 2 with what those projects' files contain:
    a free input size, L2 regularizers, SyncBatchNormalization (keras-YOLOv3-model-set's
    CustomBatchNormalization), DepthwiseConv2D (saved with groups=1), LeakyReLU(alpha),
    Activation(mish / swish / hard_swish / hard_sigmoid) as custom Python functions.

    Returns (path, input batch, tf_keras outputs).
    """
    tk = pytest.importorskip("tf_keras")
    tk.utils.set_random_seed(11)

    def mish(x):
        return x * tf.math.tanh(tf.math.softplus(x))

    def swish(x):
        return x * tf.sigmoid(x)

    def hard_sigmoid(x):
        return tk.backend.relu(x + 3.0, max_value=6.0) / 6.0

    def hard_swish(x):
        return x * tk.backend.relu(x + 3.0, max_value=6.0) / 6.0

    L = tk.layers  # noqa: N806
    inputs = tk.Input((None, None, 3), name="image_input")
    x = L.Conv2D(8, 3, strides=2, padding="same", use_bias=False,
                 kernel_regularizer=tk.regularizers.l2(5e-4))(inputs)  # fmt: skip
    x = L.BatchNormalization()(x)
    x = L.LeakyReLU(alpha=0.1)(x)
    x = L.DepthwiseConv2D(3, padding="same", name="conv_dw_1")(x)
    x = L.experimental.SyncBatchNormalization(name="conv_dw_1_bn")(x)
    x = L.Activation(mish)(x)
    x = L.ZeroPadding2D(((1, 0), (1, 0)))(x)
    x = L.Conv2D(16, 3, strides=2, padding="valid", kernel_initializer="he_normal")(x)
    x = L.Activation(hard_swish)(x)
    fine = x
    x = L.MaxPooling2D(2)(x)
    x = L.Conv2D(16, 3, padding="same")(x)
    x = L.Activation(swish)(x)
    gate = L.Activation(hard_sigmoid)(L.Conv2D(16, 1)(x))
    x = L.Multiply()([x, gate])
    y1 = L.Conv2D(3 * (5 + 2), 1, name="conv2d_59")(x)
    x = L.Concatenate()([L.UpSampling2D(2)(x), fine])
    y2 = L.Conv2D(3 * (5 + 2), 1, name="conv2d_67")(x)
    model = tk.Model(inputs, [y1, y2])
    rng = np.random.default_rng(12)
    model.set_weights(
        [
            rng.uniform(0.5, 1.5, w.shape).astype("float32")
            if w.ndim == 1
            else rng.normal(0, 0.3, w.shape).astype("float32")
            for w in model.get_weights()
        ]
    )
    path = tmp_path_factory.mktemp("legacy") / "tiny_legacy.h5"
    model.save(path)
    x_in = rng.uniform(0, 1, (1, 96, 96, 3)).astype(np.float32)
    return path, x_in, [o for o in model.predict(x_in, verbose=0)]


def test_tf_keras_2_h5_loads_with_mapped_layers_and_equal_outputs(legacy_h5):
    path, x_in, expected = legacy_h5
    report = inspect_model_file(path)
    assert report.legacy and report.layer_classes["SyncBatchNormalization"] == 1
    assert not report.code and not report.unsupported
    detector = load_detector(path, input_size=96, classes=["cat", "dog"])
    assert [h.grid for h in detector.heads] == [(12, 12), (24, 24)]  # coarsest first
    assert [h.output_name for h in detector.heads] == ["conv2d_59", "conv2d_67"]
    assert detector.heads[0].cam_layer == "multiply"
    # Two heads: the tiny defaults (keras-YOLOv3-model-set masks).
    assert detector.heads[0].anchors == ((81, 82), (135, 169), (344, 319))
    for got, want in zip(detector.raw_outputs(x_in), expected, strict=True):
        np.testing.assert_allclose(got.numpy(), want, atol=1e-4, rtol=1e-4)


def test_keras_yolo3_tiny_masks():
    coarse, fine = anchors_for_heads(2, None, "keras-yolo3")
    assert coarse == ((81, 82), (135, 169), (344, 319))
    assert fine == ((23, 27), (37, 58), (81, 82))


# -- 3. safety ---------------------------------------------------------------------------------


def lambda_model(marker) -> keras.Model:
    """A small YOLO model with a Lambda layer whose code writes ``marker`` when run."""
    base = small_model(heads=2, size=64)
    inputs = keras.Input((64, 64, 3), name="image")
    x = keras.layers.Lambda(
        lambda t, path=str(marker): (__import__("pathlib").Path(path).write_text("ran"), t)[1],
        name="preprocess",
    )(inputs)
    return keras.Model(inputs, base(x))


@pytest.mark.parametrize("suffix", [".keras", ".h5"])
def test_lambda_layer_is_refused_without_running_it(tmp_path, suffix):
    marker = tmp_path / "code_ran.txt"
    path = tmp_path / f"with_lambda{suffix}"
    lambda_model(marker).save(path)
    marker.unlink(missing_ok=True)  # building the model ran the lambda once
    with pytest.raises(UnsafeModelError) as info:
        load_detector(path)
    message = str(info.value)
    assert "Lambda layer 'preprocess'" in message and "Python code" in message
    assert "--trust-model-code" in message
    assert not marker.exists(), "the Lambda's code ran although the file was refused"


def test_lambda_model_loads_when_trusted(tmp_path):
    marker = tmp_path / "code_ran.txt"
    path = tmp_path / "trusted.keras"
    # Flat model (no nested sub-model), so that its heads can be found.
    inputs = keras.Input((64, 64, 3), name="image")
    x = keras.layers.Lambda(lambda t: t * 1.0, name="scale")(inputs)
    x = keras.layers.Conv2D(8, 3, strides=32, padding="same", name="feat")(x)
    model = keras.Model(inputs, [keras.layers.Conv2D(75, 1, name="head")(x)])
    model.save(path)
    with pytest.raises(UnsafeModelError):
        load_detector(path, anchors="10,13, 16,30, 33,23")
    detector = load_detector(path, anchors="10,13, 16,30, 33,23", trust_model_code=True)
    assert [h.grid for h in detector.heads] == [(2, 2)] and detector.num_classes == 20
    assert detector.heads[0].cam_layer == "feat"
    assert not marker.exists()


def test_cli_refuses_code_unless_trusted(tmp_path, capsys, samples):
    from yolocam_core.cli.main import main

    path = tmp_path / "lambda.keras"
    inputs = keras.Input((64, 64, 3), name="image")
    x = keras.layers.Lambda(lambda t: t * 1.0, name="scale")(inputs)
    x = keras.layers.Conv2D(8, 3, strides=32, padding="same", name="feat")(x)
    keras.Model(inputs, [keras.layers.Conv2D(75, 1, name="head")(x)]).save(path)
    image = str(samples["zidane.jpg"])
    argv = ["detect", image, "--model", str(path), "--anchors", "10,13, 16,30, 33,23"]
    assert main(argv) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("yolocam: error: lambda.keras contains Python")
    assert main([*argv, "--trust-model-code", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)[0]["image"] == image


def test_custom_layer_class_is_refused(tmp_path):
    @keras.saving.register_keras_serializable(package="testpkg")
    class Doubler(keras.layers.Layer):
        def call(self, x):
            return 2 * x

    inputs = keras.Input((64, 64, 3))
    x = Doubler(name="doubler")(inputs)
    x = keras.layers.Conv2D(8, 3, strides=32, padding="same")(x)
    path = tmp_path / "custom.keras"
    keras.Model(inputs, [keras.layers.Conv2D(75, 1)(x)]).save(path)
    with pytest.raises(UnsafeModelError, match="custom Doubler layer 'doubler'"):
        load_detector(path)


@pytest.fixture(scope="module")
def small_files(tmp_path_factory):
    folder = tmp_path_factory.mktemp("small")
    model = small_model(heads=3, size=128)
    paths = {"h5": folder / "small.h5", "keras": folder / "small.keras"}
    model.save(paths["h5"])
    model.save(paths["keras"])
    return model, paths


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda data: data[: len(data) // 2], "small.h5"),
        (lambda data: b"\x89HDF\r\n\x1a\n" + b"\x00" * 200, "not a readable HDF5 file"),
        (lambda data: b"<html>404 not found</html>", "not an .h5 (HDF5) model file"),
        (lambda data: b"", "is empty"),
    ],
    ids=["truncated", "bad-hdf5", "not-hdf5", "empty"],
)
def test_corrupted_h5_gives_a_readable_error(small_files, tmp_path, make, message):
    _, paths = small_files
    broken = tmp_path / "small.h5"
    broken.write_bytes(make(paths["h5"].read_bytes()))
    with pytest.raises(ModelFileError) as info:
        load_detector(broken)
    text = str(info.value)
    assert message in text and "small.h5" in text
    assert "Traceback" not in text and len(text) < 600


def test_corrupted_files_in_the_cli_are_one_line(small_files, tmp_path, capsys, samples):
    from yolocam_core.cli.main import main

    _, paths = small_files
    broken = tmp_path / "broken.keras"
    broken.write_bytes(paths["keras"].read_bytes()[:3000])
    code = main(["detect", str(samples["zidane.jpg"]), "--model", str(broken)])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 1 and len(err) == 1
    assert "broken.keras is not a readable .keras file" in err[0]


def test_weights_holding_nan_are_refused(tmp_path):
    """A model whose training diverged: every map and score would be NaN."""
    model = small_model(heads=3, size=128)
    kernel = model.weights[0]
    kernel.assign(np.full(kernel.shape, np.nan, np.float32))
    path = tmp_path / "diverged.keras"
    model.save(path)
    with pytest.raises(
        ModelFileError, match=r"diverged\.keras: 1 of its \d+ weight tensors hold NaN"
    ):
        load_detector(path)


def test_weights_only_h5_says_what_to_save(small_files, tmp_path):
    model, _ = small_files
    path = tmp_path / "yolo.weights.h5"
    model.save_weights(path)
    with pytest.raises(ModelFileError, match="holds only weights"):
        load_detector(path)


def test_post_processed_outputs_are_refused(tmp_path):
    inputs = keras.Input((128, 128, 3))
    x = keras.layers.Conv2D(8, 3, strides=32, padding="same")(inputs)
    x = keras.layers.Flatten()(x)
    boxes = keras.layers.Reshape((100, 4))(keras.layers.Dense(400)(x))
    scores = keras.layers.Dense(100, activation="sigmoid")(x)
    classes = keras.layers.Dense(100)(x)
    path = tmp_path / "with_nms.keras"
    keras.Model(inputs, [boxes, scores, classes]).save(path)
    with pytest.raises(ModelFileError) as info:
        load_detector(path)
    text = str(info.value)
    assert "look already decoded" in text and "(None, 100, 4)" in text
    assert "raw YOLO head outputs" in text and "--dump_model" in text


def test_head_with_activation_is_refused():
    inputs = keras.Input((64, 64, 3))
    x = keras.layers.Conv2D(8, 3, strides=32, padding="same")(inputs)
    model = keras.Model(inputs, [keras.layers.Conv2D(75, 1, activation="sigmoid")(x)])
    with pytest.raises(ModelFileError, match="applies 'sigmoid'"):
        detector_from_keras_model(model, anchors="10,13, 16,30, 33,23")


def test_reshaped_heads_are_rewired_to_their_convolutions():
    """keras-style heads reshaped to (H, W, A, 5 + C): the explainer gets the
    convolutions' outputs, and the anchor count in the shape is checked."""
    base = small_model(heads=2, size=64, num_classes=3)
    outs = [keras.layers.Reshape((o.shape[1], o.shape[2], 3, 8))(o) for o in base.outputs]
    model = keras.Model(base.inputs, outs)
    detector = detector_from_keras_model(model, classes=["a", "b", "c"])
    assert [h.output_name for h in detector.heads] == ["predict_conv_1", "predict_conv_2"]
    assert [tuple(o.shape) for o in detector.keras_model.outputs] == [
        (None, 2, 2, 24),
        (None, 4, 4, 24),
    ]
    with pytest.raises(ModelFileError, match="predicts 3 anchors per cell but it is given 2"):
        detector_from_keras_model(model, anchors="1,1, 2,2, 3,3, 4,4", anchor_masks="2,3; 0,1")


# -- 4. decoding options -----------------------------------------------------------------------


def test_voc_model_detections_name_voc_classes(tmp_path, sample_rgb, capsys, samples):
    dog = VOC_CLASSES.index("dog")
    model = make_one_class_fire(small_model(num_classes=20, heads=3, size=128), dog)
    path = tmp_path / "voc.h5"
    model.save(path)
    detector = load_detector(path, classes="voc")
    detections = detector.detect(sample_rgb["zidane.jpg"])
    assert detections and {d.class_name for d in detections} == {"dog"}
    assert {(d.class_id, d.scale, d.anchor) for d in detections} == {(dog, 0, 0)}
    # The same from a names file, and through the CLI.
    names = tmp_path / "voc_classes.txt"
    names.write_text("\n".join(VOC_CLASSES) + "\n")
    assert load_detector(path, classes=names).class_names == VOC_CLASSES
    from yolocam_core.cli.main import main

    code = main(["detect", str(samples["zidane.jpg"]), "--model", str(path), "--classes",
                 str(names), "--json"])  # fmt: skip
    report = json.loads(capsys.readouterr().out)
    assert code == 0 and {d["class_name"] for d in report[0]["detections"]} == {"dog"}


def test_wrong_classes_and_anchors_are_named(small_files):
    _, paths = small_files
    with pytest.raises(ModelFileError, match="coco preset has 80 names but the model predicts 20"):
        load_detector(paths["keras"], classes="coco")
    with pytest.raises(ModelFileError, match="75 channels, which is not 4 anchors"):
        load_detector(paths["keras"], anchors=[1, 1] * 12)
    with pytest.raises(ModelFileError, match="refers to anchors that do not exist"):
        load_detector(paths["keras"], anchor_masks="6,7,8; 3,4,5; 0,1,9")
    with pytest.raises(ModelFileError, match="multiples of 32"):
        load_detector(paths["keras"], input_size=100)
    # Another input size for a fully convolutional model: the grids follow.
    detector = load_detector(paths["keras"], input_size=256, letterbox=False)
    assert [h.grid for h in detector.heads] == [(8, 8), (16, 16), (32, 32)]
    assert not detector.letterbox


def test_anchor_and_mask_parsing():
    assert parse_anchors("10,13, 16,30") == ((10, 13), (16, 30))
    assert parse_anchors([10, 13, 16, 30]) == parse_anchors([[10, 13], [16, 30]])
    assert parse_anchors(" ") is None
    assert parse_masks("6,7,8; 3,4,5") == ((6, 7, 8), (3, 4, 5))
    for bad, message in [("10,13, 16", "not a whole number"), ("10,x", "'x' is not a number"),
                         ("10,-1", "positive")]:  # fmt: skip
        with pytest.raises(ModelFileError, match=message):
            parse_anchors(bad)
    with pytest.raises(ModelFileError, match="default anchors only for"):
        anchors_for_heads(4)
    with pytest.raises(ModelFileError, match="the model has 1 head and there are default"):
        anchors_for_heads(1)
    with pytest.raises(ModelFileError, match=r"2 groups but the model has 1 head$"):
        anchors_for_heads(1, [1, 2, 3, 4], "0; 1")


def test_keras_3_operations_and_nested_models():
    """Plain keras.ops in a functional model are Keras' own (accepted); the CAM layer is
    then the nearest layer above them. A nested model is named with what to load."""
    inputs = keras.Input((64, 64, 3))
    x = keras.layers.Conv2D(8, 3, strides=32, padding="same", name="feat")(inputs)
    x = keras.ops.tanh(x) + 1.0
    model = keras.Model(inputs, [keras.layers.Conv2D(75, 1, name="head")(x)])
    detector = detector_from_keras_model(model, anchors="10,13, 16,30, 33,23")
    assert detector.heads[0].cam_layer == "feat"
    result = Explainer(detector).explain(np.zeros((64, 64, 3), np.uint8), SeedTarget())
    assert result.maps[0].grid_map.shape == (2, 2)
    inner = small_model(heads=2, size=64)
    image = keras.Input((64, 64, 3))
    with pytest.raises(ModelFileError, match="nested model 'small_yolo'"):
        detector_from_keras_model(keras.Model(image, inner(image)))


def test_activations_by_name(tmp_path):
    """A custom activation saved by name loads when it is one the projects use (ours
    replaces it; its module is never imported); any other is named in the error."""

    def mish(x):
        return x * keras.ops.tanh(keras.ops.softplus(x))

    def weird(x):
        return 2.0 * x

    for fn in (mish, weird):
        inputs = keras.Input((64, 64, 3))
        x = keras.layers.Conv2D(8, 3, strides=32, padding="same", activation=fn)(inputs)
        path = tmp_path / f"{fn.__name__}.keras"
        keras.Model(inputs, [keras.layers.Conv2D(75, 1)(x)]).save(path)
    assert load_detector(tmp_path / "mish.keras", anchors="10,13, 16,30, 33,23").num_classes == 20
    with pytest.raises(ModelFileError, match="the custom function 'weird'"):
        load_detector(tmp_path / "weird.keras", anchors="10,13, 16,30, 33,23")
