"""Eigen-CAM (Muhammad & Yeasin, 2020): gradient-free."""

from __future__ import annotations

import numpy as np

from yolocam_core.cams.base import CamMethod


class EigenCAM(CamMethod):
    """Eigen-CAM: the activations projected on their first principal component::

        X = A.reshape(h * w, K) - mean over locations        # centred columns
        v1 = first right-singular vector of X                # (K,)
        map = ReLU((X @ v1).reshape(h, w))                   # (h, w)

    It does not use gradients, so it is the same for every class and box: it shows
    what the layer is most strongly excited by, not why a given score is high.

    Departures from the paper: the columns are centred before the SVD, as
    pytorch-grad-cam does (the paper projects the raw activations). The SVD fixes
    ``v1`` only up to sign; the sign is chosen so the projection correlates
    positively with the channel-summed activation ``A.sum(-1)`` (if that correlation
    is exactly zero, so that ``v1`` sums to a non-negative value). When
    ``h * w > K``, ``v1`` is taken from the SVD of the (K, K) matrix ``X.T @ X``
    (same vector, much faster; it only loses precision when the first two singular
    values nearly tie, where ``v1`` is ill-defined anyway).

    Reference:
        Muhammad & Yeasin, "Eigen-CAM: Class Activation Map using Principal
        Components", IJCNN 2020, https://arxiv.org/abs/2008.00299
    """

    name = "eigencam"
    title = "Eigen-CAM"
    paper = "https://arxiv.org/abs/2008.00299"
    needs_gradients = False
    answers = "target-independent"
    note = (
        "Target-independent: the layer's first principal component, the same map for "
        "every box, class and score"
    )

    def compute(self, activations: np.ndarray, gradients: np.ndarray | None) -> np.ndarray:
        """Projection on the first principal component of the activations.

        Args:
            activations: ``A``, shape (h, w, K).
            gradients: ignored (may be ``None``).

        Returns:
            The map, shape (h, w), float32, not normalised.
        """
        acts, _ = self._prepare(activations, gradients)
        h, w, k = acts.shape
        flat = acts.reshape(h * w, k)
        centred = flat - flat.mean(axis=0, keepdims=True)
        # v1 is also the first singular vector of the (K, K) Gram matrix X^T X; when
        # h*w > K its SVD is far cheaper (52×52×256: ~80 ms against ~530 ms on 2 cores).
        gram_or_x = centred.T @ centred if h * w > k else centred
        _, _, vt = np.linalg.svd(gram_or_x, full_matrices=False)
        v1 = vt[0]
        projection = centred @ v1  # (h*w,), zero mean
        total = flat.sum(axis=1)
        agreement = float(projection @ (total - total.mean()))
        if agreement < 0 or (agreement == 0 and v1.sum() < 0):
            projection = -projection
        return self._finish(projection.reshape(h, w))
