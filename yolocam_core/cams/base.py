"""The shared base of every CAM method.

A CAM method turns what the explainer captured at one layer — the activations ``A``
of shape (h, w, K) and the gradients ``g = dS/dA`` of the explained score ``S``, same
shape — into a raw (h, w) heatmap. Normalisation and resizing happen downstream.

Following pytorch-grad-cam, a method is a small subclass that overrides only what
differs from Grad-CAM's recipe: most override :meth:`CamMethod.channel_weights`;
methods that are not a channel-weighted sum override :meth:`CamMethod.compute`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, ClassVar

import numpy as np

from yolocam_core.errors import YolocamError

if TYPE_CHECKING:
    from yolocam_core.detector import Detector
    from yolocam_core.targets import Target

#: What a method's map answers (:attr:`CamMethod.answers`):
#: ``"class"``: which regions look like the target's class (every instance lights up);
#: ``"instance"``: which regions made this one prediction;
#: ``"target-independent"``: what the layer responds to, whatever the target;
#: ``"black-box"``: which image regions the detection needs, from the outputs alone.
ANSWERS = ("class", "instance", "target-independent", "black-box")


class CamMethod:
    """Base class of the CAM methods: one verb, :meth:`compute`.

    Attributes:
        name: registry key, e.g. ``"gradcam"``.
        title: human title, e.g. ``"Grad-CAM"``.
        paper: reference URL of the method.
        needs_gradients: whether :meth:`compute` reads ``gradients`` (``False`` lets
            the explainer skip the backward pass).
        apply_relu: whether the default :meth:`compute` clips the map at zero.
        answers: what question the map answers (one of :data:`ANSWERS`).
        note: one short sentence for menus: what the map shows and when to use it.
        black_box: computed from the model's outputs on perturbed images, not from
            activations and gradients (the explainer calls :meth:`explain_targets`).
        contracts: the map is ``ReLU(sum_k A · g)`` (see :meth:`from_contraction`).

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
    answers: ClassVar[str] = "class"
    note: ClassVar[str] = ""
    black_box: ClassVar[bool] = False
    #: The map is ``_finish(sum_k A · g)``: the explainer may hand it that sum directly
    #: (:meth:`from_contraction`), computed for many targets at once.
    contracts: ClassVar[bool] = False

    def from_contraction(self, contracted: np.ndarray) -> np.ndarray:
        """The map from ``sum_k A[:, :, k] * g[:, :, k]``, shape (h, w) (only for methods
        with :attr:`contracts`)."""
        if not self.contracts:
            raise NotImplementedError(f"{self.name} is not a channel-contracted product")
        return self._finish(np.asarray(contracted, np.float64))

    @property
    def target_independent(self) -> bool:
        """Whether the map is the same for every target (label it so wherever shown)."""
        return self.answers == "target-independent"

    def layers(self, detector: Detector, scale: int) -> tuple[str, ...]:
        """The layers this method explains at for head ``scale`` (expert ``layer=``
        overrides them): the head-input layer, ``heads[scale].cam_layer``, by default.
        Several layers are fused by :meth:`combine`."""
        return (detector.heads[scale].cam_layer,)

    def combine(self, maps: Sequence[np.ndarray]) -> np.ndarray:
        """One (h, w) map from the maps of :meth:`layers` (default: the only one)."""
        if len(maps) != 1:
            raise ValueError(f"{self.name} explains at one layer; got {len(maps)} maps")
        return maps[0]

    def check_target(self, target: Target) -> None:
        """Refuse a target this method cannot give a meaningful map of.

        Default (gradient methods that clip the map at zero): the whole-head-output
        target is refused; its score is a signed sum of raw values of every box,
        objectness and class, and ReLU blanks the map.

        Raises:
            YolocamError: saying what to use instead.
        """
        if self.apply_relu and self.needs_gradients and target.kind == "seed":
            raise YolocamError(
                f"{self.name} cannot explain the whole head output: that score has no sign "
                "(a sum of raw box, objectness and class values) and the map's ReLU blanks "
                "it; use method seed for the article's view, or a detection or class target "
                f"with {self.name}"
            )

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
