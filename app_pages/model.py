"""Model: heads, classes, and (for experts) the layer each scale is explained at."""

from __future__ import annotations

import streamlit as st

from yolocam_app import resources, sidebar
from yolocam_app.views import Context, chosen_detection, static_photo
from yolocam_core.cams.odam import neck_layer
from yolocam_core.errors import YolocamError

settings = sidebar.current()
explainer = resources.get_explainer(settings.model_name)
detector = explainer.detector

st.title(f"Model · {detector.name}")
h, w = detector.input_size
st.caption(
    f"Input {w}×{h}, {'letterboxed' if detector.letterbox else 'resized'}, "
    f"{detector.num_classes} classes, {len(detector.heads)} heads, "
    f"{detector.keras_model.count_params():,} parameters."
)


def photo_by_head() -> None:
    """The photo with the chosen box, and how many of its detections each head made."""
    if settings.image_bytes is None:
        return
    try:
        ctx = Context(settings)
    except YolocamError:
        return  # the other pages say what is wrong with the file
    chosen = chosen_detection(ctx)
    left, right = st.columns([1.2, 2])
    with left:
        static_photo(ctx, chosen, caption=f"{settings.image_name} · the chosen box highlighted")
    with right:
        own = None if chosen is None else ctx.detections[chosen].scale
        lines = [
            f"- **{h.label}**: {sum(d.scale == h.index for d in ctx.detections)} detection(s)"
            + (" · ★ the chosen box's head" if h.index == own else "")
            for h in detector.heads
        ]
        st.markdown(
            f"**This photo's {len(ctx.detections)} detection(s) at score ≥ {settings.score:.2f}, "
            "by the head that predicted them**\n\n" + "\n".join(lines)
        )


photo_by_head()
st.subheader("Heads")
st.dataframe(
    [
        {
            "scale": head.index,
            "grid": f"{head.grid[0]}×{head.grid[1]}",
            "stride": head.stride,
            "anchors (w×h px)": ", ".join(f"{aw:g}×{ah:g}" for aw, ah in head.anchors),
            "scale_x_y": head.scale_x_y,
            "Grad-CAM family layer": head.cam_layer,
            "ODAM layer": neck_layer(detector, head.index),
            "head output": head.output_name,
        }
        for head in detector.heads
    ],
    hide_index=True,
    width="stretch",
)

st.subheader("Layer used for each scale (experts)")
st.caption(
    "By default the Grad-CAM family explains each scale at the layer that feeds its "
    "head's final convolution, and ODAM at the neck output before the head's spatial "
    "convolution (the table above). A layer chosen here replaces every gradient "
    "method's own for that scale, and the maps say so; D-RISE reads no layer. Earlier "
    "layers give coarser-to-finer, less class-specific maps."
)
# Kept per model (layer names differ between models); the pages use them through
# yolocam_app.views.chosen_layers.
chosen = dict(st.session_state.get("layers", {}).get(settings.model_name, {}))
for head in detector.heads:
    options = explainer.candidate_layers(head.index)
    current = chosen.get(head.index, head.cam_layer)
    layer = st.selectbox(
        f"{head.label}",
        options,
        index=options.index(current) if current in options else options.index(head.cam_layer),
        key=f"layer_{settings.model_name}_{head.index}",  # per model: names differ
    )
    if layer == head.cam_layer:
        chosen.pop(head.index, None)
    else:
        chosen[head.index] = layer
st.session_state["layers"] = st.session_state.get("layers", {}) | {settings.model_name: chosen}
if chosen:
    st.info(f"Custom layers in use: {chosen}. Choose the default to go back.")

st.subheader("Classes")
st.dataframe(
    [{"id": k, "name": name} for k, name in enumerate(detector.class_names)],
    hide_index=True,
    height=300,
)
