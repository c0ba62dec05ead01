"""Drawing and reports, on hand-made explanations (no model): labels that never overlap,
the chosen box highlighted, weak-scale and own-scale markers, the colour bar, the sheet,
the metadata record and the self-contained HTML report."""

from __future__ import annotations

import base64
import dataclasses
import io
import json
from html.parser import HTMLParser

import numpy as np
import pytest
from PIL import Image

from yolocam_core import render
from yolocam_core.detector import Detection
from yolocam_core.explainer import Explanation, ScaleMap
from yolocam_core.report import explanation_metadata, html_report


def scale_map(scale: int, grid: int, score: float, relative, share, size=(120, 160)) -> ScaleMap:
    rng = np.random.default_rng(scale)
    return ScaleMap(
        scale=scale,
        label=f"{grid}×{grid} · stride {416 // grid}",
        layer=f"layer_{scale}",
        grid_map=rng.random((grid, grid)).astype(np.float32),
        heatmap=rng.random(size).astype(np.float32),
        score=score,
        relative=relative,
        share=share,
    )


def explanation(norm: str = "shared") -> Explanation:
    """A dog found at 13×13 (score 0.87) whose 26×26 score is 0.00137 (weak)."""
    maps = (
        scale_map(0, 13, 0.87, 1.0, 0.87 / 0.87137),
        scale_map(1, 26, 0.00137, 0.00137 / 0.87, 0.00137 / 0.87137),
    )
    return Explanation(
        method="gradcam",
        target="dog 0.87",
        norm=norm,
        box_xyxy=(20.0, 30.0, 80.0, 110.0),
        image_size=(120, 160),
        maps=maps,
        target_kind="detection",
        score_note="score: the detection's objectness × class probability",
        scale_scores=(0.87, 0.00137),
        own_scale=0,
    )


def detection(k: int, box, class_id=16, score=0.9) -> Detection:
    return Detection(box, class_id, f"class{class_id}", score - k * 0.01, 0.95, 0, (k, k), 0)


@pytest.fixture
def image() -> np.ndarray:
    return np.random.default_rng(0).integers(0, 256, (120, 160, 3), dtype=np.uint8)


def test_percent_and_captions():
    assert render.percent(0.987) == "99%"
    assert render.percent(0.00137) == "0.14%"
    assert render.percent(1.5e-05) == "0.0015%"
    own, weak = explanation().maps
    assert render.scale_caption(own, 0) == (
        "13×13 · stride 32 · score 0.87 · 100% of the total · ★ own scale"
    )
    assert render.scale_caption(weak, 0) == (
        "26×26 · stride 16 · score 0.00137 · weak: 0.16% of the top scale's score"
    )
    assert "colours do not compare" in render.norm_caption("per-map")


def test_text_on_a_very_wide_image_stays_small_beside_its_height():
    """A 1600×120 overlay (a 4000×300 photo shrunk): the weak band and a box label take a
    fraction of its height (sized by the longer side, they filled it)."""
    panel = np.full((120, 1600, 3), 40, np.uint8)
    marked = render.mark_panel(panel, weak="weak: 0.18% of the top scale's score")
    band_rows = int((marked[:, 800] != panel[:, 800]).any(axis=1).sum())
    assert 0 < band_rows <= 120 // 3
    drawn = render.draw_boxes(panel, [(700.0, 60.0, 800.0, 110.0)], ["#0 horse 0.76"])
    label_rows = np.flatnonzero((drawn[:60, 600:900] != 40).any(axis=(1, 2)))
    assert 0 < label_rows.size <= 120 // 3


def test_labels_never_overlap_and_the_chosen_one_is_always_placed():
    # 40 boxes piled on one spot: few labels fit, none overlapping; the chosen one shows.
    rng = np.random.default_rng(1)
    boxes = [
        tuple(float(v) for v in (x, y, x + 60, y + 40)) for x, y in rng.uniform(0, 20, (40, 2))
    ]
    sizes = {k: (70.0, 14.0) for k in range(40)}
    order = [17] + [k for k in range(40) if k != 17]
    spots = render.layout_labels(boxes, sizes, (200, 300), order, always=17)
    assert 17 in spots and 1 < len(spots) < 40
    rects = list(spots.values())
    for i, a in enumerate(rects):
        assert 0 <= a[0] and a[2] <= 300 and 0 <= a[1] and a[3] <= 200
        for b in rects[i + 1 :]:
            assert a[2] <= b[0] or b[2] <= a[0] or a[3] <= b[1] or b[3] <= a[1], (a, b)
    # Two boxes side by side (the cow and the horse): both labels show, apart.
    two = render.layout_labels(
        [(10, 40, 100, 120), (30, 45, 140, 125)], {0: (80, 14), 1: (80, 14)}, (200, 300), [0, 1]
    )
    assert set(two) == {0, 1}


def test_the_chosen_detection_is_highlighted_and_the_others_dimmed(image):
    flat = np.full_like(image, 40)
    dets = [detection(0, (10.0, 10.0, 70.0, 60.0)), detection(1, (80.0, 50.0, 150.0, 110.0))]
    plain = render.draw_detections(flat, dets)
    chosen = render.draw_detections(flat, dets, highlight=1)
    colour = np.array(render.PALETTE[16 % len(render.PALETTE)])
    # The other box's outline: full colour without a choice, dimmed with one.
    left_edge = (slice(20, 50), 10)
    assert np.abs(plain[left_edge].astype(int) - colour).max() <= 1
    assert np.abs(chosen[left_edge].astype(int) - colour).sum(axis=-1).min() > 60
    # The chosen box: a thick outline in its colour with a white line inside it.
    assert np.abs(chosen[80, 80].astype(int) - colour).max() <= 1
    assert (chosen[80, 85] == 255).all() and (plain[80, 85] == 40).all()


def test_weak_and_own_scale_markers(image):
    e = explanation("per-map")
    marked = render.explanation_overlays(image, e)
    bare = render.explanation_overlays(image, e, marks=False)
    amber = np.array(render.WEAK_COLOUR)
    green = np.array(render.OWN_COLOUR)
    # Own scale (13×13): a green badge bottom left, no amber band.
    assert (marked[0][-3, 2] == green).all() and not (marked[0][1, 40] == amber).all()
    # Weak scale (26×26): an amber band across the top, no badge.
    assert (marked[1][1, 40] == amber).all() and not (marked[1][-3, 2] == green).all()
    assert not np.array_equal(marked[1], bare[1])
    # No marks: the overlay with the target's box only.
    expected = render.draw_boxes(render.overlay(image, e.maps[1].heatmap), [e.box_xyxy])
    np.testing.assert_array_equal(bare[1], expected)


def test_colorbar_runs_from_high_at_the_top_to_zero_at_the_bottom():
    bar = render.colorbar(200, "jet")
    column = bar[:, 8].astype(int)
    top = column[10]
    bottom = column[175]
    assert top[0] > 100 and top[2] < 50  # jet's top is dark red
    assert bottom[2] > 100 and bottom[0] < 50  # jet's bottom is dark blue


def test_sheet_has_a_title_rows_and_a_colour_bar(image):
    e = explanation()
    sheet = render.sheet(image, e, height=120, model="yolov4-tiny")
    panels = render.explanation_overlays(image, e)
    width = sum(round(p.shape[1] * 120 / p.shape[0]) for p in panels)
    assert sheet.shape[1] > width + 8 + 60  # panels, gaps and the colour bar
    # Caption, normalisation, two title rows per panel, the panels, score note, footer.
    assert sheet.shape[0] > 120 + 4 * 20


class _Collect(HTMLParser):
    def __init__(self):
        super().__init__()
        self.images: list[dict] = []
        self.figures: list[dict] = []
        self.scripts: list[tuple[dict, str]] = []
        self._script: dict | None = None

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "img":
            self.images.append(attrs)
        elif tag == "figure":
            self.figures.append(attrs)
        elif tag == "script":
            self._script = attrs

    def handle_data(self, data):
        if self._script is not None:
            self.scripts.append((self._script, data))

    def handle_endtag(self, tag):
        if tag == "script":
            self._script = None


def decode(uri: str) -> Image.Image:
    head, data = uri.split(",", 1)
    assert head in ("data:image/jpeg;base64", "data:image/png;base64")
    return Image.open(io.BytesIO(base64.b64decode(data)))


def test_shared_normalisation_of_scores_without_a_common_unit_says_so():
    shared = explanation("shared")
    assert "forced" not in render.norm_caption("shared", shared)
    for unitless in (
        dataclasses.replace(shared, target_kind="seed"),  # the whole head output
        dataclasses.replace(shared, attribute="w"),  # a box coordinate
    ):
        caption = render.norm_caption("shared", unitless)
        assert caption.startswith(render.norm_caption("shared"))
        assert "forced: this target's scores have no common unit across scales" in caption
        assert "forced" not in render.norm_caption("per-map", unitless)
    # scores that all came out 0 (no relative strength) still share a unit
    zeros = dataclasses.replace(
        shared, maps=tuple(dataclasses.replace(m, relative=None) for m in shared.maps)
    )
    assert "forced" not in render.norm_caption("shared", zeros)


def test_html_report_is_self_contained_with_images_and_metadata(image):
    e = explanation()
    dets = [detection(0, (20.0, 30.0, 80.0, 110.0)), detection(1, (90.0, 20.0, 150.0, 100.0), 7)]
    page = html_report(
        image,
        e,
        detections=dets,
        chosen=0,
        model="yolov4-tiny",
        image_name="dog </script>.jpg",
        score_threshold=0.25,
        iou_threshold=0.45,
        detections_note="this model produced many",
    )
    parser = _Collect()
    parser.feed(page)
    # Every image inline and decodable: the photo, one overlay per scale, the colour bar.
    assert len(parser.images) == 1 + len(e.maps) + 1
    for img in parser.images:
        assert decode(img["src"]).size[0] > 10
    assert "<link" not in page and 'src="http' not in page  # nothing fetched from elsewhere
    scales = [f for f in parser.figures if "scale" in f.get("class", "")]
    assert [f["data-scale"] for f in scales] == ["0", "1"]
    assert "own" in scales[0]["class"] and "weak" in scales[1]["class"]
    assert "weak: 0.16% of the top scale's score" in page and "★ own scale" in page
    # The detections table names each one's head as the maps do (not its index).
    assert "<td>class16</td><td>0.900</td><td>13×13</td>" in page
    ((attrs, blob),) = parser.scripts
    assert attrs == {"type": "application/json", "id": "yolocam-metadata"}
    meta = json.loads(blob)
    assert meta["model"] == "yolov4-tiny" and meta["image"]["name"] == "dog </script>.jpg"
    assert meta["method"]["name"] == "gradcam" and meta["method"]["title"] == "Grad-CAM"
    assert meta["normalisation"]["mode"] == "shared"
    assert meta["target"] == {
        "kind": "detection",
        "label": "dog 0.87",
        "box_xyxy": [20.0, 30.0, 80.0, 110.0],
        "own_scale": 0,
        "score_note": e.score_note,
    }
    assert [s["weak"] for s in meta["scales"]] == [False, True]
    assert meta["scales"][1]["relative"] == pytest.approx(0.00137 / 0.87)
    assert meta["thresholds"] == {"score": 0.25, "iou": 0.45}
    assert len(meta["detections"]) == 2 and meta["yolocam_version"]
    assert meta["detections_note"] == "this model produced many"


def test_metadata_names_each_scales_file():
    meta = explanation_metadata(
        explanation(), model="m", image_name="x.png", files={0: "a.npy", 1: "b.npy"}
    )
    assert [s["file"] for s in meta["scales"]] == ["a.npy", "b.npy"]
    assert [s["grid"] for s in meta["scales"]] == [[13, 13], [26, 26]]
    assert meta["scale_scores"] == [0.87, 0.00137] and meta["weak_below"] == 0.01
    json.dumps(meta)  # JSON-ready


def test_shrink_keeps_the_aspect_ratio_and_returns_small_images_as_they_are():
    small = np.zeros((40, 30, 3), np.uint8)
    assert render.shrink(small, 40) is small
    tall = np.full((800, 600, 3), 200, np.uint8)
    out = render.shrink(tall, 560)
    assert out.shape == (560, 420, 3) and out.dtype == np.uint8 and (out == 200).all()
    assert render.shrink(np.zeros((1000, 10)), 50).shape == (50, 1)  # never 0 pixels


def test_long_text_wraps_instead_of_being_cut():
    one = render.text_block("short", 300, 20)
    long = render.text_block("a word that goes on " * 12, 300, 20)
    assert one.shape == (20, 300, 3)
    assert long.shape[1] == 300 and long.shape[0] >= 20 * 4  # wrapped on several lines
    assert long[-20:].min() < 128  # the last line has dark text: nothing dropped


def test_colorbar_of_any_height_has_room_for_its_labels():
    for height in (1, 5, 30):
        bar = render.colorbar(height, "jet", title="shared")
        assert bar.shape[0] >= 64 and bar.dtype == np.uint8


def test_a_sheet_of_any_panel_height_has_room_for_its_colour_bar(image):
    for height in (10, 50):
        assert render.sheet(image, explanation(), height=height).shape[0] > 96


def test_scores_line_names_every_head_even_those_not_shown():
    e = explanation()
    assert render.scores_line(e) == ("score at every scale: 13×13 0.87 ★ · 26×26 0.00137 (weak)")
    only_weak = Explanation(**{**vars(e), "maps": e.maps[1:]})
    assert render.scores_line(only_weak) == (
        "score at every scale: scale 0 0.87 ★ · 26×26 0.00137 (weak)"
    )  # an explanation made without the heads' labels
    labelled = Explanation(
        **{**vars(only_weak), "scale_labels": ("13×13 · stride 32", "26×26 · stride 16")}
    )
    assert render.scores_line(labelled) == (
        "score at every scale: 13×13 0.87 ★ · 26×26 0.00137 (weak)"
    )


def test_target_independent_methods_say_so_on_captions_and_sheets(image):
    e = Explanation(**{**vars(explanation()), "method": "eigencam"})
    assert render.map_caption(e, e.maps[0]).endswith(" · ignores the target")
    assert not render.map_caption(explanation(), e.maps[0]).endswith("ignores the target")
    # the sheet's caption carries it too (drawn text: checked through the caption source)
    assert render.sheet(image, e, height=120).ndim == 3
