"""Compare methods: a grid of methods × scales for the same target."""

from __future__ import annotations

import streamlit as st

from yolocam_app.sidebar import page_setup
from yolocam_app.views import context_or_stop, target_ui
from yolocam_core import render
from yolocam_core.cams import get_method, method_names

settings = page_setup()
PANEL_WIDTH = 300  # pixels: a laptop screen shows two method rows at once
st.title("Compare CAM methods")
st.caption("The same target explained by each method (rows) at each scale (columns).")
ctx = context_or_stop(settings)

target = target_ui(ctx, key="compare_target")
methods = st.multiselect(
    "Methods",
    method_names(),
    default=method_names(),
    format_func=lambda m: get_method(m).title,
    key="compare_methods",
)
scales = tuple(range(len(ctx.detector.heads)))
widths = [1] + [2] * len(scales) + [1]  # method name, one column per scale, margin
header = st.columns(widths)
header[0].markdown("**method**")
for column, head in zip(header[1:-1], ctx.detector.heads, strict=True):
    column.markdown(f"**{head.label}**")
for method in methods:
    explanation = ctx.explain(target, method, scales)
    panels = render.explanation_overlays(
        ctx.image, explanation, settings.colormap, settings.opacity
    )
    row = st.columns(widths)
    row[0].markdown(f"**{get_method(method).title}**")
    for column, panel, m in zip(row[1:-1], panels, explanation.maps, strict=True):
        column.image(panel, caption=f"score {m.score:.3g}", width=PANEL_WIDTH)
