"""Widgets and views shared by the pages. Each ``*_ui`` draws and returns a value."""

from __future__ import annotations

import base64
import dataclasses
import functools

import cv2
import numpy as np
import plotly.graph_objects as go
import streamlit as st

from yolocam_app import downloads, resources
from yolocam_app.sidebar import Settings
from yolocam_app.state import choice, prefer, remembered
from yolocam_core import render
from yolocam_core.errors import YolocamError
from yolocam_core.explainer import Explanation
from yolocam_core.targets import TargetSpec

PLOTLY_COLORSCALES = {"jet": "Jet", "turbo": "Turbo", "viridis": "Viridis"}
#: Images drawn in the page (overlays, the photo) have at most this many pixels a side.
VIEW_MAX_SIDE = 720


class Context:
    """The current image, its detections and the shared explainer, for one run."""

    def __init__(self, settings: Settings):
        self.settings = settings
        self.explainer = resources.get_explainer(settings.model_name)
        self.detector = self.explainer.detector
        self.key = resources.image_key(settings.image_bytes or b"")
        self.image, self.original_size = resources.decode_image(self.key, settings.image_bytes)
        self.detections = resources.detect(
            settings.model_name,
            self.key,
            self.image,
            settings.score,
            settings.iou,
            settings.max_detections,
        )
        self.view, self.view_scale = _view_copy(self.key, self.image)

    @property
    def detection_key(self) -> str:
        """Where the chosen detection of this image and model is remembered."""
        return f"target_detection:{self.settings.model_name}:{self.key[:12]}"

    def layers(self, scales: tuple[int, ...]) -> tuple[tuple[int, str], ...]:
        """The expert layers chosen on the Model page for this model, for ``scales``."""
        return chosen_layers(self.settings.model_name, scales)

    def explain(
        self,
        target: TargetSpec,
        method: str,
        scales: tuple[int, ...],
        batch: bool = True,
        progress=None,
        full_size: bool = False,
    ) -> Explanation:
        """The explanation, heatmaps at the page's view size (or the image's size)."""
        s = self.settings
        compact = resources.explain_compact(
            s.model_name,
            self.key,
            self.image,
            s.score,
            s.iou,
            s.max_detections,
            target,
            method,
            tuple(scales),
            s.norm,
            self.layers(tuple(scales)),
            batch,
            progress,
        )
        if not full_size and self.view_scale < 1:
            box = compact.box_xyxy
            compact = dataclasses.replace(
                compact,
                image_size=self.view.shape[:2],
                box_xyxy=None if box is None else tuple(v * self.view_scale for v in box),
            )
        return self.explainer.with_heatmaps(compact)

    def label(self, k: int) -> str:
        """E.g. ``"#0 person 0.99 · 13×13"``."""
        return f"#{k} {self.detector.describe(self.detections[k])}"


@st.cache_data(max_entries=16, show_spinner=False)
def _view_copy(key: str, _image: np.ndarray) -> tuple[np.ndarray, float]:
    """The image at most :data:`VIEW_MAX_SIDE` a side, and its scale."""
    scale = min(1.0, VIEW_MAX_SIDE / max(_image.shape[:2]))
    if scale >= 1.0:
        return _image, 1.0
    h, w = _image.shape[:2]
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    small = cv2.resize(_image, size, interpolation=cv2.INTER_AREA)
    return small, small.shape[1] / w


@st.cache_data(max_entries=16, show_spinner=False)
def photo_uri(key: str, _image: np.ndarray) -> str:
    """The photo as a JPEG data URI (for plotly figures; a pixel array would be
    megabytes of JSON)."""
    data = base64.b64encode(downloads.jpeg_bytes(_image)).decode("ascii")
    return f"data:image/jpeg;base64,{data}"


def chosen_layers(model_name: str, scales: tuple[int, ...]) -> tuple[tuple[int, str], ...]:
    """(scale, layer) pairs chosen on the Model page for ``model_name``, only for
    ``scales`` (choices are kept per model: layer names differ between models)."""
    chosen = st.session_state.get("layers", {}).get(model_name, {})
    return tuple(sorted((s, layer) for s, layer in chosen.items() if s in scales))


def context_or_stop(settings: Settings) -> Context:
    """The page's context; on bad input an ``st.error`` says why and the page stops."""
    if settings.image_bytes is None:
        st.info("Upload a photo in the sidebar (JPEG, PNG, WebP or BMP), or pick a sample.")
        st.stop()
    try:
        return Context(settings)
    except YolocamError as exc:
        st.error(f"Cannot use this file: {exc}. Try another photo, or pick a sample.")
        st.stop()
    raise AssertionError("unreachable")


def notes_ui(ctx: Context) -> None:
    """Warnings about this photo and model: detections left out, a photo too small or
    too elongated for the network."""
    note = ctx.detections.note()
    if note:
        st.warning(note[0].upper() + note[1:] + ".", icon=":material/filter_alt:")
    warning = image_warning(ctx.original_size, ctx.detector)
    if warning:
        st.warning(warning, icon=":material/aspect_ratio:")


def image_warning(size: tuple[int, int], detector) -> str | None:
    """A sentence when a photo of ``size`` (height, width) is too small or too
    elongated for the network to see it well, else None."""
    height, width = size
    net_h, net_w = detector.input_size
    box = detector.letterbox_for(size)
    seen_w, seen_h = width * box.scale_x, height * box.scale_y
    upscale = max(box.scale_x, box.scale_y)
    if upscale > 4:
        return (
            f"This photo is only {width}×{height} px: the network sees it enlarged "
            f"{upscale:.0f}× to {net_w}×{net_h}, so detections and maps say little. "
            f"Use a photo at least {min(net_w, net_h) // 2} px on its shorter side."
        )
    if detector.letterbox and min(seen_w, seen_h) < min(net_w, net_h) / 4:
        return (
            f"This photo is very elongated ({width}×{height} px): the network sees it as a "
            f"{seen_w:.0f}×{seen_h:.0f} px band of its {net_w}×{net_h} input, where objects "
            "are tiny. Crop it closer to 4:3."
        )
    stretch = max(box.scale_x, box.scale_y) / max(1e-9, min(box.scale_x, box.scale_y))
    if not detector.letterbox and stretch > 4:
        return (
            f"This photo is very elongated ({width}×{height} px): the network stretches it "
            f"{stretch:.0f}× more one way than the other to {net_w}×{net_h}, so objects are "
            "distorted. Crop it closer to 4:3."
        )
    return None


TARGET_KINDS = ("One detection", "A class", "Whole head output (article)")


def target_ui(ctx: Context, part: str = "both", kind: str | None = None) -> TargetSpec | str:
    """Choose one detection, one class, or the article's whole-output mode.

    The choice is shared by every page (the detection per image and model).
    ``part="kind"`` draws only the kind (and returns it), ``part="choice"`` only the
    detection or class for a given ``kind``; the default draws both.
    """
    if part in ("both", "kind"):
        kinds = list(TARGET_KINDS if ctx.detections else TARGET_KINDS[1:])
        kind = choice(st.radio, "Explain", kinds, key="target_kind", default=TARGET_KINDS[0])
        if part == "kind":
            return kind
    if kind == "One detection":
        k = choice(
            st.selectbox,
            "Detection",
            range(len(ctx.detections)),
            key=ctx.detection_key,
            format_func=ctx.label,
            help="Or click a box's dot on the photo, or a row of the table.",
        )
        return TargetSpec("detection", int(k))
    if kind == "A class":
        names = ctx.detector.class_names
        detected = list(dict.fromkeys(d.class_id for d in ctx.detections))
        order = detected + [c for c in range(len(names)) if c not in detected]
        c = choice(
            st.selectbox,
            "Class (detected ones first)",
            order,
            key="target_class",
            format_func=lambda i: f"{names[i]}{' (detected)' if i in detected else ''}",
        )
        return TargetSpec("class", int(c))
    st.caption("The article's choice: the sum of the whole raw output of each head.")
    return TargetSpec("seed")


def choose_detection(ctx: Context, k: int) -> None:
    """Make detection ``k`` the target (a click on the photo or the table)."""
    if 0 <= k < len(ctx.detections):
        prefer(ctx.detection_key, k)
        prefer("target_kind", TARGET_KINDS[0])


def chosen_detection(ctx: Context) -> int | None:
    """The chosen detection's index when the target kind is one detection."""
    if remembered("target_kind", TARGET_KINDS[0]) != TARGET_KINDS[0] or not ctx.detections:
        return None
    k = remembered(ctx.detection_key, 0)
    return k if 0 <= k < len(ctx.detections) else 0


def scales_ui(ctx: Context) -> tuple[int, ...]:
    """All scales side by side, or one."""
    heads = ctx.detector.heads
    mode = choice(
        st.radio, "Scales", ["All side by side", "One"], key="scales_mode", horizontal=False
    )
    if mode == "All side by side":
        return tuple(range(len(heads)))
    one = choice(
        st.selectbox,
        "Scale",
        range(len(heads)),
        key="scales_one",
        format_func=lambda s: heads[s].label,
    )
    return (int(one),)


def explanation_heading(explanation: Explanation) -> None:
    """``"<method> · <target>"`` and, under it, what "score" means and the normalisation."""
    st.subheader(f"{explanation.method} · {explanation.target}")
    note = explanation.score_note or ""
    st.caption(
        f"{note[0].upper() + note[1:] if note else ''}. "
        f"{render.norm_caption(explanation.norm).capitalize()}."
        + (
            " ★ marks the scale that predicted the detection."
            if explanation.own_scale is not None
            else ""
        )
    )


def display_width(image: np.ndarray, max_height: int = 480) -> int | str:
    """``"stretch"``, or a width in pixels that keeps a tall image under ``max_height``."""
    h, w = image.shape[:2]
    if h / max(w, 1) > 1.6:
        return max(40, int(max_height * w / h))
    return "stretch"


def overlays_ui(ctx: Context, explanation: Explanation, columns=None, legend=None) -> None:
    """One column per scale: the overlay (weak and own scales marked) captioned with its
    scale, score and share; a colour bar in ``legend``."""
    s = ctx.settings
    panels = render.explanation_overlays(ctx.view, explanation, s.colormap, s.opacity)
    columns = columns if columns is not None else st.columns(len(panels))
    width = display_width(ctx.view)
    for column, panel, m in zip(columns, panels, explanation.maps, strict=True):
        column.image(
            panel,
            caption=render.scale_caption(m, explanation.own_scale),
            width=width,
            output_format="JPEG",
        )
    if legend is not None:
        legend.image(
            colorbar_image(s.colormap, explanation.norm),
            caption="shared: compare colours across scales"
            if explanation.norm == "shared"
            else "per map: colours do not compare across scales",
            width="stretch",
        )


@st.cache_data(max_entries=8, show_spinner=False)
def colorbar_image(colormap: str, norm: str) -> np.ndarray:
    return render.colorbar(240, colormap, title="shared" if norm == "shared" else "per map")


def detections_table(ctx: Context, chosen: int | None, key: str) -> None:
    """The detections, fully visible; a click on a row explains that detection."""
    if not ctx.detections:
        st.info("No detection at this score threshold: lower it, or explain a class.")
        return
    rows = [
        {
            "#": f"▶ {k}" if k == chosen else str(k),
            "class": d.class_name,
            "score": round(d.score, 3),
            "scale": ctx.detector.heads[d.scale].label.split(" ·")[0],
            "cell": f"{d.cell[0]}, {d.cell[1]}",
            "box (x1, y1, x2, y2)": ", ".join(f"{v:.0f}" for v in d.box_xyxy),
        }
        for k, d in enumerate(ctx.detections)
    ]
    # A new key whenever the choice changes: the table never shows a stale selection.
    table_key = f"{key}:{chosen}:{len(rows)}"
    st.dataframe(
        rows,
        hide_index=True,
        width="stretch",
        height=min(36 * (len(rows) + 1) + 3, 320),
        key=table_key,
        on_select=functools.partial(_table_clicked, ctx, table_key),
        selection_mode="single-row",
        column_config={
            "#": st.column_config.TextColumn("#", width=50),
            "class": st.column_config.TextColumn("class", width="small"),
            "score": st.column_config.NumberColumn("score", width=60, format="%.3f"),
            "scale": st.column_config.TextColumn("scale", width=60),
            "cell": st.column_config.TextColumn("cell", width=60),
            "box (x1, y1, x2, y2)": st.column_config.TextColumn("box (x1, y1, x2, y2)"),
        },
    )


def _table_clicked(ctx: Context, key: str) -> None:
    rows = st.session_state[key].selection.rows
    if rows:
        choose_detection(ctx, int(rows[0]))


def detection_from_points(points) -> int | None:
    """The detection a plotly selection points at: the best-scoring (lowest index)
    among the selected dots (their ``customdata`` is the detection's index)."""
    found = []
    for point in points or ():
        data = point.get("customdata")
        if isinstance(data, (list, tuple)):
            data = data[0] if data else None
        if isinstance(data, (int, float)) and not isinstance(data, bool):
            found.append(int(data))
    return min(found) if found else None


def _dot_clicked(ctx: Context, key: str, curve: int) -> None:
    points = [p for p in st.session_state[key].selection.points if p.get("curve_number") == curve]
    k = detection_from_points(points)
    if k is not None:
        choose_detection(ctx, k)


def static_photo(ctx: Context, chosen: int | None, caption: str | None = None, width="stretch"):
    """The photo with its detections (the chosen one highlighted), as an image."""
    boxes = [
        dataclasses.replace(d, box_xyxy=tuple(v * ctx.view_scale for v in d.box_xyxy))
        for d in ctx.detections
    ]
    st.image(
        render.draw_detections(ctx.view, boxes, highlight=chosen),
        caption=caption,
        width=width,
        output_format="JPEG",
    )


def interactive_scale_ui(explanation: Explanation, heads) -> int:
    """The interactive view's scale: it opens on the detection's own scale (else the
    strongest), remembered per target."""
    scales = [m.scale for m in explanation.maps]

    def fallback(options):
        if explanation.own_scale in options:
            return explanation.own_scale
        strongest = max(explanation.maps, key=lambda m: m.relative or 0.0)
        return strongest.scale

    def label(s: int) -> str:
        m = explanation.by_scale(s)
        marks = " ★ own scale" if s == explanation.own_scale else ""
        marks += " · weak" if m.weak else ""
        return heads[s].label + marks

    return choice(
        st.selectbox,
        "Heatmap",
        scales,
        key=f"interactive_scale:{explanation.method}:{explanation.target}",
        fallback=fallback,
        default=fallback(scales),
        format_func=label,
        label_visibility="collapsed",
    )


def heatmap_figure(
    image: np.ndarray,
    heatmap: np.ndarray,
    grid: tuple[int, int],
    to_network,
    stride: int,
    box=None,
    colormap: str = "jet",
    opacity: float = 0.5,
    max_side: int = 120,
    photo: str | None = None,
    colorbar_title: str = "heat",
    boxes=(),
    labels=(),
    colours=(),
    chosen: int | None = None,
) -> go.Figure:
    """A plotly view of one heatmap over the photo: hover shows value and grid cell;
    every detection's box (the chosen one highlighted) with a dot to click.

    Args:
        image: (H, W, 3) uint8 RGB.
        heatmap: (H, W) in [0, 1].
        grid: (rows, cols) of the scale's grid.
        to_network: maps (N, 4) boxes in ``image`` pixels to network pixels.
        stride: network pixels per cell.
        box: (x1, y1, x2, y2) target box in image pixels, or None.
        max_side: the heatmap layer is subsampled to at most this many cells a side.
        photo: the photo as a data URI (else encoded here).
        colorbar_title: the colour bar's title (e.g. the normalisation).
        boxes: detections' boxes (x1, y1, x2, y2) in ``image`` pixels; the last trace
            of the figure is then their dots, ``customdata`` = the detection's index.
        labels, colours: per box, its label and RGB colour.
        chosen: index of the box to highlight.
    """
    height, width = heatmap.shape
    step = max(1, int(np.ceil(max(height, width) / max_side)))
    ys = np.arange(step // 2, height, step)
    xs = np.arange(step // 2, width, step)
    values = heatmap[np.ix_(ys, xs)]
    corners = np.stack([xs, np.zeros_like(xs), xs, np.zeros_like(xs)], axis=1)
    net_x = to_network(corners.astype(float))[:, 0]
    corners = np.stack([np.zeros_like(ys), ys, np.zeros_like(ys), ys], axis=1)
    net_y = to_network(corners.astype(float))[:, 1]
    cols = np.clip((net_x // stride).astype(int), 0, grid[1] - 1)
    rows = np.clip((net_y // stride).astype(int), 0, grid[0] - 1)
    cells = np.stack(np.broadcast_arrays(rows[:, None], cols[None, :]), axis=-1)
    figure = go.Figure()
    if photo is None:
        shrink = min(1.0, 800 / max(height, width))
        small = cv2.resize(image, (round(width * shrink), round(height * shrink)), cv2.INTER_AREA)
        photo = "data:image/jpeg;base64," + base64.b64encode(downloads.jpeg_bytes(small)).decode()
        dx = 1 / shrink
    else:
        dx = width / image.shape[1]
    figure.add_trace(go.Image(source=photo, hoverinfo="skip", x0=0, y0=0, dx=dx, dy=dx))
    figure.add_trace(
        go.Heatmap(
            z=values,
            x=xs,
            y=ys,
            customdata=cells,
            colorscale=PLOTLY_COLORSCALES[colormap],
            zmin=0.0,
            zmax=1.0,
            opacity=opacity,
            hovertemplate="value %{z:.3f}<br>grid cell (row %{customdata[0]}, "
            "col %{customdata[1]})<br>pixel (%{x}, %{y})<extra></extra>",
            colorbar={"title": colorbar_title, "thickness": 12},
        )
    )
    if box is not None and chosen is None:
        x1, y1, x2, y2 = box
        figure.add_shape(
            type="rect", x0=x1, y0=y1, x1=x2, y1=y2, line={"color": "white", "width": 2}
        )
    if len(boxes):
        _add_boxes(figure, boxes, labels, colours, chosen)
    figure.update_layout(
        margin={"l": 0, "r": 0, "t": 0, "b": 0},
        height=min(560, max(300, int(520 * height / max(width, 1)))),
        dragmode="zoom",
        hovermode="closest",
    )
    figure.update_xaxes(visible=False, range=[0, width])
    figure.update_yaxes(visible=False, range=[height, 0], scaleanchor="x")
    return figure


def _add_boxes(figure: go.Figure, boxes, labels, colours, chosen: int | None) -> None:
    """Detections' boxes (one line trace per colour, the chosen one on top in white
    and its colour) and, last, one clickable dot per box at its centre."""
    by_colour: dict[tuple, list[int]] = {}
    for k, colour in enumerate(colours):
        if k != chosen:
            by_colour.setdefault(tuple(colour), []).append(k)
    alpha = 0.5 if chosen is not None else 0.9
    for colour, members in by_colour.items():
        xs: list = []
        ys: list = []
        for k in members:
            x1, y1, x2, y2 = boxes[k]
            xs += [x1, x2, x2, x1, x1, None]
            ys += [y1, y1, y2, y2, y1, None]
        figure.add_trace(
            go.Scatter(
                x=xs,
                y=ys,
                mode="lines",
                line={"color": f"rgba{(*colour, alpha)}", "width": 1.5},
                hoverinfo="skip",
                showlegend=False,
            )
        )
    if chosen is not None:
        x1, y1, x2, y2 = boxes[chosen]
        for colour, width in (("white", 5), (f"rgb{tuple(colours[chosen])}", 2.5)):
            figure.add_trace(
                go.Scatter(
                    x=[x1, x2, x2, x1, x1],
                    y=[y1, y1, y2, y2, y1],
                    mode="lines",
                    line={"color": colour, "width": width},
                    hoverinfo="skip",
                    showlegend=False,
                )
            )
    figure.add_trace(
        go.Scatter(
            x=[(b[0] + b[2]) / 2 for b in boxes],
            y=[(b[1] + b[3]) / 2 for b in boxes],
            mode="markers",
            customdata=list(range(len(boxes))),
            hovertext=list(labels),
            hovertemplate="%{hovertext}<br>click to explain<extra></extra>",
            marker={
                "size": [15 if k == chosen else 11 for k in range(len(boxes))],
                "color": [f"rgb{tuple(c)}" for c in colours],
                "line": {"color": "white", "width": 2},
                "opacity": 1.0,
            },
            selected={"marker": {"opacity": 1.0}},
            unselected={"marker": {"opacity": 1.0}},
            showlegend=False,
        )
    )


def interactive_ui(ctx: Context, explanation: Explanation, chosen: int | None = None) -> None:
    """The interactive view of one scale's heatmap (opens on the own scale)."""
    heads = ctx.detector.heads
    scale = interactive_scale_ui(explanation, heads)
    m = explanation.by_scale(scale)
    head = heads[m.scale]
    letterbox = ctx.detector.letterbox_for(ctx.image.shape[:2])
    f = ctx.view_scale

    def to_network(boxes):
        return letterbox.to_network(np.asarray(boxes, float) / f)

    if m.weak:
        st.caption(
            f":orange[**{render.weak_text(m)}**]: this map shows what little this scale adds."
        )
    dets = ctx.detections
    figure = heatmap_figure(
        ctx.view,
        m.heatmap,
        head.grid,
        to_network,
        head.stride,
        explanation.box_xyxy,
        ctx.settings.colormap,
        ctx.settings.opacity,
        photo=photo_uri(ctx.key, ctx.view),
        colorbar_title=explanation.norm,
        boxes=[tuple(v * f for v in d.box_xyxy) for d in dets],
        labels=[ctx.label(k) for k in range(len(dets))],
        colours=[render.PALETTE[d.class_id % len(render.PALETTE)] for d in dets],
        chosen=chosen,
    )
    # A new key whenever the choice changes: the figure never keeps a stale selection.
    key = f"interactive:{chosen}:{len(dets)}"
    st.plotly_chart(
        figure,
        key=key,
        on_select=functools.partial(_dot_clicked, ctx, key, len(figure.data) - 1),
        selection_mode=("points",),
        config={"displaylogo": False},
    )
