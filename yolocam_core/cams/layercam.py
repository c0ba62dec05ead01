"""LayerCAM (Jiang et al., 2021)."""

from __future__ import annotations

import numpy as np

from yolocam_core.cams.base import CamMethod


class LayerCAM(CamMethod):
    """LayerCAM: positive gradients as per-location weights of the activations::

        map = ReLU(sum_k ReLU(g[:, :, k]) * A[:, :, k])      # (h, w)

    Departures from the paper: the paper rescales maps from shallow layers with
    ``tanh(gamma * M / max(M))`` (gamma = 2) before fusing several layers; here
    each layer's map is returned as is (no rescaling, no fusion).

    Reference:
        Jiang et al., "LayerCAM: Exploring Hierarchical Class Activation Maps for
        Localization", IEEE TIP 2021, http://mftp.mmcheng.net/Papers/21TIP_LayerCAM.pdf
    """

    name = "layercam"
    title = "LayerCAM"
    paper = "http://mftp.mmcheng.net/Papers/21TIP_LayerCAM.pdf"
    answers = "instance"
    note = (
        "Instance, trivially: positive gradients × activations; at the head-input layer "
        "only the detection's own cell (use odam for a spatial map)"
    )

    def compute(self, activations: np.ndarray, gradients: np.ndarray | None) -> np.ndarray:
        """Element-wise ReLU(gradient) × activation, summed over channels.

        Args:
            activations: ``A``, shape (h, w, K).
            gradients: ``dS/dA``, shape (h, w, K).

        Returns:
            The map, shape (h, w), float32, not normalised.
        """
        acts, grads = self._prepare(activations, gradients)
        return self._finish((np.maximum(grads, 0.0) * acts).sum(axis=-1))
