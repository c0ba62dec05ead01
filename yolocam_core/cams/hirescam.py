"""HiResCAM (Draelos & Carin, 2020), the element-wise form ODAM uses for detectors."""

from __future__ import annotations

import numpy as np

from yolocam_core.cams.base import CamMethod


class HiResCAM(CamMethod):
    """HiResCAM: gradient times activation at every location, summed over channels::

        map = ReLU(sum_k g[:, :, k] * A[:, :, k])            # (h, w)

    Unlike Grad-CAM, the gradients are not averaged over space, so the map keeps
    which *locations* raised the score — what a detector's per-box score needs. ODAM
    (Zhao et al. 2023, https://arxiv.org/abs/2304.06118) uses this same element-wise
    product for object detectors.

    Departures from the paper: a ReLU is applied, as in Grad-CAM and
    pytorch-grad-cam, so the map shows only evidence that raises the score.

    Reference:
        Draelos & Carin, "Use HiResCAM instead of Grad-CAM for faithful explanations
        of convolutional neural networks", 2020, https://arxiv.org/abs/2011.08891
    """

    name = "hirescam"
    title = "HiResCAM"
    paper = "https://arxiv.org/abs/2011.08891"
    answers = "instance"
    contracts = True
    note = (
        "Instance, trivially: at the head-input layer a 1×1 head gives the detection's "
        "own cell only (use odam for a spatial map)"
    )

    def compute(self, activations: np.ndarray, gradients: np.ndarray | None) -> np.ndarray:
        """Element-wise gradient × activation, summed over channels.

        Args:
            activations: ``A``, shape (h, w, K).
            gradients: ``dS/dA``, shape (h, w, K).

        Returns:
            The map, shape (h, w), float32, not normalised.
        """
        acts, grads = self._prepare(activations, gradients)
        return self._finish((grads * acts).sum(axis=-1))
