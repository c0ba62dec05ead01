"""Gradient × activation summed over channels, for many targets at once, through a tail
of one spatial convolution.

ODAM and HiResCAM need, per target, only the channel-contracted map

    M(p) = sum_k A(p, k) · dS/dA(p, k)                                   (h, w)

never the gradient ``dS/dA`` itself. When the tail from the explained layer ``A`` to the
head is ``[zero padding] -> conv k×k (stride 1) -> ReLU-family activation -> 1×1 conv``
(every head of a Darknet YOLO model, explained at its neck output), the map factors as

    M(p) = sum_δ sum_f B(p, δ, f) · v(p − δ, f)
    B(p, δ, f) = sum_k A(p, k) · W[δ, k, f]          once per image: the conv's cost
    v(q, f)    = φ'(z(q, f)) · sum_r W1[f, r] · dS/draw(q, r)   per target, at its cells

where ``W`` is the k×k kernel (``δ`` its offsets), ``z`` its output, ``φ`` the activation
and ``W1`` the 1×1 head. ``B`` does not depend on the target, and ``v`` is non-zero only
at the cells the target weighs, so N targets cost one convolution plus N small
products instead of N backward passes through the tail. The result is exact (the
chain rule written out); :func:`match_conv_tail` accepts only tails of that shape, and
the tests compare it with a tape through the tail.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import keras
import numpy as np
import tensorflow as tf

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
    _matrix: tf.Tensor | None = field(default=None, repr=False, compare=False)

    def slopes(self, activated: np.ndarray) -> np.ndarray:
        """φ'(z) from φ(z): (h, w, F) -> (h, w, F) float32."""
        return np.where(activated > 0, np.float32(1.0), np.float32(self.negative_slope))

    def basis(self, activations: np.ndarray) -> np.ndarray:
        """B(p, δ, f) = sum_k A(p, k) W[δ, k, f] (one matrix product, in TensorFlow).

        Args:
            activations: A, (h, w, K).

        Returns:
            (h, w, kh·kw, F) float32.
        """
        kh, kw, k, f = self.kernel.shape
        h, w, _ = activations.shape
        flat = _matmul(activations.reshape(h * w, k), self._weights()).numpy()
        return flat.reshape(h, w, kh * kw, f)

    def _weights(self) -> tf.Tensor:
        """The kernel as one (K, kh·kw·F) matrix, made once."""
        if self._matrix is None:
            kh, kw, k, f = self.kernel.shape
            matrix = self.kernel.reshape(kh * kw, k, f).transpose(1, 0, 2).reshape(k, kh * kw * f)
            object.__setattr__(self, "_matrix", tf.constant(matrix))
        return self._matrix

    def maps(self, basis: np.ndarray, slopes: np.ndarray, cotangents: np.ndarray) -> np.ndarray:
        """Channel-contracted gradient × activation of N targets.

        Args:
            basis: (h, w, kh·kw, F) from :meth:`basis`.
            slopes: (h, w, F) from :meth:`slopes`.
            cotangents: (N, h, w, R) float32: dS/draw of each target.

        Returns:
            (N, h, w) float32, sum_k A · dS/dA (not clipped).
        """
        kh, kw, _, f = self.kernel.shape
        n, h, w, _ = cotangents.shape
        # v = φ'(z) · W1 c, only at the cells some target weighs
        rows = np.flatnonzero(np.any(cotangents.reshape(n * h * w, -1) != 0, axis=1))
        v = np.zeros((n * h * w, f), np.float32)
        if rows.size:
            cells = rows % (h * w)
            v[rows] = (cotangents.reshape(n * h * w, -1)[rows] @ self.head.T) * slopes.reshape(
                h * w, f
            )[cells]
        v = v.reshape(n, h, w, f)
        out = np.zeros((n, h, w), np.float32)
        cy, cx = kh // 2, kw // 2
        for i in range(kh):
            for j in range(kw):
                dy, dx = i - cy, j - cx  # z(q) reads A(q + δ): A(p) feeds z(p − δ)
                shifted = _shift(v, dy, dx)  # shifted[p] = v[p − δ]
                out += np.einsum("nhwf,hwf->nhw", shifted, basis[:, :, i * kw + j, :])
        return out


@tf.function(
    input_signature=[
        tf.TensorSpec((None, None), tf.float32),
        tf.TensorSpec((None, None), tf.float32),
    ],
    autograph=False,
)
def _matmul(a: tf.Tensor, b: tf.Tensor) -> tf.Tensor:
    return tf.matmul(a, b)


def _shift(values: np.ndarray, dy: int, dx: int) -> np.ndarray:
    """``out[:, y, x] = values[:, y − dy, x − dx]`` (zero where that lies outside)."""
    out = np.zeros_like(values)
    _, h, w, _ = values.shape
    ys, yd = (slice(0, h - dy), slice(dy, h)) if dy >= 0 else (slice(-dy, h), slice(0, h + dy))
    xs, xd = (slice(0, w - dx), slice(dx, w)) if dx >= 0 else (slice(-dx, w), slice(0, w + dx))
    out[:, yd, xd] = values[:, ys, xs]
    return out


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
