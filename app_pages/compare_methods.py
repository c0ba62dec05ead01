"""Compare methods: a grid of methods × scales for the same target."""

from __future__ import annotations

import streamlit as st

from yolocam_app import methods, sidebar
from yolocam_app.views import (
    at_grid_size,
    chosen_detection,
    colorbar_image,
    context_or_stop,
    custom_scales,
    explain_shown,
    explanation_heading,
    map_caption,
    methods_ui,
    notes_ui,
    page_image,
    refused_ui,
    static_photo,
    target_ui,
)
from yolocam_core import render
from yolocam_core.errors import YolocamError

settings = sidebar.current()
PANEL_WIDTH = 300  # pixels: a laptop screen shows two method rows at once
st.title("Compare CAM methods")
st.caption("The same target explained by each method (rows) at each scale (columns).")
ctx = context_or_stop(settings)

controls = st.columns([3, 4, 3])
with controls[0]:
    kind = target_ui(ctx, part="kind")
with controls[1]:
    target = target_ui(ctx, part="choice", kind=kind, attribute=True)
with controls[2]:
    rows, refused = methods_ui(
        target.build(ctx.detections),
        key="compare_methods",
        default=None,
        fallback=list,
        drise_help="D-RISE measures which image regions the detection needs from the "
        "model's outputs on randomly masked copies of the photo: the reference the "
        "gradient maps are checked against. Every detection of the photo comes from the "
        "same masks.",
    )
    refused_ui(refused)
notes_ui(ctx)
chosen = chosen_detection(ctx)
scales = tuple(range(len(ctx.detector.heads)))
widths = [1.2] + [2] * len(scales) + [0.6]  # method name, one column per scale, margin
top = st.columns([1.2, 3])
with top[0]:
    static_photo(ctx, chosen, caption=f"{settings.image_name} · the target's box highlighted")
own = None
header = st.columns(widths)
header[0].markdown("**method**")
norm = None
for method in rows:
    try:
        explanation = explain_shown(ctx, target, method, scales, batch=False)
    except YolocamError as exc:  # e.g. an uploaded model evicted by other sessions
        st.warning(f"{methods.title(method)}: {exc}")
        continue
    if norm is None:
        own, norm = explanation.own_scale, explanation.norm
        with top[1]:
            explanation_heading(
                explanation, about_method=False, custom=custom_scales(ctx, explanation)
            )
    panels = render.explanation_overlays(
        ctx.grid, at_grid_size(ctx, explanation), settings.colormap, settings.opacity
    )
    row = st.columns(widths)
    row[0].markdown(f"**{methods.method_label(method, target.kind)}**")
    if methods.is_black_box(method):
        row[0].caption(explanation.maps[0].layer)
    for column, panel, m in zip(row[1:-1], panels, explanation.maps, strict=True):
        column.image(
            page_image(panel),
            caption=map_caption(
                explanation, m, label=False, custom=custom_scales(ctx, explanation)
            ),
            width=PANEL_WIDTH,
        )
for column, head in zip(header[1:-1], ctx.detector.heads, strict=True):
    column.markdown(f"**{head.label}**" + (" · ★ own scale" if head.index == own else ""))
if norm is not None:
    top[1].image(colorbar_image(settings.colormap, norm), width=70, output_format="PNG")
if not rows:
    st.info("Choose at least one method.")
