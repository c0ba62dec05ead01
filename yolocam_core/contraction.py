"""Gradient × activation summed over channels, for many targets at once, through a tail
of one spatial convolution.

ODAM and HiResCAM need, per target, only the channel-contracted map

    M(p) = sum_k A(p, k) · dS/dA(p, k)                                   (h, w)

never the gradient ``dS/dA`` itself. When the tail from the explained layer ``A`` to the
head is ``[zero padding] -> conv k×k (stride 1) -> ReLU-family activation -> 1×1 conv``
(every head of a Darknet YOLO model, explained at its neck output), the map factors as

    M(p) = sum_δ sum_f B(p, δ, f) · v(p − δ, f)
    B(p, δ, f) = sum_k A(p, k) · W[δ, k, f]          at the cells the targets reach
    v(q, f)    = φ'(z(q, f)) · sum_r W1[f, r] · dS/draw(q, r)   per target, at its cells

where ``W`` is the k×k kernel (``δ`` its offsets), ``z`` its output, ``φ`` the activation
and ``W1`` the 1×1 head. ``B`` does not depend on the target, and ``v`` is non-zero only
at the cells the target weighs, so N targets cost at most one convolution (``B`` is
needed only where some target's cells reach) plus N small products, instead of N
backward passes through the tail. The result is exact (the
chain rule written out); :func:`match_conv_tail` accepts only tails of that shape, and
the tests compare it with a tape through the tail.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import keras
import numpy as np

#: Activations whose derivative is read from the sign of their output (z > 0 iff
#: φ(z) > 0): the slope is 1 there and ``negative_slope`` elsewhere.
_RELU_FAMILY = {"LeakyReLU", "ReLU"}


@dataclass(frozen=True)
class ConvTail:
    """A tail ``[pad] -> conv k×k -> activation -> 1×1 head``, as arrays.

    Attributes:
        kernel: (kh, kw, K, F) float32, the spatial convolution's kernel.
        head: (F, R) float32, the 1×1 head's kernel.
        negative_slope: the activation's slope for z <= 0 (0 for ReLU, 1 for none).
        activation_layer: the layer whose output is φ(z) (the head's input), or None.
    """

    kernel: np.ndarray
    head: np.ndarray
    negative_slope: float
    activation_layer: str | None
    _matrix: np.ndarray | None = field(default=None, repr=False, compare=False)

    def slopes(self, activated: np.ndarray) -> np.ndarray:
        """φ'(z) from φ(z): (h, w, F) -> (h, w, F) float32."""
        return np.where(activated > 0, np.float32(1.0), np.float32(self.negative_slope))

    def basis(self, activations: np.ndarray) -> np.ndarray:
        """B(p, δ, f) = sum_k A(p, k) W[δ, k, f] at the given cells (one matrix product).

        Args:
            activations: A at m cells, (m, K).

        Returns:
            (m, kh·kw, F) float32.
        """
        kh, kw, _, f = self.kernel.shape
        flat = np.asarray(activations, np.float32) @ self._weights()
        return flat.reshape(len(activations), kh * kw, f)

    def _weights(self) -> np.ndarray:
        """The kernel as one (K, kh·kw·F) matrix, made once."""
        if self._matrix is None:
            kh, kw, k, f = self.kernel.shape
            matrix = self.kernel.reshape(kh * kw, k, f).transpose(1, 0, 2).reshape(k, kh * kw * f)
            object.__setattr__(self, "_matrix", np.ascontiguousarray(matrix))
        return self._matrix

    def maps(
        self,
        activations: np.ndarray,
        slopes: np.ndarray,
        rows: np.ndarray,
        cotangents: np.ndarray,
        count: int,
    ) -> np.ndarray:
        """Channel-contracted gradient × activation of N targets, from dS/draw at the
        cells they weigh.

        Sparse: ``v`` is computed only at those cells, and ``B`` only at the cells
        they reach through the kernel, so a few detections cost a few small products
        whatever the grid's size.

        Args:
            activations: A, (h, w, K).
            slopes: (h, w, F) from :meth:`slopes`.
            rows: (M, 2) int (target index, flat cell index y·w + x) of each row of
                ``cotangents``; dS/draw is zero at every other (target, cell).
            cotangents: (M, R) float32: dS/draw of that target at that cell.
            count: N, the number of targets.

        Returns:
            (N, h, w) float32, sum_k A · dS/dA (not clipped).
        """
        kh, kw, k, f = self.kernel.shape
        h, w, _ = activations.shape
        if not len(rows):
            return np.zeros((count, h, w), np.float32)
        target, cell = rows[:, 0], rows[:, 1]
        # v = φ'(z) · W1 c at the weighted cells q: (M, F)
        v = (cotangents @ self.head.T) * slopes.reshape(h * w, f)[cell]
        # z(q) reads A(q + δ): each weighted cell q adds v(q) · B(q + δ, δ) at p = q + δ
        dy, dx = np.divmod(np.arange(kh * kw), kw)
        py = cell[:, None] // w + (dy - kh // 2)[None, :]
        px = cell[:, None] % w + (dx - kw // 2)[None, :]
        inside = (py >= 0) & (py < h) & (px >= 0) & (px < w)
        row, offset = np.nonzero(inside)  # (pairs,)
        p = py[row, offset] * w + px[row, offset]
        needed, slot = np.unique(p, return_inverse=True)
        basis = self.basis(activations.reshape(h * w, k)[needed])  # (cells, kh·kw, F)
        values = np.empty(len(row), np.float32)
        for lo in range(0, len(row), _PAIRS):
            part = slice(lo, lo + _PAIRS)
            values[part] = np.einsum(
                "if,if->i", v[row[part]], basis[slot[part], offset[part]], optimize=False
            )
        out = np.bincount(target[row] * (h * w) + p, weights=values, minlength=count * h * w)
        return out.astype(np.float32).reshape(count, h, w)


#: (cell, offset) pairs contracted at a time in :meth:`ConvTail.maps` (bounds memory:
#: one chunk gathers pairs × F floats).
_PAIRS = 8192


def match_conv_tail(model: keras.Model, layers: tuple[str, ...]) -> ConvTail | None:
    """The :class:`ConvTail` of a tail's layers, or None when they have another shape.

    Args:
        model: the detector's Keras model.
        layers: the tail's layers in graph order, the head's 1×1 convolution last
            (:attr:`yolocam_core.tails.Tail.layers`, a tail without side inputs).
    """
    names = list(layers)
    if not names:
        return None
    get = model.get_layer
    head = get(names.pop())
    if not (_is_conv(head) and tuple(head.kernel_size) == (1, 1) and _linear(head)):
        return None
    activation, slope = None, 1.0
    if names and type(get(names[-1])).__name__ in _RELU_FAMILY:
        layer = get(names.pop())
        slope = _negative_slope(layer)
        if slope is None:
            return None
        activation = layer.name
    if not names:
        return None
    conv = get(names.pop())
    if not (_is_conv(conv) and _linear(conv)):
        return None
    kh, kw = conv.kernel_size
    if kh % 2 == 0 or kw % 2 == 0 or tuple(conv.strides) != (1, 1):
        return None
    if tuple(getattr(conv, "dilation_rate", (1, 1))) != (1, 1) or getattr(conv, "groups", 1) != 1:
        return None
    padded = conv.padding == "same"
    if names:  # an explicit zero padding of exactly (k − 1) / 2 on every side
        pad = get(names.pop())
        if type(pad).__name__ != "ZeroPadding2D" or conv.padding != "valid":
            return None
        (top, bottom), (left, right) = pad.padding
        padded = (top, bottom, left, right) == (kh // 2, kh // 2, kw // 2, kw // 2)
    if names or not padded:
        return None
    if activation is None and slope != 1.0:
        return None
    head_kernel = np.asarray(head.kernel.numpy(), np.float32)[0, 0]  # (F, R)
    return ConvTail(
        kernel=np.asarray(conv.kernel.numpy(), np.float32),
        head=head_kernel,
        negative_slope=float(slope),
        activation_layer=activation,
    )


def _is_conv(layer) -> bool:
    return type(layer) is keras.layers.Conv2D


def _linear(layer) -> bool:
    return getattr(layer, "activation", None) in (None, keras.activations.linear)


def _negative_slope(layer) -> float | None:
    """The slope of a ReLU-family layer for z <= 0, or None when it is not plain."""
    kind = type(layer).__name__
    if kind == "LeakyReLU":
        return float(layer.negative_slope)
    if kind == "ReLU":
        if layer.max_value is not None or float(layer.threshold) != 0.0:
            return None
        return float(layer.negative_slope)
    return None
