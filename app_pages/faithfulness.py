"""Faithfulness: deletion and insertion curves of one detection, against a random map."""

from __future__ import annotations

import streamlit as st

from yolocam_app import faithfulness, methods, sidebar
from yolocam_app.state import choice, remembered
from yolocam_app.views import (
    context_or_stop,
    masks_text,
    methods_ui,
    notes_ui,
    static_photo,
    target_ui,
    with_progress,
)
from yolocam_core import render
from yolocam_core.errors import YolocamError
from yolocam_core.evaluate import reading, summarize
from yolocam_core.explainer import WEAK_RELATIVE
from yolocam_core.metrics import DEFAULT_STEPS

settings = sidebar.current()
st.title("Faithfulness")
st.caption(
    "Does the map show what the detector uses? Pixels are removed from the photo "
    "(deletion) or restored into a blank one (insertion), most important first by the map, "
    "and the detection's score is measured again after each step (its best-matching box: "
    "IoU × class score). A faithful map makes the score fall fast (low deletion area) and "
    "come back fast (high insertion area), compared with a random map of the same grid."
)
ctx = context_or_stop(settings)
if not ctx.detections:
    st.info("No detection at this score threshold: lower it in the sidebar to measure one.")
    st.stop()

notes_ui(ctx)
controls = st.columns([3, 4, 3])
with controls[0]:
    spec = target_ui(ctx, part="choice", kind="One detection")
    static_photo(ctx, spec.index, caption="the measured detection highlighted")
# ODAM (instance) and Grad-CAM (class) by default, and the method chosen on Explore.
explored = remembered("method")
with controls[1]:
    methods_measured, _ = methods_ui(
        spec.build(ctx.detections),
        key="faith_methods",
        default=["odam", "gradcam", *([explored] if explored else [])],
        drise_help="D-RISE's map of this detection, measured like the others (with the "
        "model-randomisation check, D-RISE runs twice: on the model and on its "
        "randomised copy).",
    )
with controls[2]:
    steps = st.select_slider(
        "Steps", [8, 16, 32, 64], value=DEFAULT_STEPS, key="faith_steps", help="pixel fractions"
    )
    fill = st.radio(
        "Removed pixels become",
        ["grey", "blur"],
        horizontal=True,
        key="faith_fill",
        help="grey: 128 in every channel; blur: a Gaussian-blurred copy of the photo",
    )
    sanity = st.toggle(
        "Model-randomisation check",
        value=False,
        key="faith_sanity",
        help="Spearman ρ of each map with the map of a copy of the model whose heads' last "
        "two convolutions are random (near 0: the map depends on the learnt weights).",
    )
if not methods_measured:
    st.info("Choose at least one method.")
    st.stop()

detection = ctx.detections[spec.index]
heads = ctx.detector.heads
scales = tuple(range(len(heads)))
layers = ctx.layers(scales)


def measure_key(method: str) -> tuple:
    """What the metrics of ``method`` depend on: the arguments of
    ``faithfulness.evaluate_method`` but the image (a black-box method reads no layer,
    so the expert layers stay out); its cache key and a black box's work key."""
    return (
        settings.model_name,
        ctx.key,
        settings.score,
        settings.iou,
        settings.max_detections,
        spec.index,
        method,
        scales,
        int(steps),
        fill,
        sanity,
        () if methods.is_black_box(method) else layers,
        methods.options_for(method),
    )


def measure(method: str, progress=None):
    """The metrics of ``method`` for the chosen detection (cached)."""
    model_name, key, *rest = measure_key(method)
    return faithfulness.evaluate_method(model_name, key, ctx.image, *rest, progress)


results = {}
try:
    fast_measured = [m for m in methods_measured if not methods.is_black_box(m)]
    slow_measured = [m for m in methods_measured if methods.is_black_box(m)]
    # One spinner per step, saying which of how many (shown only when a step is not
    # cached): the random baseline, then each gradient method, then each black box
    # (with its progress bar).
    baseline_steps = 1 if fast_measured else 0  # a black box's curves bring their own
    steps_total = baseline_steps + len(fast_measured) + len(slow_measured)
    if fast_measured:
        with st.spinner(f"Measuring a random map's curves (1 of {steps_total})…"):
            faithfulness.baseline(
                settings.model_name,
                ctx.key,
                ctx.image,
                settings.score,
                settings.iou,
                settings.max_detections,
                spec.index,
                scales,
                int(steps),
                fill,
            )
    for k, method in enumerate(fast_measured, start=baseline_steps + 1):
        what = f"{methods.title(method)} at {len(scales)} scales"
        with st.spinner(f"Measuring {what} ({k} of {steps_total})…"):
            results[method] = measure(method)
    for k, method in enumerate(slow_measured, start=baseline_steps + len(fast_measured) + 1):
        title = methods.title(method)
        step = f"{k} of {steps_total}"
        what = f"the model, then its randomised copy; {step}" if sanity else step
        results[method] = with_progress(
            lambda progress, method=method: measure(method, progress),
            lambda done, total, title=title, what=what: masks_text(title, done, total, what),
            key=("faithfulness", *measure_key(method)),
        )
except YolocamError as exc:
    st.error(f"Cannot measure this detection: {exc}")
    st.stop()

rows = [row for result in results.values() for row in result.rows]
summary = summarize(rows)
scale = choice(
    st.radio,
    "Curves at",
    scales,
    key=f"faith_scale:{ctx.detection_key}:{spec.index}",
    fallback=lambda options: detection.scale,
    default=detection.scale,
    format_func=lambda s: heads[s].label + (" ★ own scale" if s == detection.scale else ""),
    horizontal=True,
)
st.success(reading(summary, scale))

first = next(iter(results.values()))
random = first.random[scale]
charts = st.columns(2)
for column, kind in zip(charts, ("deletion", "insertion"), strict=True):
    values = {m: getattr(r.curves[(m, scale)], kind)[0] for m, r in results.items()}
    area = {m: float(getattr(r.curves[(m, scale)], f"{kind}_auc")[0]) for m, r in results.items()}
    better = "lower" if kind == "deletion" else "higher"
    column.plotly_chart(
        faithfulness.curves_figure(
            f"{kind.capitalize()} · {heads[scale].label} ({better} area is better)",
            kind,
            first.curves[(methods_measured[0], scale)].fractions,
            {f"{m} ({area[m]:.2f})": v for m, v in values.items()},
            getattr(random, kind)[0],
            detection.score,
        ),
        key=f"faith_{kind}",
    )


def weak_mark(row) -> str:
    """``"0.21% of top"`` for a weak scale's row, else ``""``."""
    relative = row.scale_relative
    if relative is None or relative >= WEAK_RELATIVE:
        return ""
    return f"{render.percent(relative)} of top"


st.markdown(f"**Metrics** · {ctx.detector.describe(detection)}")
table = []
for row in rows:
    item = {
        "method": row.method,
        "scale": row.scale_label.split(" · ")[0] + (" ★" if row.own_scale else ""),
        "weak": weak_mark(row),
        "pointing game": "hit" if row.pointing_game else "miss",
        "energy in box": round(row.energy_pointing_game, 3),
        "deletion AUC": round(row.deletion_auc, 3),
        "random deletion": round(row.random_deletion_auc, 3),
        "insertion AUC": round(row.insertion_auc, 3),
        "random insertion": round(row.random_insertion_auc, 3),
    }
    if sanity:
        rho = row.sanity_spearman
        item["sanity ρ"] = None if rho is None or rho != rho else round(rho, 3)
    table.append(item)
st.dataframe(table, hide_index=True, width="stretch")
st.caption(
    "★ the scale that predicted the detection; weak: a scale whose score is below "
    f"{WEAK_RELATIVE:.0%} of the top (strongest) scale's, with its share (its map shows "
    "what little that scale contributes, not why the detection was made). Pointing game: "
    "the map's peak is inside the box (Zhang et al. 2016). Energy in box: the share of the "
    "map's mass inside it (Score-CAM). Deletion / insertion AUC: area under the curves "
    "above (RISE, Petsiuk et al. 2018), each read against a random map of the same grid "
    f"(mean of {len(faithfulness.SEEDS)} seeds)."
)
