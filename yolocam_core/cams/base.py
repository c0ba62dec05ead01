"""The shared base of every CAM method.

A CAM method turns what the explainer captured at one layer — the activations ``A``
of shape (h, w, K) and the gradients ``g = dS/dA`` of the explained score ``S``, same
shape — into a raw (h, w) heatmap. Normalisation and resizing happen downstream.

Following pytorch-grad-cam, a method is a small subclass that overrides only what
differs from Grad-CAM's recipe: most override :meth:`CamMethod.channel_weights`;
methods that are not a channel-weighted sum override :meth:`CamMethod.compute`.
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np


class CamMethod:
    """Base class of the CAM methods: one verb, :meth:`compute`.

    Attributes:
        name: registry key, e.g. ``"gradcam"``.
        title: human title, e.g. ``"Grad-CAM"``.
        paper: reference URL of the method.
        needs_gradients: whether :meth:`compute` reads ``gradients`` (``False`` lets
            the explainer skip the backward pass).
        apply_relu: whether the default :meth:`compute` clips the map at zero.

    Example:
        >>> import numpy as np
        >>> from yolocam_core.cams import get_method
        >>> acts = np.ones((13, 13, 256), np.float32)
        >>> grads = np.full((13, 13, 256), 0.01, np.float32)
        >>> get_method("gradcam").compute(acts, grads).shape
        (13, 13)
    """

    name: ClassVar[str]
    title: ClassVar[str]
    paper: ClassVar[str]
    needs_gradients: ClassVar[bool] = True
    apply_relu: ClassVar[bool] = True

    def channel_weights(self, activations: np.ndarray, gradients: np.ndarray | None) -> np.ndarray:
        """Importance of each channel.

        Args:
            activations: ``A``, shape (h, w, K).
            gradients: ``dS/dA``, shape (h, w, K).

        Returns:
            Weights ``alpha``, shape (K,), float64.
        """
        raise NotImplementedError(
            f"{type(self).__name__} ({self.name!r}) weights each location, not each "
            "channel; call compute() instead of channel_weights()"
        )

    def compute(self, activations: np.ndarray, gradients: np.ndarray | None) -> np.ndarray:
        """Raw heatmap at the layer's resolution.

        Default recipe: ``sum_k alpha_k * A[:, :, k]`` with ``alpha`` from
        :meth:`channel_weights`, then ReLU if :attr:`apply_relu`.

        Args:
            activations: ``A``, shape (h, w, K), any real dtype (no batch axis).
            gradients: ``dS/dA``, shape (h, w, K); ignored (may be ``None``) when
                :attr:`needs_gradients` is ``False``.

        Returns:
            The map, shape (h, w), float32, not normalised.

        Raises:
            ValueError: ``activations`` is not 3-D, or ``gradients`` is missing or
                has another shape.
        """
        acts, grads = self._prepare(activations, gradients)
        cam = acts @ self.channel_weights(acts, grads)
        return self._finish(cam)

    # Helpers for subclasses -----------------------------------------------------

    def _prepare(
        self, activations: np.ndarray, gradients: np.ndarray | None
    ) -> tuple[np.ndarray, np.ndarray | None]:
        """Validate the inputs and return them as float64 arrays (no copy if already).

        Returns ``gradients`` as ``None`` when the method does not need them.
        """
        acts = np.asarray(activations, dtype=np.float64)
        if acts.ndim != 3:
            raise ValueError(
                f"{self.name}: activations must have shape (h, w, K), got shape "
                f"{acts.shape}; drop the batch axis (e.g. pass acts[0])"
            )
        if not self.needs_gradients:
            return acts, None
        if gradients is None:
            raise ValueError(
                f"{self.name}: needs the gradients of the score with respect to the "
                "activations, got None"
            )
        grads = np.asarray(gradients, dtype=np.float64)
        if grads.shape != acts.shape:
            raise ValueError(
                f"{self.name}: gradients must have the activations' shape {acts.shape}, "
                f"got shape {grads.shape}"
            )
        return acts, grads

    def _finish(self, cam: np.ndarray) -> np.ndarray:
        """ReLU (if :attr:`apply_relu`) and cast to float32."""
        if self.apply_relu:
            cam = np.maximum(cam, 0.0)
        return cam.astype(np.float32)

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"
