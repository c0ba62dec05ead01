"""ODAM (Zhao & Chan, ICLR 2023): instance-specific gradient × activation maps.

Which layer, per head of the default model (yolov4-tiny), and why:

- 13×13 head: ``conv_27_leaky`` (the 1×1 convolution with 256 channels that feeds the
  head's 3×3 convolution ``conv_28`` and, through ``conv_32`` and the upsampling, the
  26×26 branch).
- 26×26 head: ``route_34`` (the 384-channel concatenation of the upsampled 13×13
  branch and ``conv_23_leaky``), the input of the head's 3×3 convolution ``conv_35``.

Both are the neck output the head's tail reads, found from the graph for any model
(:func:`neck_layer`): after the head's spatial convolution (the Grad-CAM family's
head-input layer) a 1×1 head gives one prediction's gradient at its own cell only;
before it, the gradient spreads over the 3×3 convolution's reach. This is the layer the
paper uses for FCOS (the FPN level that predicted the box, ahead of the head's
convolutions). Deeper layers and fusion (``ODAM(layers=...)``) were measured with
``bench/eval_methods.py``; the numbers, and why the default stays here, are in the
class docstring.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

import cv2
import numpy as np

from yolocam_core.cams.hirescam import HiResCAM
from yolocam_core.errors import YolocamError

if TYPE_CHECKING:
    from yolocam_core.detector import Detector

#: How the maps of several layers are fused (see :meth:`ODAM.combine`).
FUSIONS = ("sum", "max")


def neck_layer(detector: Detector, scale: int) -> str:
    """The layer ODAM explains at by default for head ``scale``: walking back from the
    head output, the input of the head's first spatial layer (the neck output its
    tail reads), found from the graph for any model.

    For yolov4-tiny: ``conv_27_leaky`` for the 13×13 head (the 1×1 conv with 256
    channels that feeds its 3×3 convolution and the 26×26 branch), ``route_34`` for
    the 26×26 head (the 384-channel concatenation before its 3×3 convolution).
    """
    from yolocam_core.tails import spatial_layers_before_head

    return spatial_layers_before_head(detector.keras_model, detector.heads[scale].output_name)[-1]


class ODAM(HiResCAM):
    """ODAM: one prediction's gradient times the activations, summed over channels::

        map_l = ReLU(sum_k g_l[:, :, k] * A_l[:, :, k])      # (h_l, w_l) per layer l
        map   = fuse(map_l / max(map_l) over the layers)     # one layer: map_l itself

    at feature maps where one prediction's gradient spreads spatially: the neck
    output the head reads, i.e. the input of the head's first spatial convolution
    (:func:`neck_layer`; after it, a 1×1 head sees only the prediction's own cell).
    With several layers, each map is resized (bilinearly) to the finest layer's grid,
    divided by its maximum and fused by ``"sum"`` or ``"max"``; a Gaussian of
    ``sigma`` cells then smooths the fused map (0: none).

    Measured (``bench/eval_methods.py``, yolov4-tiny, 20 detections >= 0.5 on 7
    photos, own scale; ρ: Spearman with the map after Adebayo's cascade, i.e. every
    layer from the explained layer to the head re-initialised)::

        layers (13×13 / 26×26 head)       PG   inst  ρ cascade  ρ last-two  ρ D-RISE
        neck: conv_27_leaky / route_34   1.00  0.95    0.50       0.66       0.19
        conv_26_leaky / conv_23_leaky    1.00  0.95    0.43       0.56       0.19
        route_16 / route_16 (52×52)      0.95  0.90    0.40       0.41       0.16
        neck + route_16, summed          1.00  0.95    0.58       0.61       0.22
        (Grad-CAM at the head input      0.80  0.80   -0.05       0.07       0.14)

    Smoothing (σ = 1 cell) raised ρ to 0.94–0.98 (it spreads the same fixed support),
    fusion with the neck kept its fixed 3×3 support on top, and deeper layers lowered
    ρ only slowly (0.33 at 104×104, on 6 detections) while costing a backward through
    most of the network per detection. Inside the union of the two maps' supports ρ is
    −0.13 at the neck: the positive ρ comes from the cells both maps leave at zero,
    which the head's 3×3 reach fixes. The neck is the default: the best pointing and
    instance rates, better agreement with D-RISE than Grad-CAM, the cheapest; its ρ
    does not pass the < 0.3 bar.

    Departures from the paper: the authors' code (``tools/savefig_odam.py``) explains
    each prediction at the FPN level that predicted it, with no smoothing and no
    fusion; for other scales of a detection, the target here is the attribute of the
    prediction there that best matches its box (see
    :class:`~yolocam_core.targets.DetectionTarget`), so every head gets a map.

    Args:
        layers: {scale: layer names} to explain at instead of :func:`neck_layer`
            (several names are fused).
        fuse: ``"sum"`` or ``"max"`` of the max-normalised per-layer maps.
        sigma: Gaussian smoothing of the (fused) map, in cells of its grid; 0 = none.

    Reference:
        Zhao & Chan, "ODAM: Gradient-based Instance-Specific Visual Explanations for
        Object Detection", ICLR 2023, https://arxiv.org/abs/2304.06354
    """

    name = "odam"
    title = "ODAM"
    paper = "https://arxiv.org/abs/2304.06354"
    answers = "instance"
    contracts = True
    note = (
        "Instance: which regions made this one prediction (gradient × activation at the "
        "neck output); other boxes of the same class stay dark"
    )

    def __init__(
        self,
        layers: Mapping[int, Sequence[str]] | None = None,
        fuse: str = "sum",
        sigma: float = 0.0,
    ):
        if fuse not in FUSIONS:
            raise YolocamError(f"fuse must be one of {', '.join(FUSIONS)}; got {fuse!r}")
        if not float(sigma) >= 0.0:
            raise YolocamError(f"sigma must be >= 0 (cells); got {sigma!r}")
        self._layers = {int(k): tuple(v) for k, v in (layers or {}).items()}
        for scale, names in self._layers.items():
            if not names:
                raise YolocamError(f"layers for scale {scale} is empty")
        self.fuse = fuse
        self.sigma = float(sigma)

    def __repr__(self) -> str:
        return f"ODAM(layers={self._layers or None}, fuse={self.fuse!r}, sigma={self.sigma})"

    def layers(self, detector: Detector, scale: int) -> tuple[str, ...]:
        if scale in self._layers:
            return self._layers[scale]
        return (neck_layer(detector, scale),)

    # compute(): HiResCAM's element-wise gradient × activation, summed over channels,
    # for one layer; ODAM differs in the layers it explains at and in fusing them.

    def combine(self, maps: Sequence[np.ndarray]) -> np.ndarray:
        """Fuse per-layer maps (see the class docstring) and smooth.

        Args:
            maps: one (h_l, w_l) map per layer, in the order of :meth:`layers`.

        Returns:
            (h, w) float32 on the finest layer's grid.
        """
        if not maps:
            raise ValueError("no maps to combine")
        if len(maps) == 1:
            fused = np.asarray(maps[0], np.float32)
        else:
            shape = max((m.shape for m in maps), key=lambda s: s[0] * s[1])
            parts = []
            for m in maps:
                m = np.asarray(m, np.float32)
                if m.shape != shape:
                    m = cv2.resize(m, (shape[1], shape[0]), interpolation=cv2.INTER_LINEAR)
                peak = float(m.max())
                parts.append(m / peak if peak > 0 else m)
            fused = np.sum(parts, axis=0) if self.fuse == "sum" else np.maximum.reduce(parts)
        if self.sigma > 0:
            fused = cv2.GaussianBlur(fused, (0, 0), self.sigma, borderType=cv2.BORDER_CONSTANT)
        return fused.astype(np.float32)
