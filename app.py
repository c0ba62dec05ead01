"""yolocam web app: `streamlit run app.py`.

This is the Explore page: detections, one target, every scale side by side, an
interactive view and downloads. The other pages are in pages/; all share the sidebar
of yolocam_app.sidebar.
"""

from __future__ import annotations

import streamlit as st

from yolocam_app import downloads
from yolocam_app.sidebar import page_setup
from yolocam_app.views import context_or_stop, heatmap_figure, overlays_ui, scales_ui, target_ui
from yolocam_core import render
from yolocam_core.errors import YolocamError

settings = page_setup()
st.title("Why did the detector fire?")
st.caption(
    "Each heatmap shows which parts of the photo raised the chosen score at one head "
    "scale (red: most). Coarse heads (13×13) tend to see whole objects, finer heads parts."
)
ctx = context_or_stop(settings)


@st.fragment
def explore() -> None:
    """Target, scales, overlays, table, downloads and interactive view. A fragment: a
    change here reruns only this part, not the sidebar, the decoding and the detection."""
    controls = st.columns([3, 4, 3])
    with controls[0]:
        target_kind = target_ui(ctx, part="kind")
    with controls[1]:
        target = target_ui(ctx, part="choice", kind=target_kind)
    with controls[2]:
        scales = scales_ui(ctx)

    try:
        explanation = ctx.explain(target, settings.method, scales)
    except YolocamError as exc:  # e.g. an uploaded model evicted by other sessions
        st.error(f"Cannot explain this: {exc}.")
        return
    st.subheader(f"{explanation.method} · {explanation.target}")
    row = st.columns(1 + len(explanation.maps))
    row[0].image(
        render.draw_detections(ctx.image, ctx.detections),
        caption=f"{settings.image_name} · {len(ctx.detections)} detection(s) "
        f"at score ≥ {settings.score:.2f}",
        width="stretch",
        output_format="JPEG",
    )
    overlays_ui(ctx, explanation, row[1:])

    table, interactive = st.columns([2, 3])
    with table:
        st.markdown("**Detections**")
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
        # Built only when clicked (callables run on their own thread).
        stem = settings.image_name.rsplit(".", 1)[0] or "image"
        st.download_button(
            "Sheet of all scales (PNG)",
            lambda: downloads.sheet_png(
                ctx.image, explanation, settings.colormap, settings.opacity
            ),
            file_name=f"{stem}_{explanation.method}_sheet.png",
            mime="image/png",
            icon=":material/download:",
        )
        st.download_button(
            "Raw maps (.npy in a zip)",
            lambda: downloads.maps_zip(explanation),
            file_name=f"{stem}_{explanation.method}_maps.zip",
            mime="application/zip",
            icon=":material/download:",
        )
        st.download_button(
            "Detections (JSON)",
            lambda: downloads.detections_json(
                settings.image_name, ctx.image.shape[:2], ctx.detections
            ),
            file_name=f"{stem}_detections.json",
            mime="application/json",
            icon=":material/download:",
        )
    with interactive:
        st.markdown("**Interactive view** · hover for values and grid cells, drag to zoom")
        chosen = st.selectbox(
            "Heatmap",
            range(len(explanation.maps)),
            format_func=lambda i: explanation.maps[i].label,
            key="interactive_scale",
            label_visibility="collapsed",
        )
        m = explanation.maps[chosen]
        head = ctx.detector.heads[m.scale]
        st.plotly_chart(
            heatmap_figure(
                ctx.image,
                m.heatmap,
                head.grid,
                ctx.detector.letterbox_for(ctx.image.shape[:2]).to_network,
                head.stride,
                explanation.box_xyxy,
                settings.colormap,
                settings.opacity,
            ),
            key="interactive",
        )


explore()
