"""yolocam web app: `streamlit run app.py`. This is the Explore page: detections, one
target, every scale side by side, an interactive view. Other pages are in pages/."""

from __future__ import annotations

import streamlit as st

from yolocam_app import downloads
from yolocam_app.sidebar import page_setup
from yolocam_app.views import context_or_stop, heatmap_figure, overlays_ui, scales_ui, target_ui
from yolocam_core import render

settings = page_setup()
st.title("Why did the detector fire?")
st.caption(
    "A heatmap shows which parts of the photo raised the chosen score at one head "
    "scale: red regions pushed it up most. Coarse heads (13×13) see whole objects, "
    "finer heads see parts."
)
ctx = context_or_stop(settings)

left, right = st.columns([3, 2])
with left:
    st.image(
        render.draw_detections(ctx.image, ctx.detections),
        caption=f"{settings.image_name} · {len(ctx.detections)} detection(s) "
        f"at score ≥ {settings.score:.2f}",
        width="stretch",
    )
with right:
    st.subheader("Detections")
    if ctx.detections:
        st.dataframe(
            [
                {
                    "#": k,
                    "class": d.class_name,
                    "score": round(d.score, 3),
                    "scale": ctx.detector.head_label(d.scale),
                    "cell": f"{d.cell[0]}, {d.cell[1]}",
                    "box": ", ".join(f"{v:.0f}" for v in d.box_xyxy),
                }
                for k, d in enumerate(ctx.detections)
            ],
            hide_index=True,
            width="stretch",
        )
    else:
        st.info("No detection at this score threshold: lower it, or explain a class.")
    target = target_ui(ctx)
    scales = scales_ui(ctx)

explanation = ctx.explain(target, settings.method, scales)
st.subheader(f"{explanation.method} · {explanation.target}")
overlays_ui(ctx, explanation)

with st.expander("Interactive view: hover for values and grid cells, drag to zoom", expanded=True):
    chosen = st.selectbox(
        "Heatmap",
        range(len(explanation.maps)),
        format_func=lambda i: explanation.maps[i].label,
        key="interactive_scale",
    )
    m = explanation.maps[chosen]
    head = ctx.detector.heads[m.scale]
    letterbox = ctx.detector.letterbox_for(ctx.image.shape[:2])
    st.plotly_chart(
        heatmap_figure(
            ctx.image,
            m.heatmap,
            head.grid,
            letterbox.to_network,
            head.stride,
            explanation.box_xyxy,
            settings.colormap,
            settings.opacity,
        ),
        key="interactive",
    )

stem = settings.image_name.rsplit(".", 1)[0] or "image"
c1, c2, c3 = st.columns(3)
c1.download_button(
    "Sheet (PNG)",
    downloads.sheet_png(ctx.image, explanation, settings.colormap, settings.opacity),
    file_name=f"{stem}_{explanation.method}_sheet.png",
    mime="image/png",
)
c2.download_button(
    "Raw maps (.npy in a zip)",
    downloads.maps_zip(explanation),
    file_name=f"{stem}_{explanation.method}_maps.zip",
    mime="application/zip",
)
c3.download_button(
    "Detections (JSON)",
    downloads.detections_json(settings.image_name, ctx.image.shape[:2], ctx.detections),
    file_name=f"{stem}_detections.json",
    mime="application/json",
)
