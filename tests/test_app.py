"""Headless tests of every page with streamlit.testing.v1.AppTest and the real model."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from app_helpers import heading, overlay_captions, photo_uploader, scale_labels, widget
from PIL import Image
from streamlit.testing.v1 import AppTest

APP = str(Path(__file__).resolve().parents[1] / "app.py")
EXPLORE = "app_pages/explore.py"
TIMEOUT = 180  # the first run converts or loads the model


@pytest.fixture
def app() -> AppTest:
    at = AppTest.from_file(APP, default_timeout=TIMEOUT)
    at.session_state["page_drawn"] = True  # no JavaScript here: see yolocam_app.first_view
    at.run()
    assert not at.exception, at.exception
    return at


def test_a_new_session_draws_the_heatmaps_then_the_controls_then_the_rest():
    """A new session's first run draws the heatmaps and no widget (the sidebar holds its
    page links); the run its timer asks for (here: the next at.run(); AppTest runs no
    timer and no JavaScript) draws every control, showing exactly the values the
    heatmaps were made with; any next run (the browser's signal, or a click) draws the
    table, the interactive view and the downloads (yolocam_app.first_view)."""
    at = AppTest.from_file(APP, default_timeout=TIMEOUT)
    at.run()
    assert not at.exception, at.exception
    first = overlay_captions(at)
    assert len(first) == 2 and heading(at).startswith("odam · person")
    for kind in ("selectbox", "radio", "slider", "number_input", "multiselect"):
        assert not at.get(kind), kind
    assert not at.get("download_button") and not at.dataframe
    assert "Settings appear once the heatmaps are drawn" in at.sidebar.caption[0].value
    shown = heading(at)
    at.run()
    assert not at.exception, at.exception
    assert overlay_captions(at) == first and heading(at) == shown
    assert widget(at, "selectbox", "target_detection:").value == 0
    assert widget(at, "selectbox", "model").value == "yolov4-tiny"
    assert [s.value for s in at.sidebar.slider] == [0.25, 0.45, 0.5]
    assert not any("Settings appear" in c.value for c in at.sidebar.caption)
    assert not at.get("download_button") and not at.dataframe
    assert at.session_state["page_drawn"]
    at.run()
    assert len(at.get("download_button")) == 4 and len(at.dataframe) == 1
    assert overlay_captions(at) == first


def test_default_state_detects_and_explains_a_sample(app):
    assert not app.error
    assert app.title[0].value == "Why did the detector fire?"
    captions = overlay_captions(app)
    assert len(captions) == 2  # yolov4-tiny: 13×13 and 26×26
    assert captions[0].startswith("13×13 · stride 32") and captions[1].startswith(
        "26×26 · stride 16"
    )
    assert any("detection(s)" in c for img in app.get("image") for c in img.captions)
    assert heading(app).startswith("odam · person")  # the top detection, with ODAM
    assert len(app.get("download_button")) == 4


def test_switching_target_scale_and_method_changes_the_view(app):
    first = heading(app)
    widget(app, "selectbox", "target_detection:").set_value(3).run()
    assert heading(app) != first and "bus" in heading(app)
    widget(app, "radio", "target_kind").set_value("A class").run()
    assert heading(app).startswith("gradcam · class ")
    widget(app, "radio", "target_kind").set_value("Whole head output (article)").run()
    assert heading(app).startswith("seed · whole head output")
    widget(app, "radio", "scales_mode").set_value("One").run()
    widget(app, "selectbox", "scales_one").set_value(1).run()
    assert scale_labels(app) == ["26×26 · stride 16"]
    widget(app, "selectbox", "method").set_value("eigencam").run()
    assert heading(app).startswith("eigencam ·")
    widget(app, "radio", "target_kind").set_value("One detection").run()
    widget(app, "selectbox", "method").set_value("gradcam++").run()
    assert heading(app).startswith("gradcam++ · bus")
    assert not app.exception and not app.error


def test_drawing_options_do_not_recompute(app, monkeypatch):
    from yolocam_core.explainer import Explainer

    calls = []
    original = Explainer.explain_many
    monkeypatch.setattr(
        Explainer,
        "explain_many",
        lambda self, fwd, targets, *a, **k: (
            calls.append(len(targets)) or original(self, fwd, targets, *a, **k)
        ),
    )
    app.sidebar.selectbox(key="colormap").set_value("viridis").run()
    app.sidebar.slider(key="opacity").set_value(0.8).run()
    assert calls == []
    widget(app, "selectbox", "method").set_value("layercam").run()
    assert calls == [6]  # bus.jpg's 6 detections, explained together in one call


def _png(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="PNG")
    return buffer.getvalue()


def test_upload_a_good_photo(app, sample_rgb):
    app.sidebar.radio(key="source").set_value("Upload").run()
    assert app.info and "Upload a photo" in app.info[0].value
    photo_uploader(app).upload("street.png", _png(sample_rgb["zidane.jpg"]), "image/png").run()
    assert not app.exception and not app.error
    assert len(overlay_captions(app)) == 2


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("notes.png", b"this is plain text, not a picture", "not an image file"),
        ("empty.jpg", b"", "empty"),
        ("cut.jpg", None, "truncated or corrupt"),
    ],
)
def test_bad_upload_shows_an_error_and_the_app_keeps_running(app, samples, name, content, message):
    if content is None:
        content = samples["bus.jpg"].read_bytes()[:20000]
    app.sidebar.radio(key="source").set_value("Upload").run()
    photo_uploader(app).upload(name, content, "image/jpeg").run()
    assert not app.exception
    assert len(app.error) == 1 and message in app.error[0].value
    # Named as the user knows it, once (not the library's "uploaded file").
    assert app.error[0].value.startswith(f"Cannot use {name}: ")
    assert "uploaded file" not in app.error[0].value
    assert overlay_captions(app) == []
    # Back to a sample: everything works again in the same session.
    app.sidebar.radio(key="source").set_value("Sample photo").run()
    assert not app.error and len(overlay_captions(app)) == 2


def test_a_tiff_upload_is_explained(app, sample_rgb):
    """The uploader takes the formats the error message names (TIFF included)."""
    buffer = io.BytesIO()
    Image.fromarray(sample_rgb["zidane.jpg"]).save(buffer, format="TIFF")
    app.sidebar.radio(key="source").set_value("Upload").run()
    photo_uploader(app).upload("street.tif", buffer.getvalue(), "image/tiff").run()
    assert not app.exception and not app.error
    assert len(overlay_captions(app)) == 2


def test_huge_image_is_refused_with_a_clear_error(app):
    # 10,000 × 10,000 = 100 million pixels, as a tiny PNG (one colour compresses well).
    big = Image.new("L", (10_000, 10_000), 128)
    buffer = io.BytesIO()
    big.save(buffer, format="PNG")
    app.sidebar.radio(key="source").set_value("Upload").run()
    photo_uploader(app).upload("huge.png", buffer.getvalue(), "image/png").run()
    assert not app.exception
    assert len(app.error) == 1 and "100,000,000 pixels" in app.error[0].value


def overlay_panels(at: AppTest) -> list[str]:
    """The Compare page's overlays (captioned "score …")."""
    return [c for img in at.get("image") for c in img.captions if c.startswith("score ")]


def test_compare_methods_page_shows_methods_by_scales(app):
    app.switch_page("app_pages/compare_methods.py").run()
    assert not app.exception
    # every method but D-RISE (opt-in, slow) × two scales
    assert len(overlay_panels(app)) == 7 * 2
    widget(app, "multiselect", "compare_methods").set_value(["gradcam", "eigencam"]).run()
    assert len(overlay_panels(app)) == 2 * 2


def test_model_page_lists_heads_and_lets_experts_pick_a_layer(app):
    app.switch_page("app_pages/model.py").run()
    assert not app.exception
    assert app.title[0].value == "Model · yolov4-tiny"
    # The photo with the chosen box, and which head made each detection.
    photo = [c for img in app.get("image") for c in img.captions]
    assert photo == ["bus.jpg · the chosen box highlighted"]
    by_head = next(m.value for m in app.markdown if "by the head that predicted them" in m.value)
    assert "**13×13 · stride 32**: " in by_head and "★ the chosen box's head" in by_head
    heads = app.dataframe[0].value
    assert list(heads["grid"]) == ["13×13", "26×26"]
    assert list(heads["Grad-CAM family layer"]) == ["conv_28_leaky", "conv_35_leaky"]
    assert list(heads["ODAM layer"]) == ["conv_27_leaky", "route_34"]
    app.selectbox(key="layer_yolov4-tiny_0").set_value("conv_23_leaky").run()
    assert app.session_state["layers"] == {"yolov4-tiny": {0: "conv_23_leaky"}}
    app.switch_page(EXPLORE).run()
    assert not app.exception and len(overlay_captions(app)) == 2
    # The maps say which layer is not the method's own.
    captions = overlay_captions(app)
    assert captions[0].endswith("custom layer conv_23_leaky")
    assert "custom layer" not in captions[1]
    assert any("Custom layers" in c.value and "conv_23_leaky" in c.value for c in app.caption)
    # One scale only: the layer chosen for the other scale is left out, not an error.
    widget(app, "radio", "scales_mode").set_value("One").run()
    widget(app, "selectbox", "scales_one").set_value(1).run()
    assert not app.exception and not app.error and len(overlay_captions(app)) == 1


def test_sidebar_choices_and_upload_survive_a_change_of_page(app, sample_rgb):
    widget(app, "selectbox", "method").set_value("hirescam").run()
    app.sidebar.selectbox(key="colormap").set_value("viridis").run()
    app.sidebar.radio(key="source").set_value("Upload").run()
    photo_uploader(app).upload("street.png", _png(sample_rgb["zidane.jpg"]), "image/png").run()
    app.switch_page("app_pages/compare_methods.py").run()
    assert app.sidebar.selectbox(key="colormap").value == "viridis"
    assert app.sidebar.radio(key="source").value == "Upload"
    assert not app.info and not app.error  # the uploaded photo is still there
    app.switch_page(EXPLORE).run()
    # The method chosen on Explore (not drawn on the Compare page) is still the one.
    assert widget(app, "selectbox", "method").value == "hirescam"
    assert heading(app).startswith("hirescam ·")
