"""The seed article's Grad-CAM variant (guided gradients, no ReLU)."""

from __future__ import annotations

import numpy as np

from yolocam_core.cams.base import CamMethod


class SeedCAM(CamMethod):
    """Grad-CAM exactly as the article this project started from computes it.

    The article (a Medium post applying Grad-CAM to YOLOv3-MobileNetV2) keeps only
    gradients that are positive where the activation is positive ("guided"
    gradients), averages them over space, and does not clip the map::

        guided = (A > 0) * (g > 0) * g                       # (h, w, K)
        alpha_k = mean_{i,j} guided[i, j, k]                 # (K,)
        map = sum_k alpha_k * A[:, :, k]                     # (h, w), no ReLU

    Its min–max normalisation is done downstream, like every method's.

    Departures from the article: its map starts from ``np.ones`` (``+1`` at every
    location); that constant vanishes under min–max normalisation, so it is left out.

    Reference:
        The article's method is a variant of Grad-CAM,
        https://arxiv.org/abs/1610.02391 (the article itself has no paper).
    """

    name = "seed"
    title = "Seed (article's Grad-CAM)"
    paper = "https://arxiv.org/abs/1610.02391"
    apply_relu = False
    answers = "class"
    note = (
        "The article's view: guided-gradient Grad-CAM without ReLU, for any target "
        "including the whole head output"
    )

    def channel_weights(self, activations: np.ndarray, gradients: np.ndarray | None) -> np.ndarray:
        """Spatial mean of the guided gradients.

        Args:
            activations: ``A``, shape (h, w, K).
            gradients: ``dS/dA``, shape (h, w, K).

        Returns:
            ``alpha``, shape (K,), float64.
        """
        acts, grads = self._prepare(activations, gradients)
        guided = (acts > 0) * (grads > 0) * grads
        return guided.mean(axis=(0, 1))
