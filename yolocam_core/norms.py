"""How a map's values become colours: the normalisations, in one light module (no
TensorFlow), so that the command line and the batch settings check them as the
explainer does."""

from __future__ import annotations

#: ``"auto"`` is ``"shared"`` for the class score and objectness of detection and class
#: targets (one colour scale for every scale: a weak scale looks faint, scales compare
#: honestly) and ``"per-map"`` for the article's whole-output target and for box
#: coordinates (scores with no common unit); ``"per-map"`` stretches each map to its
#: own range (the article's view), ``"shared"`` divides every map by the largest.
NORMS = ("auto", "per-map", "shared")


def check_norm(norm: str) -> str:
    """``norm`` if it is one of :data:`NORMS`.

    Raises:
        ValueError: another value (the message lists the accepted ones).
    """
    if norm not in NORMS:
        raise ValueError(f"norm must be one of {', '.join(NORMS)}; got {norm!r}")
    return norm
