"""Grad-CAM (Selvaraju et al., 2017)."""

from __future__ import annotations

import numpy as np

from yolocam_core.cams.base import CamMethod


class GradCAM(CamMethod):
    """Grad-CAM: channels weighted by their spatially averaged gradient::

        alpha_k = mean_{i,j} g[i, j, k]                      # (K,)
        map = ReLU(sum_k alpha_k * A[:, :, k])               # (h, w)

    Reference:
        Selvaraju et al., "Grad-CAM: Visual Explanations from Deep Networks via
        Gradient-based Localization", ICCV 2017, https://arxiv.org/abs/1610.02391
    """

    name = "gradcam"
    title = "Grad-CAM"
    paper = "https://arxiv.org/abs/1610.02391"
    answers = "class"
    note = "Class: regions that look like the target's class; every instance of it lights up"

    def channel_weights(self, activations: np.ndarray, gradients: np.ndarray | None) -> np.ndarray:
        """Spatial mean of the gradients (global average pooling).

        Args:
            activations: ``A``, shape (h, w, K).
            gradients: ``dS/dA``, shape (h, w, K).

        Returns:
            ``alpha``, shape (K,), float64.
        """
        _, grads = self._prepare(activations, gradients)
        return grads.mean(axis=(0, 1))
