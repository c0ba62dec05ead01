"""Widgets and views shared by the pages. Each ``*_ui`` draws and returns a value."""

from __future__ import annotations

import base64

import cv2
import numpy as np
import plotly.graph_objects as go
import streamlit as st

from yolocam_app import downloads, resources
from yolocam_app.resources import TargetSpec
from yolocam_app.sidebar import Settings
from yolocam_core import render
from yolocam_core.errors import YolocamError

PLOTLY_COLORSCALES = {"jet": "Jet", "turbo": "Turbo", "viridis": "Viridis"}


class Context:
    """The current image, its detections and the shared explainer, for one run."""

    def __init__(self, settings: Settings):
        self.settings = settings
        self.explainer = resources.get_explainer(settings.model_name)
        self.detector = self.explainer.detector
        self.key = resources.image_key(settings.image_bytes or b"")
        self.image, self.original_size = resources.decode_image(self.key, settings.image_bytes)
        self.detections = resources.detect(
            settings.model_name, self.key, self.image, settings.score, settings.iou
        )

    def layers(self, scales: tuple[int, ...]) -> tuple[tuple[int, str], ...]:
        """The expert layers chosen on the Model page for this model, for ``scales``."""
        return chosen_layers(self.settings.model_name, scales)

    def explain(self, target: TargetSpec, method: str, scales: tuple[int, ...]):
        s = self.settings
        layers = self.layers(scales)
        return resources.explain(
            s.model_name,
            self.key,
            self.image,
            s.score,
            s.iou,
            target,
            method,
            scales,
            s.norm,
            layers,
        )


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


TARGET_KINDS = ("One detection", "A class", "Whole head output (article)")


def target_ui(
    ctx: Context, key: str = "target", part: str = "both", kind: str | None = None
) -> TargetSpec | str:
    """Choose one detection, one class, or the article's whole-output mode.

    ``part="kind"`` draws only the kind (and returns it), ``part="choice"`` only the
    detection or class for a given ``kind``; the default draws both.
    """
    if part in ("both", "kind"):
        kinds = list(TARGET_KINDS[1:] if not ctx.detections else TARGET_KINDS)
        kind = st.radio("Explain", kinds, key=f"{key}_kind")
        if part == "kind":
            return kind
    if kind == "One detection":
        k = st.selectbox(
            "Detection",
            range(len(ctx.detections)),
            format_func=lambda i: f"#{i} {ctx.detector.describe(ctx.detections[i])}",
            key=f"{key}_detection",
        )
        return TargetSpec("detection", int(k))
    if kind == "A class":
        names = ctx.detector.class_names
        detected = list(dict.fromkeys(d.class_id for d in ctx.detections))
        order = detected + [c for c in range(len(names)) if c not in detected]
        c = st.selectbox(
            "Class (detected ones first)",
            order,
            format_func=lambda i: f"{names[i]}{' (detected)' if i in detected else ''}",
            key=f"{key}_class",
        )
        return TargetSpec("class", int(c))
    st.caption("The article's choice: the sum of the whole raw output of each head.")
    return TargetSpec("seed")


def scales_ui(ctx: Context, key: str = "scales") -> tuple[int, ...]:
    """All scales side by side, or one."""
    heads = ctx.detector.heads
    mode = st.radio("Scales", ["All side by side", "One"], key=f"{key}_mode")
    if mode == "All side by side":
        return tuple(range(len(heads)))
    one = st.selectbox(
        "Scale", range(len(heads)), format_func=lambda s: heads[s].label, key=f"{key}_one"
    )
    return (int(one),)


def overlays_ui(ctx: Context, explanation, columns=None) -> None:
    """One column per scale: the overlay captioned with grid, stride and score."""
    s = ctx.settings
    panels = render.explanation_overlays(ctx.image, explanation, s.colormap, s.opacity)
    columns = columns if columns is not None else st.columns(len(panels))
    for column, panel, m in zip(columns, panels, explanation.maps, strict=True):
        column.image(
            panel,
            caption=f"{m.label} · score {m.score:.3g}",
            width="stretch",
            output_format="JPEG",
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
) -> go.Figure:
    """A plotly view of one heatmap over the photo: hover shows value and grid cell.

    Args:
        image: (H, W, 3) uint8 RGB.
        heatmap: (H, W) in [0, 1].
        grid: (rows, cols) of the scale's grid.
        to_network: Letterbox.to_network of the image (maps image px to network px).
        stride: network pixels per cell.
        box: (x1, y1, x2, y2) target box in image pixels, or None.
        max_side: the heatmap layer is subsampled to at most this many cells a side.
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
    # The photo travels as a JPEG data URI (a raw pixel array would be megabytes of JSON).
    shrink = min(1.0, 800 / max(height, width))
    small = cv2.resize(image, (round(width * shrink), round(height * shrink)), cv2.INTER_AREA)
    photo = base64.b64encode(downloads.jpeg_bytes(small)).decode("ascii")
    figure.add_trace(
        go.Image(
            source=f"data:image/jpeg;base64,{photo}",
            hoverinfo="skip",
            x0=0,
            y0=0,
            dx=1 / shrink,
            dy=1 / shrink,
        )
    )
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
            colorbar={"title": "heat", "thickness": 12},
        )
    )
    if box is not None:
        x1, y1, x2, y2 = box
        figure.add_shape(
            type="rect", x0=x1, y0=y1, x1=x2, y1=y2, line={"color": "white", "width": 2}
        )
    figure.update_layout(
        margin={"l": 0, "r": 0, "t": 0, "b": 0},
        height=min(640, max(320, int(560 * height / max(width, 1)))),
        dragmode="zoom",
    )
    figure.update_xaxes(visible=False, range=[0, width])
    figure.update_yaxes(visible=False, range=[height, 0], scaleanchor="x")
    return figure
