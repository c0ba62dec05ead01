"""Cached faithfulness computations and figures for the Faithfulness page.

Results are cached per image hash and parameters (``st.cache_data``): the random
baseline once per (detection, scales, steps, fill), each method separately, so that
adding a method to the comparison computes only that method.
"""

from __future__ import annotations

import plotly.graph_objects as go
import streamlit as st

from yolocam_app import resources
from yolocam_app.methods import instance, is_black_box
from yolocam_core.evaluate import (
    ImageEvaluation,
    ScoringSettings,
    baseline_curves,
    evaluate_image,
)
from yolocam_core.explainer import Explainer
from yolocam_core.metrics import Curves, randomised_explainer

#: Seeds of the random maps averaged for the baseline.
SEEDS = (0, 1, 2)
#: One colour per method (plotly's default qualitative palette), random in grey.
COLOURS = ("#636efa", "#ef553b", "#00cc96", "#ab63fa", "#ffa15a", "#19d3f3", "#ff6692")
RANDOM_COLOUR = "#7f7f7f"


@st.cache_resource(show_spinner="Randomising a copy of the model for the sanity check…")
def get_random_explainer(model_name: str) -> Explainer:
    """The model with its heads' last two convolutions randomised (shared, read-only)."""
    return randomised_explainer(resources.get_explainer(model_name))


@st.cache_data(max_entries=16, show_spinner=False)
def baseline(
    model_name: str,
    key: str,
    _image,
    score: float,
    iou: float,
    max_detections: int,
    index: int,
    scales: tuple[int, ...],
    steps: int,
    fill: str,
) -> dict[int, Curves]:
    """Random-map curves of detection ``index`` at each scale."""
    detection = resources.detect(model_name, key, _image, score, iou, max_detections)[index]
    explainer = resources.get_explainer(model_name)
    with resources.heavy("measuring the random baseline"):
        return baseline_curves(
            explainer,
            _image,
            [detection],
            scales,
            ScoringSettings(steps=steps, fill=fill, seeds=SEEDS),
        )


@st.cache_data(max_entries=64, show_spinner=False)
def evaluate_method(
    model_name: str,
    key: str,
    _image,
    score: float,
    iou: float,
    max_detections: int,
    index: int,
    method: str,
    scales: tuple[int, ...],
    steps: int,
    fill: str,
    sanity: bool,
    layers: tuple[tuple[int, str], ...] = (),
    options: resources.MethodOptions = (),
    _progress: resources.Progress | None = None,
) -> ImageEvaluation:
    """All metrics of one detection's maps by one method at the given scales.

    A black-box method (D-RISE, configured by ``options``) takes no expert layers,
    holds the server's slow slot and reports ``_progress(masks done, masks total)``
    (the trained model's masks, then the randomised copy's with ``sanity``).
    """
    detection = resources.detect(model_name, key, _image, score, iou, max_detections)[index]
    random = baseline(
        model_name, key, _image, score, iou, max_detections, index, scales, steps, fill
    )
    explainer = resources.get_explainer(model_name)
    randomised = get_random_explainer(model_name) if sanity else None
    black_box = is_black_box(method)
    if black_box and _progress is not None:
        parts = 2 if randomised is not None else 1
        explainer = _Reporting(explainer, lambda done, total: _progress(done, parts * total))
        if randomised is not None:
            randomised = _Reporting(
                randomised, lambda done, total: _progress(total + done, 2 * total)
            )
    with resources.work_slot(method, "measuring faithfulness", _progress):
        result = evaluate_image(
            explainer,
            _image,
            [instance(method, options) if black_box else method],
            list(scales),
            [detection],
            settings=ScoringSettings(steps=steps, fill=fill, seeds=SEEDS),
            layer=None if black_box else dict(layers) or None,
            random_explainer=randomised,
            baseline=random,
        )
    return result  # rows and curves named by the method's registry name, as given


class _Reporting:
    """An explainer whose ``explain_many`` reports progress (``evaluate_image`` passes
    none); everything else is the wrapped explainer's."""

    def __init__(self, explainer: Explainer, progress: resources.Progress):
        self._explainer = explainer
        self._progress = progress

    def __getattr__(self, name: str):
        return getattr(self._explainer, name)

    def explain_many(self, *args, **kwargs):
        kwargs.setdefault("progress", self._progress)
        return self._explainer.explain_many(*args, **kwargs)


def curves_figure(
    title: str, kind: str, fractions, curves: dict[str, object], random, score: float
) -> go.Figure:
    """Deletion or insertion curves of one detection: one line per method, the random
    map dashed grey.

    Args:
        title: the figure's title.
        kind: ``"deletion"`` or ``"insertion"`` (names the x axis).
        fractions: (S+1,) x values.
        curves: method -> (S+1,) score values.
        random: (S+1,) the random map's values.
        score: the detection's score (a dotted reference line).
    """
    x = [100 * float(f) for f in fractions]
    figure = go.Figure()
    for k, (method, values) in enumerate(curves.items()):
        figure.add_trace(
            go.Scatter(
                x=x,
                y=list(values),
                mode="lines+markers",
                name=method,
                line={"color": COLOURS[k % len(COLOURS)], "width": 2},
                marker={"size": 4},
                hovertemplate=f"{method}<br>%{{x:.0f}}% of pixels<br>score %{{y:.3f}}"
                "<extra></extra>",
            )
        )
    figure.add_trace(
        go.Scatter(
            x=x,
            y=list(random),
            mode="lines",
            name="random map",
            line={"color": RANDOM_COLOUR, "width": 2, "dash": "dash"},
            hovertemplate="random<br>%{x:.0f}% of pixels<br>score %{y:.3f}<extra></extra>",
        )
    )
    figure.add_hline(y=score, line={"color": "#bbbbbb", "width": 1, "dash": "dot"})
    verb = "removed" if kind == "deletion" else "restored"
    figure.update_layout(
        title={"text": title, "font": {"size": 15}},
        xaxis_title=f"pixels {verb}, most important first (%)",
        yaxis_title="detection score",
        yaxis_range=[0, max(1.0, score * 1.05)],
        margin={"l": 10, "r": 10, "t": 40, "b": 10},
        height=340,
        legend={"orientation": "h", "y": -0.25},
    )
    return figure
