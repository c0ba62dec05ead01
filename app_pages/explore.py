"""Explore: detections, one target, every scale side by side, an interactive view and
downloads."""

from __future__ import annotations

import streamlit as st

from yolocam_app import downloads, first_view, sidebar
from yolocam_app.views import (
    chosen_detection,
    context_or_stop,
    custom_scales,
    detections_table,
    display_width,
    explain_shown,
    explanation_heading,
    interactive_ui,
    method_ui,
    notes_ui,
    overlays_ui,
    photo_and_overlay_cells,
    scales_ui,
    static_photo,
    target_ui,
)
from yolocam_core.errors import YolocamError

settings = sidebar.current()
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
    controls = st.columns([2.4, 3.3, 3.3, 2.2])
    with controls[0]:
        if first_view.active():  # the controls' room, so that the heatmaps stay put
            st.container(height=first_view.CONTROLS_HEIGHT_PX, border=False)
        target_kind = target_ui(ctx, part="kind")
    with controls[1]:
        target = target_ui(ctx, part="choice", kind=target_kind, attribute=True)
    with controls[2]:
        method = method_ui(ctx, target)
    with controls[3]:
        scales = scales_ui(ctx)
    notes_ui(ctx)
    try:
        explanation = explain_shown(ctx, target, method, scales)
    except YolocamError as exc:  # e.g. an uploaded model evicted by other sessions
        st.error(f"Cannot explain this: {exc}.")
        return
    chosen = chosen_detection(ctx)
    explanation_heading(explanation, custom=custom_scales(ctx, explanation))
    cells, legend = photo_and_overlay_cells(ctx.view, len(explanation.maps))
    with cells[0]:
        static_photo(
            ctx,
            chosen,
            caption=f"{settings.image_name} · {len(ctx.detections)} detection(s) at score "
            f"≥ {settings.score:.2f}",
            width=display_width(ctx.view),
        )
    overlays_ui(ctx, explanation, cells[1:], legend=legend)
    if not first_view.below_the_heatmaps():  # a new session: the rest once drawn
        return

    st.markdown("**Detections** · click a row to explain it")
    detections_table(ctx, chosen, key="detections")
    interactive, files = st.columns([3, 2])
    with interactive:
        st.markdown("**Interactive view** · click a box to explain it")
        interactive_ui(ctx, explanation, chosen)
    with files:
        st.markdown("**Downloads**")
        _downloads(explanation, target, method, chosen)


def _downloads(explanation, target, method, chosen) -> None:
    """Built only when clicked (the callables run on their own thread), at full size."""
    stem = settings.image_name.rsplit(".", 1)[0] or "image"
    model = ctx.detector.name
    every_scale = tuple(range(len(ctx.detector.heads)))
    shown = tuple(m.scale for m in explanation.maps)

    def full(scales=shown):
        return ctx.explain(target, method, scales, full_size=True)

    thresholds = {"thresholds": {"score": settings.score, "iou": settings.iou}}
    st.download_button(
        "Report (HTML, every scale)",
        lambda: downloads.report_html(
            ctx.image,
            full(every_scale),
            detections=ctx.detections,
            chosen=chosen,
            model=model,
            image_name=settings.image_name,
            colormap=settings.colormap,
            opacity=settings.opacity,
            score_threshold=settings.score,
            iou_threshold=settings.iou,
            detections_note=ctx.detections.note(),
        ),
        file_name=f"{stem}_{explanation.method}_report.html",
        mime="text/html",
        icon=":material/description:",
        on_click="ignore",  # no rerun: the next button stays valid
        key="download_report",
    )
    st.download_button(
        "Sheet of the scales shown (PNG)",
        lambda: downloads.sheet_png(
            ctx.image, full(), settings.colormap, settings.opacity, model=model
        ),
        file_name=f"{stem}_{explanation.method}_sheet.png",
        mime="image/png",
        icon=":material/download:",
        on_click="ignore",  # no rerun: the next button stays valid
        key="download_sheet",
    )
    st.download_button(
        "Raw maps (.npy and metadata.json in a zip)",
        lambda: downloads.maps_zip(
            full(), model=model, image_name=settings.image_name, extra=thresholds
        ),
        file_name=f"{stem}_{explanation.method}_maps.zip",
        mime="application/zip",
        icon=":material/download:",
        on_click="ignore",  # no rerun: the next button stays valid
        key="download_maps",
    )
    st.download_button(
        "Detections (JSON)",
        lambda: downloads.detections_json(settings.image_name, ctx.image.shape[:2], ctx.detections),
        file_name=f"{stem}_detections.json",
        mime="application/json",
        icon=":material/download:",
        on_click="ignore",  # no rerun: the next button stays valid
        key="download_detections",
    )


explore()
