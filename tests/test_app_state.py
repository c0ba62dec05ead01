"""The app's state never drifts from what it shows, work per request is bounded, and
every map says what it is worth (headless, streamlit AppTest, real models).

- (a) a photo without detections, then one with: the "Explain" choice shown is the
  one used; (b) one scale: the interactive view's selector shows that scale;
  (c) the uploaded photo stays in its uploader across pages, and Sample -> Upload
  shows an empty uploader *and* no old photo;
- a model that floods detections: capped, with a readable message;
- weak-scale and own-scale markers, the default normalisation ("auto"), warnings for
  photos too small or too elongated, the downloads (zip metadata, HTML report).
"""

from __future__ import annotations

import io
import json
import zipfile
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest
from app_helpers import heading, overlay_captions, photo_uploader, scale_labels, widget
from keras_models import small_model
from PIL import Image
from streamlit.testing.v1 import AppTest

ROOT = Path(__file__).resolve().parents[1]
APP = str(ROOT / "app.py")
EXPLORE = "app_pages/explore.py"
DARKNET_DATA = ROOT / ".cache" / "darknet" / "usr" / "share" / "darknet" / "data"
TIMEOUT = 180

pytestmark = pytest.mark.slow


@pytest.fixture
def app() -> AppTest:
    at = AppTest.from_file(APP, default_timeout=TIMEOUT)
    at.session_state["page_drawn"] = True  # no JavaScript here: see yolocam_app.first_view
    at.run()
    assert not at.exception, at.exception
    return at


def darknet_photo(name: str) -> bytes:
    """A photo from Debian's `darknet` package (scripts/test-deps.sh unpacks it)."""
    path = DARKNET_DATA / name
    if not path.is_file():
        pytest.fail(f"{path} missing; run scripts/test-deps.sh", pytrace=False)
    return path.read_bytes()


def png(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="PNG")
    return buffer.getvalue()


def upload_photo(at: AppTest, name: str, data: bytes) -> None:
    if at.sidebar.radio(key="source").value != "Upload":
        at.sidebar.radio(key="source").set_value("Upload").run()
    photo_uploader(at).upload(name, data, "image/png").run()
    assert not at.exception, at.exception


# -- (a), (b), (c): what is shown is what is used -----------------------------------------


def test_a_photo_without_detections_then_one_with(app):
    kind = widget(app, "radio", "target_kind")
    assert kind.value == "One detection"
    upload_photo(app, "one.png", png(np.full((1, 1, 3), 200, np.uint8)))
    kind = widget(app, "radio", "target_kind")
    # Nothing detected: the kinds offered change, and the widget that shows them too.
    assert kind.options == ["A class", "Whole head output (article)"]
    assert kind.value == "A class" and heading(app).startswith("gradcam · class ")
    first_key = kind.key
    upload_photo(app, "person.jpg", darknet_photo("person.jpg"))
    kind = widget(app, "radio", "target_kind")
    assert kind.key != first_key  # new options, new widget: the browser shows its value
    assert kind.options == ["One detection", "A class", "Whole head output (article)"]
    # The user never chose "A class": with detections back, one detection is explained,
    # and the radio says so.
    assert kind.value == "One detection"
    assert heading(app) == "odam · person 0.99"
    # An explicit choice is kept, and shown, through the same change.
    kind.set_value("A class").run()
    upload_photo(app, "one.png", png(np.full((1, 1, 3), 200, np.uint8)))
    upload_photo(app, "person.jpg", darknet_photo("person.jpg"))
    kind = widget(app, "radio", "target_kind")
    assert kind.value == "A class" and heading(app).startswith("gradcam · class person")


def test_b_one_scale_and_the_interactive_selector(app):
    selector = widget(app, "selectbox", "interactive_scale:")
    assert selector.options == ["13×13 · stride 32 ★ own scale", "26×26 · stride 16 · weak"]
    assert selector.value == 0  # opens on the detection's own scale
    widget(app, "radio", "scales_mode").set_value("One").run()
    widget(app, "selectbox", "scales_one").set_value(1).run()
    assert scale_labels(app) == ["26×26 · stride 16"]
    selector = widget(app, "selectbox", "interactive_scale:")
    assert selector.options == ["26×26 · stride 16 · weak"] and selector.value == 1
    # Back to all scales: it opens on the own scale again (nothing else was chosen).
    widget(app, "radio", "scales_mode").set_value("All side by side").run()
    selector = widget(app, "selectbox", "interactive_scale:")
    assert selector.value == 0 and len(selector.options) == 2
    # A scale chosen in the view is kept, and shown.
    selector.set_value(1).run()
    assert widget(app, "selectbox", "interactive_scale:").value == 1


def test_c_the_uploader_holds_the_photo_that_is_explained(app, sample_rgb):
    photo = png(sample_rgb["zidane.jpg"])
    upload_photo(app, "street.png", photo)
    assert any(c.startswith("street.png ·") for img in app.get("image") for c in img.captions)
    for page in ("app_pages/compare_methods.py", "app_pages/faithfulness.py", EXPLORE):
        app.switch_page(page).run()
        assert not app.exception and not app.error
        held = photo_uploader(app).value  # still in the uploader
        assert held.name == "street.png" and held.getvalue() == photo
        captions = [c for img in app.get("image") for c in img.captions]
        assert not any(c.startswith("bus.jpg") for c in captions)
    assert any(c.startswith("street.png ·") for img in app.get("image") for c in img.captions)
    # Sample -> Upload: a new uploader (a browser could otherwise show the old file in
    # it without sending it), empty, and so is the page (no old photo).
    before = photo_uploader(app).key
    app.sidebar.radio(key="source").set_value("Sample photo").run()
    app.sidebar.radio(key="source").set_value("Upload").run()
    assert not app.exception
    assert photo_uploader(app).key != before and not photo_uploader(app).value
    assert app.info and "Upload a photo" in app.info[0].value
    assert overlay_captions(app) == []


def test_controls_left_out_of_a_run_come_back_as_new_widgets(app, sample_rgb):
    """Upload with no photo yet stops the page before its controls; when a photo comes,
    each control is a widget the browser has never seen (a re-mounted one under its old
    key showed its first option, "Seed", under an ODAM heading in a real browser) and
    shows what is explained."""
    before = {w.key.split("@")[0]: w.key for w in app.get("selectbox") + app.get("radio")}
    app.sidebar.radio(key="source").set_value("Upload").run()
    assert "method" in before and "target_kind" in before
    assert not [w for w in app.get("selectbox") if w.key.startswith("method@")]
    photo_uploader(app).upload("bus.png", png(sample_rgb["bus.jpg"]), "image/png").run()
    assert not app.exception and heading(app) == "odam · person 0.99"
    after = {w.key.split("@")[0]: w for w in app.get("selectbox") + app.get("radio")}
    for name in ("method", "target_kind", "target_attribute", "scales_mode"):
        assert after[name].key != before[name], name
    assert after["method"].value == "odam" and after["target_kind"].value == "One detection"
    # A fragment rerun (a change of target) keeps the widgets' keys.
    widget(app, "selectbox", "target_detection:").set_value(3).run()
    assert heading(app) == "odam · bus 0.66"
    again = {w.key.split("@")[0]: w.key for w in app.get("selectbox") + app.get("radio")}
    assert again["method"] == after["method"].key


def test_code_can_change_a_choice_and_the_widget_follows(app):
    """What a click on the photo or the table does (views.choose_detection)."""
    detection = widget(app, "selectbox", "target_detection:")
    logical = detection.key.split("@")[0]
    app.session_state[logical] = 3
    app.run()
    detection = widget(app, "selectbox", "target_detection:")
    assert detection.value == 3 and heading(app) == "odam · bus 0.66"


# -- bounded work ----------------------------------------------------------------------


@pytest.fixture(scope="module")
def flooding_model(tmp_path_factory) -> bytes:
    """An untrained three-head VOC model at 416 px: ~100,000 candidate boxes at 0.25."""
    path = tmp_path_factory.mktemp("flood") / "untrained.keras"
    small_model(num_classes=20, size=416, seed=3).save(path)
    return path.read_bytes()


def test_a_flooding_model_is_capped_with_a_readable_message(app, flooding_model):
    app.session_state["byo_open"] = True  # open "Your model"
    app.run()
    app.sidebar.file_uploader(key="byo_keras").upload(
        "untrained.keras", flooding_model, "application/octet-stream"
    ).run()
    app.sidebar.button(key="byo_load").click().run()
    assert not app.exception and not app.error, [e.value for e in app.error]
    notes = [w.value for w in app.warning]
    assert any(
        "candidate boxes at score ≥ 0.25" in n and "showing the 300 best — raise the score" in n
        for n in notes
    ), notes
    assert len(app.dataframe[0].value) == 300
    assert len(widget(app, "selectbox", "target_detection:").options) == 300
    assert len(overlay_captions(app)) == 3
    app.sidebar.number_input(key="max_detections").set_value(40).run()
    assert len(app.dataframe[0].value) == 40
    assert any("showing the 40 best" in w.value for w in app.warning)


# -- honest scales ---------------------------------------------------------------------


def test_own_and_weak_scales_are_marked_and_auto_normalisation_is_the_default(app):
    assert widget(app.sidebar, "radio", "norm").value == "auto"
    own, weak = overlay_captions(app)
    # bus.jpg's person 0.99 is predicted at 13×13; its 26×26 score is under 1% of that.
    assert own.startswith("13×13 · stride 32 · score 0.993") and own.endswith("★ own scale")
    assert "of the total" in own
    assert weak.startswith("26×26 · stride 16 · score 0.00204")
    assert "weak: 0.21% of the top scale's score" in weak
    note = next(c.value for c in app.main.caption if c.value.startswith("Score:"))
    assert "objectness × class probability" in note and "shared across scales" in note
    # The article's view: per-map normalisation, no shares (its score has no sign).
    widget(app, "radio", "target_kind").set_value("Whole head output (article)").run()
    note = next(c.value for c in app.main.caption if c.value.startswith("Score:"))
    assert "per map" in note and "no sign" in note
    assert not any("weak" in c or "★" in c for c in overlay_captions(app))


def test_compare_and_faithfulness_show_the_photo_and_the_own_scale(app):
    app.switch_page("app_pages/compare_methods.py").run()
    assert not app.exception
    assert any("the target's box highlighted" in c for i in app.get("image") for c in i.captions)
    assert any("★ own scale" in m.value for m in app.markdown)
    panels = [c for i in app.get("image") for c in i.captions if c.startswith("score ")]
    assert len(panels) == 7 * 2 and sum("weak:" in c for c in panels) >= 1
    app.switch_page("app_pages/faithfulness.py")
    app.session_state["faith_steps"] = 8
    app.run()
    assert not app.exception
    assert any("measured detection" in c for i in app.get("image") for c in i.captions)


@pytest.mark.parametrize(
    ("size", "message"),
    [
        ((1, 1), "only 1×1 px"),
        ((200, 4000), "very elongated (4000×200 px)"),
        ((100, 2000), "very elongated (2000×100 px)"),  # not "only …: enlarged"
    ],
)
def test_photos_too_small_or_too_elongated_are_flagged(app, size, message):
    h, w = size
    image = np.random.default_rng(0).integers(0, 256, (h, w, 3), dtype=np.uint8)
    upload_photo(app, "odd.png", png(image))
    assert any(message in w.value for w in app.warning), [w.value for w in app.warning]


def test_a_wide_photo_is_stacked_not_sliced(app):
    """Side by side, a 4000×200 photo and its overlays were 190×10 px slivers: stacked,
    each is the page's width; an ordinary photo keeps the row (the colour bar's column,
    0.35 of a photo's: Streamlit normalises the weights)."""
    legend = pytest.approx(0.35 / 3.35)
    wide = np.random.default_rng(0).integers(0, 256, (200, 4000, 3), dtype=np.uint8)
    upload_photo(app, "wide.png", png(wide))
    assert len(overlay_captions(app)) == 2
    assert legend not in [c.weight for c in app.columns]
    usual = np.random.default_rng(1).integers(0, 256, (300, 400, 3), dtype=np.uint8)
    upload_photo(app, "usual.png", png(usual))
    assert len(overlay_captions(app)) == 2
    assert legend in [c.weight for c in app.columns]


def test_a_tall_photo_is_drawn_at_a_bounded_height():
    from yolocam_app.views import display_width

    assert display_width(np.zeros((4000, 200, 3), np.uint8), max_height=480) == 40
    assert display_width(np.zeros((900, 400, 3), np.uint8), max_height=480) == 213
    assert display_width(np.zeros((300, 400, 3), np.uint8)) == "stretch"


# -- downloads -------------------------------------------------------------------------


def test_maps_zip_carries_metadata_and_the_report_is_self_contained(app, detector, sample_rgb):
    from yolocam_app import downloads
    from yolocam_core.explainer import Explainer
    from yolocam_core.targets import DetectionTarget

    assert [b.label for b in app.get("download_button")] == [
        "Report (HTML, every scale)",
        "Sheet of the scales shown (PNG)",
        "Raw maps (.npy and metadata.json in a zip)",
        "Detections (JSON)",
    ]
    image = sample_rgb["bus.jpg"]
    explainer = Explainer(detector)
    fwd = explainer.forward(image)
    detections = explainer.detect(fwd)
    explanation = explainer.explain(fwd, DetectionTarget(detections[0]))
    data = downloads.maps_zip(explanation, model="yolov4-tiny", image_name="bus.jpg")
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        names = set(archive.namelist())
        meta = json.loads(archive.read("metadata.json"))
        for item in meta["scales"]:
            grid = np.load(io.BytesIO(archive.read(item["file"])))
            assert list(grid.shape) == item["grid"]
            np.testing.assert_array_equal(grid, explanation.by_scale(item["scale"]).grid_map)
    assert names == {"metadata.json", "scale0_13x13.npy", "scale1_26x26.npy"}
    # explain() with no method named: ODAM for a detection
    assert meta["model"] == "yolov4-tiny" and meta["method"]["name"] == "odam"
    assert meta["target"]["label"] == "person 0.99" and meta["target"]["own_scale"] == 0
    assert meta["normalisation"]["mode"] == "shared"
    assert [s["weak"] for s in meta["scales"]] == [False, True]
    assert meta["scales"][0]["score"] == pytest.approx(explanation.maps[0].score)
    assert meta["yolocam_version"] and meta["image"]["name"] == "bus.jpg"
    page = downloads.report_html(
        image, explanation, detections=detections, chosen=0, model="yolov4-tiny"
    ).decode("utf-8")

    class Images(HTMLParser):
        def __init__(self):
            super().__init__()
            self.sources: list[str] = []

        def handle_starttag(self, tag, attrs):
            if tag == "img":
                self.sources.append(dict(attrs)["src"])

    parser = Images()
    parser.feed(page)
    # The photo, one overlay per scale and the colour bar, all inline.
    assert len(parser.sources) == 1 + 2 + 1
    assert all(s.startswith("data:image/") for s in parser.sources)
    assert 'id="yolocam-metadata"' in page and "weak: 0.21% of the top scale" in page


def test_grid_pictures_scale_the_box_per_axis():
    """The grid's overlays are drawn at the grid copy's size: heatmaps shrunk to it and
    the box scaled per axis. A 25×720 view shrinks to 19×560 (rounded width), so one
    scale for both axes (19/25 = 0.76 against 560/720 = 0.78) would put a box that
    spans the photo 13 px short of its bottom."""
    from types import SimpleNamespace

    from yolocam_app.views import GRID_MAX_SIDE, at_grid_size
    from yolocam_core import render
    from yolocam_core.explainer import Explanation, ScaleMap

    view = np.zeros((720, 25, 3), np.uint8)
    ctx = SimpleNamespace(view=view, grid=render.shrink(view, GRID_MAX_SIDE))
    heatmap = np.linspace(0, 1, 720 * 25, dtype=np.float32).reshape(720, 25)
    m = ScaleMap(0, "13×13 · stride 32", "l", np.zeros((13, 13), np.float32), heatmap, 1.0)
    explanation = Explanation("odam", "x", "shared", (0.0, 0.0, 25.0, 720.0), (720, 25), (m,))
    small = at_grid_size(ctx, explanation)
    assert ctx.grid.shape[:2] == (560, 19) and small.image_size == (560, 19)
    assert small.maps[0].heatmap.shape == (560, 19)
    assert small.box_xyxy == pytest.approx((0.0, 0.0, 19.0, 560.0))
    panel = render.explanation_overlays(ctx.grid, small)[0]
    assert panel.shape == (560, 19, 3)
    same = SimpleNamespace(view=ctx.grid, grid=ctx.grid)  # already small: unchanged
    assert at_grid_size(same, small) is small


def test_page_images_are_compact_jpegs(sample_rgb):
    """The page's images are sent as JPEG at quality 88 (the picture unchanged to the
    eye, a fraction of the bytes Streamlit's own encoding at quality 100 sends), at
    most GRID_MAX_SIDE pixels a side."""
    import base64

    import cv2
    from PIL import Image

    from yolocam_app.views import GRID_MAX_SIDE, page_image

    prefix = "data:image/jpeg;base64,"

    def decoded(url: str) -> tuple[np.ndarray, bytes]:
        assert url.startswith(prefix)
        data = base64.b64decode(url[len(prefix) :])
        return cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)[:, :, ::-1], data

    image = cv2.resize(sample_rgb["bus.jpg"], (420, 560), interpolation=cv2.INTER_AREA)
    back, data = decoded(page_image(image))
    assert back.shape == image.shape
    assert np.abs(back.astype(int) - image).mean() < 5  # RGB order kept: a swap gives ~18
    full = io.BytesIO()
    Image.fromarray(image).save(full, format="JPEG", quality=100)
    assert len(data) < 0.5 * len(full.getvalue())
    # Larger pictures are shrunk to GRID_MAX_SIDE a side, the aspect ratio kept.
    big = cv2.resize(sample_rgb["bus.jpg"], (540, 720), interpolation=cv2.INTER_AREA)
    back, _ = decoded(page_image(big))
    assert back.shape == (GRID_MAX_SIDE, 420, 3)
    small = cv2.resize(big, (420, GRID_MAX_SIDE), interpolation=cv2.INTER_AREA)
    assert np.abs(back.astype(int) - small).mean() < 5
    back, _ = decoded(page_image(big, max_side=720))
    assert back.shape == big.shape


def test_page_images_travel_inline(app):
    """The photo and the overlays are JPEG ``data:`` URLs in the page update (drawn with
    it, not fetched from the server afterwards)."""
    prefix = "data:image/jpeg;base64,"
    shown = [img for img in app.get("image") if any("stride" in c for c in img.captions)]
    photo = [img for img in app.get("image") if any("detection(s)" in c for c in img.captions)]
    assert len(shown) == 2 and len(photo) == 1
    for img in shown + photo:
        assert all(i.url.startswith(prefix) for i in img.proto.imgs)
