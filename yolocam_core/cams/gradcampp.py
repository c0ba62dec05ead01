"""Grad-CAM++ (Chattopadhay et al., 2018)."""

from __future__ import annotations

import numpy as np

from yolocam_core.cams.base import CamMethod

#: Added to the denominator of ``a_ij`` (the value pytorch-grad-cam uses).
EPS = 1e-6


class GradCAMPlusPlus(CamMethod):
    """Grad-CAM++: positive gradients weighted per location by ``a_ij``.

    The paper's ``a_ij`` needs second and third derivatives of the score. Like the
    paper (its Eq. 19) and pytorch-grad-cam, this uses the closed form that assumes
    the explained score is ``exp(S)``: then every higher derivative is a power of the
    first, and with ``g = dS/dA``::

        a_ij^k = g^2 / (2 g^2 + (sum_{a,b} A[a, b, k]) g^3 + eps),  0 where g == 0
        alpha_k = sum_{i,j} a_ij^k * ReLU(g[i, j, k])        # (K,)
        map = ReLU(sum_k alpha_k * A[:, :, k])               # (h, w)

    Departures from the paper: the gradients are those of ``S`` itself, not of
    ``exp(S)``; this drops a factor ``exp(S)`` common to all channels, so the map
    differs from the paper's only by a positive scale. ``eps = 1e-6`` keeps the
    denominator away from zero where ``g`` is tiny; as in pytorch-grad-cam the
    denominator can still vanish or turn negative where ``g`` < 0 or the channel sum
    is negative (leaky activations), which only matters where ``ReLU(g) > 0``.

    Reference:
        Chattopadhay et al., "Grad-CAM++: Generalized Gradient-based Visual
        Explanations for Deep Convolutional Networks", WACV 2018,
        https://arxiv.org/abs/1710.11063
    """

    name = "gradcam++"
    title = "Grad-CAM++"
    paper = "https://arxiv.org/abs/1710.11063"
    answers = "class"
    note = "Class: Grad-CAM with positive gradients weighted per location; every instance lights up"

    def channel_weights(self, activations: np.ndarray, gradients: np.ndarray | None) -> np.ndarray:
        """Closed-form Grad-CAM++ weights.

        Args:
            activations: ``A``, shape (h, w, K).
            gradients: ``dS/dA``, shape (h, w, K).

        Returns:
            ``alpha``, shape (K,), float64.
        """
        acts, grads = self._prepare(activations, gradients)
        grads_power_2 = grads**2
        grads_power_3 = grads_power_2 * grads
        sum_activations = acts.sum(axis=(0, 1))  # (K,)
        aij = grads_power_2 / (
            2 * grads_power_2 + sum_activations[None, None, :] * grads_power_3 + EPS
        )
        aij = np.where(grads != 0, aij, 0.0)
        return (aij * np.maximum(grads, 0.0)).sum(axis=(0, 1))
