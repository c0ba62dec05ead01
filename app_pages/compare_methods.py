"""Compare methods: a grid of methods × scales for the same target."""

from __future__ import annotations

import streamlit as st

from yolocam_app import sidebar
from yolocam_app.state import choice
from yolocam_app.views import (
    chosen_detection,
    colorbar_image,
    context_or_stop,
    explain_shown,
    explanation_heading,
    notes_ui,
    static_photo,
    target_ui,
)
from yolocam_core import render
from yolocam_core.cams import get_method, method_names
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
    target = target_ui(ctx, part="choice", kind=kind)
fast = [m for m in method_names() if not getattr(get_method(m), "black_box", False)]
with controls[2]:
    methods = choice(
        st.multiselect,
        "Methods",
        method_names(),
        key="compare_methods",
        default=fast,
        multi=True,
        format_func=sidebar.method_label,
        help=sidebar.method_help(),
    )
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
for method in methods:
    try:
        explanation = explain_shown(ctx, target, method, scales, batch=False)
    except YolocamError as exc:  # e.g. a method that cannot explain this target
        st.warning(f"{get_method(method).title}: {exc}")
        continue
    if norm is None:
        own, norm = explanation.own_scale, explanation.norm
        with top[1]:
            explanation_heading(explanation)
    panels = render.explanation_overlays(ctx.view, explanation, settings.colormap, settings.opacity)
    row = st.columns(widths)
    row[0].markdown(f"**{sidebar.method_label(method)}**")
    for column, panel, m in zip(row[1:-1], panels, explanation.maps, strict=True):
        column.image(
            panel,
            caption=render.scale_caption(m, explanation.own_scale, label=False),
            width=PANEL_WIDTH,
        )
for column, head in zip(header[1:-1], ctx.detector.heads, strict=True):
    column.markdown(f"**{head.label}**" + (" · ★ own scale" if head.index == own else ""))
if norm is not None:
    top[1].image(colorbar_image(settings.colormap, norm), width=70, output_format="PNG")
if not methods:
    st.info("Choose at least one method.")
