"""Darknet ``.weights``: header, size check, finite check, and porting into Keras layers.

File layout: a header (major, minor, revision as int32, then ``seen`` as int64 when
``major * 10 + minor >= 2``, else int32), then per convolution in cfg order: biases
(F), with batch norm also scales, rolling means and rolling variances (F each), then
the kernel (F, C, k, k), all float32 little-endian.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from yolocam_core.errors import WeightsError
from yolocam_core.models.darknet.build import DarknetModel
from yolocam_core.models.darknet.sections import ConvSpec
from yolocam_core.models.files import check_regular_file

# Darknet's batch-norm epsilon (normalize_cpu: sqrt(variance + .000001f)); OpenCV's too.
BN_EPSILON = 1e-6

HEADER_BYTES_32 = 16
HEADER_BYTES_64 = 20


def read_weights_header(data: bytes) -> tuple[tuple[int, int, int], int, int]:
    """Read a Darknet weights header.

    Returns:
        ((major, minor, revision), seen, header_bytes). ``seen`` is 64-bit when
        ``major * 10 + minor >= 2`` (as Darknet's ``load_weights``), else 32-bit.

    Raises:
        WeightsError: too short, or negative version numbers (not a Darknet file).
    """
    if len(data) < 12:
        raise WeightsError(
            f"weights file is {len(data)} bytes: too short to hold a Darknet header (≥ 16 bytes)"
        )
    major, minor, revision = (int(v) for v in np.frombuffer(data[:12], dtype="<i4"))
    if min(major, minor, revision) < 0:
        raise WeightsError(
            f"the file does not start with a Darknet weights header (its version would be "
            f"{major}.{minor}.{revision}); is it a Darknet .weights file?"
        )
    header = _header_bytes(major, minor)
    if len(data) < header:
        raise WeightsError(
            f"weights file is {len(data)} bytes, shorter than its {header}-byte header"
        )
    seen = int(np.frombuffer(data[12:header], dtype="<i8" if header == 20 else "<i4")[0])
    return (major, minor, revision), seen, header


def _header_bytes(major: int, minor: int) -> int:
    wide = major * 10 + minor >= 2 and major < 1000 and minor < 1000
    return HEADER_BYTES_64 if wide else HEADER_BYTES_32


def expected_bytes(convs: list[ConvSpec], header: int) -> int:
    """Size of a weights file for these convolutions after a ``header``-byte header."""
    return header + 4 * sum(c.num_values for c in convs)


def check_size(convs: list[ConvSpec], header_data: bytes, size: int) -> int:
    """Check a weights file's size against the convolutions it must fill.

    Args:
        convs: the model's convolutions, in file order.
        header_data: the file's first 20 bytes (or all of it, if shorter).
        size: the file's size in bytes.

    Returns:
        The header's size in bytes.

    Raises:
        WeightsError: the size is not what the cfg needs; expected and actual bytes
            are named, and a header whose version gives the wrong header size is said.
    """
    (major, minor, revision), _, header = read_weights_header(header_data)
    expected = expected_bytes(convs, header)
    if size == expected:
        return header
    problem = "too short" if size < expected else "too long"
    other = HEADER_BYTES_32 if header == HEADER_BYTES_64 else HEADER_BYTES_64
    hint = (
        f" Its header says version {major}.{minor}.{revision} ({header}-byte header), but "
        f"the size would fit a {other}-byte header: the version may be wrong."
        if size == expected_bytes(convs, other)
        else ""
    )
    raise WeightsError(
        f"weights file is {problem} for this cfg: expected {expected:,} bytes "
        f"({header}-byte header + {len(convs)} convolutions), got {size:,} bytes.{hint} "
        "Check that the .weights file belongs to this .cfg (same classes and filters)."
    )


def check_weights_file(path: str | Path, convs: list[ConvSpec]) -> None:
    """Check a weights file's kind and size before the model is built (see
    :func:`check_size`); reads only its header."""
    path = Path(path)
    size = check_regular_file(path, "weights file")
    try:
        with open(path, "rb") as handle:
            head = handle.read(HEADER_BYTES_64)
    except OSError as exc:
        raise WeightsError(f"cannot read {path}: {exc.strerror or exc}") from None
    check_size(convs, head, size)


def port_convolution(conv: ConvSpec, values: np.ndarray) -> list[np.ndarray]:
    """One convolution's file values -> [kernel (k, k, C, F), bias (F,)] for Keras, with
    batch norm folded in: ``kernel · γ/√(var + ε)`` and ``β − mean · γ/√(var + ε)``."""
    f, k = conv.filters, conv.size
    bias = values[:f].astype(np.float32)
    pos = f
    if conv.batch_normalize:
        gamma, mean, var = values[f : 2 * f], values[2 * f : 3 * f], values[3 * f : 4 * f]
        pos = 4 * f
    kernel = values[pos:].reshape(f, conv.in_channels, k, k).transpose(2, 3, 1, 0)
    if conv.batch_normalize:
        negative = int(np.count_nonzero(var + BN_EPSILON <= 0))
        if negative:
            raise WeightsError(
                f"{conv.layer_name}: {negative} of its {f} batch-norm variances are negative: "
                "these are not Darknet weights for this cfg, or the file is damaged"
            )
        with np.errstate(over="ignore", invalid="ignore"):  # said below, not warned
            factor = gamma / np.sqrt(var + BN_EPSILON)
            kernel = kernel * factor
            bias = bias - mean * factor
    if not (np.isfinite(kernel).all() and np.isfinite(bias).all()):
        raise WeightsError(
            f"{conv.layer_name}: folding its batch norm overflows float32: these are not "
            "Darknet weights for this cfg, or the file is damaged"
        )
    return [np.ascontiguousarray(kernel, dtype=np.float32), bias.astype(np.float32)]


def load_weights(built: DarknetModel, weights: bytes | str | Path) -> None:
    """Fill a built model with Darknet weights, folding batch norm into each convolution.

    Args:
        built: from :func:`~yolocam_core.models.darknet.build.build_model`.
        weights: the ``.weights`` file's bytes or path.

    Raises:
        WeightsError: the file is shorter or longer than the cfg needs (the message
            states expected and actual bytes), holds NaN or infinite values, or values
            no trained model has (a negative batch-norm variance, a folded weight that
            overflows float32).
    """
    data = weights if isinstance(weights, bytes) else Path(weights).read_bytes()
    header = check_size(built.convs, data[:HEADER_BYTES_64], len(data))
    values = np.frombuffer(data, dtype="<f4", offset=header)
    finite = np.isfinite(values)
    if not finite.all():
        bad = int(values.size - np.count_nonzero(finite))
        raise WeightsError(
            f"{bad:,} of its {values.size:,} values are not finite numbers (NaN or "
            "infinity): the file is damaged, or its training diverged"
        )
    pos = 0
    for conv in built.convs:
        layer = built.model.get_layer(conv.layer_name)
        layer.set_weights(port_convolution(conv, values[pos : pos + conv.num_values]))
        pos += conv.num_values
