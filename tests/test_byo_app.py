"""The web app's "Your model" sidebar section, headless (streamlit AppTest).

A Keras model and a Darknet cfg + weights uploaded in the sidebar become the model of
every page (overlays per head, the Model page); bad files, files with Python code and
files over their size limit are one readable ``st.error`` each, never an exception,
and the app keeps working on the default model.
"""

from __future__ import annotations

import io
from pathlib import Path

import keras
import numpy as np
import pytest
from app_helpers import heading, photo_uploader, scale_labels, widget
from keras_models import make_one_class_fire, small_model
from PIL import Image
from streamlit.testing.v1 import AppTest
from test_byo_darknet import V4_CLASSES, YOLOV4_STYLE_3, write_model

from yolocam_core.errors import YolocamError
from yolocam_core.models.classes import VOC_CLASSES

APP = str(Path(__file__).resolve().parents[1] / "app.py")
TIMEOUT = 180


@pytest.fixture
def app() -> AppTest:
    at = AppTest.from_file(APP, default_timeout=TIMEOUT)
    at.session_state["page_drawn"] = True  # no JavaScript here: see yolocam_app.first_view
    at.session_state["byo_open"] = True  # the "Your model" section, open
    at.run()
    assert not at.exception, at.exception
    return at


@pytest.fixture(scope="module")
def voc_keras(tmp_path_factory) -> bytes:
    """A small three-head VOC model (128 px) whose coarsest head predicts "dog"."""
    model = make_one_class_fire(small_model(num_classes=20, size=128), VOC_CLASSES.index("dog"))
    path = tmp_path_factory.mktemp("voc") / "voc_small.keras"
    model.save(path)
    return path.read_bytes()


def overlay_captions(at: AppTest) -> list[str]:
    return scale_labels(at)


def upload(at: AppTest, key: str, name: str, data: bytes) -> None:
    at.sidebar.file_uploader(key=key).upload(name, data, "application/octet-stream").run()


def test_upload_a_keras_model_and_explain_every_head(app, voc_keras):
    upload(app, "byo_keras", "voc_small.keras", voc_keras)
    app.sidebar.selectbox(key="byo_classes").set_value("voc").run()
    app.sidebar.button(key="byo_load").click().run()
    assert not app.exception and not app.error, [e.value for e in app.error]
    assert widget(app.sidebar, "selectbox", "model").value.startswith("upload:")
    assert overlay_captions(app) == ["4×4 · stride 32", "8×8 · stride 16", "16×16 · stride 8"]
    assert heading(app).startswith("odam · dog")  # VOC names in the detections
    # Every page uses it; choices survive a change of page.
    app.switch_page("app_pages/model.py").run()
    assert not app.exception and app.title[0].value == "Model · voc_small.keras"
    assert list(app.dataframe[0].value["Grad-CAM family layer"]) == [
        "conv_pw_pred_1_leaky_relu",
        "conv_pw_pred_2_leaky_relu",
        "conv_pw_pred_3_leaky_relu",
    ]
    app.switch_page("app_pages/compare_methods.py").run()
    panels = [c for img in app.get("image") for c in img.captions if c.startswith("score ")]
    assert not app.exception and len(panels) == 7 * 3
    # Back to the default model, and to ours again, without reloading it.
    app.switch_page("app_pages/explore.py").run()
    ours = widget(app.sidebar, "selectbox", "model").value
    widget(app.sidebar, "selectbox", "model").set_value("yolov4-tiny").run()
    assert len(overlay_captions(app)) == 2
    widget(app.sidebar, "selectbox", "model").set_value(ours).run()
    assert len(overlay_captions(app)) == 3 and not app.error


def test_upload_a_darknet_model(app, tmp_path):
    cfg, weights = write_model(tmp_path, "v4", YOLOV4_STYLE_3, seed=21)
    app.sidebar.radio(key="byo_kind").set_value("darknet").run()
    upload(app, "byo_cfg", "v4.cfg", cfg.read_bytes())
    upload(app, "byo_weights", "v4.weights", weights.read_bytes())
    app.sidebar.selectbox(key="byo_classes").set_value("file").run()
    upload(app, "byo_names", "v4.names", "\n".join(V4_CLASSES).encode())
    app.sidebar.button(key="byo_load").click().run()
    assert not app.exception and not app.error, [e.value for e in app.error]
    assert overlay_captions(app) == ["5×5 · stride 32", "10×10 · stride 16", "20×20 · stride 8"]


def test_expert_layers_stay_with_their_model(app, default_model_files):
    """Two models with the same layer names (the default one and an uploaded copy): a
    layer chosen for one on the Model page is not carried over to the other."""
    cfg, weights, _ = default_model_files
    app.sidebar.radio(key="byo_kind").set_value("darknet").run()
    upload(app, "byo_cfg", "copy.cfg", cfg.read_bytes())
    upload(app, "byo_weights", "copy.weights", weights.read_bytes())
    app.sidebar.button(key="byo_load").click().run()
    assert not app.exception and not app.error, [e.value for e in app.error]
    copy = widget(app.sidebar, "selectbox", "model").value
    assert copy.startswith("upload:")
    app.switch_page("app_pages/model.py").run()
    app.selectbox(key=f"layer_{copy}_0").set_value("conv_27_leaky").run()
    widget(app.sidebar, "selectbox", "model").set_value("yolov4-tiny").run()
    assert not app.exception
    layers = app.session_state["layers"]
    assert layers[copy] == {0: "conv_27_leaky"} and not layers.get("yolov4-tiny")
    assert app.selectbox(key="layer_yolov4-tiny_0").value == "conv_28_leaky"


def test_an_explain_error_in_the_explore_part_is_one_message(app, monkeypatch):
    from yolocam_app import resources

    def evicted(*args, **kwargs):
        raise YolocamError("this uploaded model is no longer loaded; load it again")

    monkeypatch.setattr(resources, "explain_compact", evicted)
    widget(app, "radio", "target_kind").set_value("A class").run()
    assert not app.exception
    assert any("no longer loaded" in e.value for e in app.error)


def lambda_keras(tmp_path) -> bytes:
    inputs = keras.Input((64, 64, 3))
    x = keras.layers.Lambda(lambda t: t * 1.0, name="scale")(inputs)
    x = keras.layers.Conv2D(8, 3, strides=32, padding="same")(x)
    path = tmp_path / "lambda.keras"
    keras.Model(inputs, [keras.layers.Conv2D(75, 1)(x)]).save(path)
    return path.read_bytes()


def decoded_keras(tmp_path) -> bytes:
    inputs = keras.Input((64, 64, 3))
    x = keras.layers.Flatten()(keras.layers.Conv2D(8, 3, strides=32, padding="same")(inputs))
    boxes = keras.layers.Reshape((10, 4))(keras.layers.Dense(40)(x))
    path = tmp_path / "decoded.keras"
    keras.Model(inputs, [boxes, keras.layers.Dense(10)(x)]).save(path)
    return path.read_bytes()


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda tmp: ("broken.h5", b"<html>not a model</html>"), "broken.h5 is not an .h5"),
        (lambda tmp: ("lambda.keras", lambda_keras(tmp)), "contains Python code"),
        (lambda tmp: ("decoded.keras", decoded_keras(tmp)), "look already decoded"),
        (lambda tmp: (None, None), "Upload a .h5 or .keras file first"),
    ],
    ids=["garbage", "lambda", "post-processed", "nothing"],
)
def test_bad_model_files_show_one_error_and_the_app_keeps_working(app, tmp_path, make, message):
    name, data = make(tmp_path)
    if name:
        upload(app, "byo_keras", name, data)
    app.sidebar.button(key="byo_load").click().run()
    assert not app.exception
    errors = [e.value for e in app.error]
    assert len(errors) == 1 and message in errors[0], errors
    assert "Traceback" not in errors[0]
    assert "--trust-model-code" not in errors[0] or "never" in errors[0]
    assert widget(app.sidebar, "selectbox", "model").value == "yolov4-tiny"
    assert len(overlay_captions(app)) == 2


def test_darknet_weights_that_do_not_fit(app, tmp_path):
    cfg, weights = write_model(tmp_path, "v4", YOLOV4_STYLE_3, seed=22)
    app.sidebar.radio(key="byo_kind").set_value("darknet").run()
    upload(app, "byo_cfg", "v4.cfg", cfg.read_bytes())
    app.sidebar.button(key="byo_load").click().run()
    assert "Upload its .weights first" in app.error[0].value
    upload(app, "byo_weights", "v4.weights", weights.read_bytes()[:-8])
    app.sidebar.button(key="byo_load").click().run()
    assert not app.exception and len(app.error) == 1
    assert f"got {len(weights.read_bytes()) - 8:,} bytes" in app.error[0].value
    assert "v4.weights does not fit v4.cfg" in app.error[0].value


def test_upload_size_limits(app, voc_keras, monkeypatch, sample_rgb):
    from yolocam_app import resources

    monkeypatch.setitem(resources.UPLOAD_LIMITS, "keras", 10_000)
    upload(app, "byo_keras", "voc_small.keras", voc_keras)
    app.sidebar.button(key="byo_load").click().run()
    assert not app.exception and len(app.error) == 1
    assert "the limit for a Keras model is" in app.error[0].value
    # Photos keep their own limit, checked in code.
    monkeypatch.setitem(resources.UPLOAD_LIMITS, "image", 10_000)
    buffer = io.BytesIO()
    Image.fromarray(np.asarray(sample_rgb["zidane.jpg"])).save(buffer, format="PNG")
    app.sidebar.radio(key="source").set_value("Upload").run()
    photo_uploader(app).upload("big.png", buffer.getvalue(), "image/png").run()
    assert not app.exception
    assert any("the limit for a photo is" in e.value for e in app.error)
    assert overlay_captions(app) == []


@pytest.mark.parametrize(
    ("limit", "expected"),
    [(10_000, 1), (1_000_000, 1), (1_000_001, 2), (1 << 20, 2), (25 << 20, 27)],
)
def test_widget_limit_is_a_positive_whole_number_of_mb(monkeypatch, limit, expected):
    # Streamlit's max_upload_size refuses 0 (a limit under 1 MB must still give 1), and
    # the browser reads it as decimal MB: never below the limit in bytes.
    from yolocam_app import resources

    monkeypatch.setitem(resources.UPLOAD_LIMITS, "image", limit)
    assert resources.widget_limit_mb("image") == expected
