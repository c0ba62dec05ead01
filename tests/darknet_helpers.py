"""Helpers shared by the Darknet tests: weights files written byte by byte, cfg edits,
and OpenCV DNN's Darknet importer as the reference implementation."""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np

# OpenCV's region layer zeroes class scores at or below this ("thresh", default 0.2).
OPENCV_SCORE_THRESH = 0.2


def weights_header(major: int = 0, minor: int = 2, revision: int = 0, seen: int = 0) -> bytes:
    """A Darknet weights header: three int32, then ``seen`` as int64 when
    ``major * 10 + minor >= 2`` (20 bytes), else as int32 (16 bytes)."""
    wide = major * 10 + minor >= 2
    return (
        np.array([major, minor, revision], "<i4").tobytes()
        + np.array([seen], "<i8" if wide else "<i4").tobytes()
    )


def weights_file(values: Sequence[np.ndarray], **header) -> bytes:
    """Header followed by ``values`` flattened, as little-endian float32."""
    body = b"".join(np.asarray(v, dtype="<f4").ravel().tobytes() for v in values)
    return weights_header(**header) + body


def random_weights(convs, rng: np.random.Generator, gain: float = 0.8, head_gain: float = 4.0):
    """Random Darknet weights for ``convs`` (``DarknetModel.convs``), in file order.

    Kernels are N(0, gain² / fan_in) for batch-normalised convolutions, so that deep
    residual stacks neither explode nor vanish, and N(0, head_gain² / fan_in) for the
    plain (head) convolutions, so the raw head outputs spread over about ±3 and both
    sides of OpenCV's class-score threshold are exercised. Batch-norm scales and
    variances are drawn from [0.5, 1.5] (variances must be positive).
    """
    parts = []
    for conv in convs:
        f = conv.filters
        fan_in = conv.in_channels * conv.size * conv.size
        if conv.batch_normalize:
            parts += [
                rng.normal(0.0, 0.1, f),  # beta (Darknet's "biases")
                rng.uniform(0.5, 1.5, f),  # gamma (Darknet's "scales")
                rng.normal(0.0, 0.1, f),  # rolling mean
                rng.uniform(0.5, 1.5, f),  # rolling variance
                rng.normal(0.0, gain / np.sqrt(fan_in), f * fan_in),
            ]
        else:
            parts += [
                rng.normal(0.0, 0.5, f),
                rng.normal(0.0, head_gain / np.sqrt(fan_in), f * fan_in),
            ]
    return weights_file(parts, major=0, minor=2, seen=32013312)


def resize_cfg(text: str, width: int, height: int) -> str:
    """The cfg text with ``[net]`` width/height replaced (everything else kept)."""
    text, n_w = re.subn(r"(?m)^\s*width\s*=.*$", f"width={width}", text, count=1)
    text, n_h = re.subn(r"(?m)^\s*height\s*=.*$", f"height={height}", text, count=1)
    assert n_w == n_h == 1, "cfg has no width=/height= line"
    return text


def opencv_forward(cfg: Path, weights: Path, batch_nhwc: np.ndarray) -> list[np.ndarray]:
    """OpenCV DNN's output per [yolo] layer, (H*W*A, 5+C) in (row, col, anchor) order."""
    net = cv2.dnn.readNetFromDarknet(str(cfg), str(weights))
    net.setInput(np.ascontiguousarray(batch_nhwc.transpose(0, 3, 1, 2), dtype=np.float32))
    return list(net.forward(net.getUnconnectedOutLayersNames()))


def opencv_as_decoded(outs: Sequence[np.ndarray], heads) -> list[tuple[np.ndarray, ...]]:
    """OpenCV's yolo outputs reshaped to our decoded layout (batch of one):
    boxes (1, H, W, A, 4), objectness (1, H, W, A), scores (1, H, W, A, C)."""
    decoded = []
    for out, head in zip(outs, heads, strict=True):
        h, w = head.grid
        grid = out.reshape(1, h, w, head.num_anchors, 5 + head.num_classes)
        decoded.append((grid[..., :4], grid[..., 4], grid[..., 5:]))
    return decoded


def assert_decoded_match(ours, theirs, atol: float = 1e-3, rtol: float = 0.0) -> None:
    """Boxes and objectness within tolerance; class scores within tolerance where
    OpenCV's are non-zero, and ours below OpenCV's threshold (+ atol) where they are zero."""
    assert len(ours) == len(theirs)
    for k, (mine, ref) in enumerate(zip(ours, theirs, strict=True)):
        (box, obj, score), (cv_box, cv_obj, cv_score) = mine, ref
        assert box.shape == cv_box.shape, f"head {k}: boxes {box.shape} vs {cv_box.shape}"
        np.testing.assert_allclose(box, cv_box, atol=atol, rtol=rtol, err_msg=f"head {k} boxes")
        np.testing.assert_allclose(obj, cv_obj, atol=atol, err_msg=f"head {k} objectness")
        kept = cv_score > 0
        assert kept.any(), f"head {k}: OpenCV zeroed every class score"
        np.testing.assert_allclose(
            score[kept], cv_score[kept], atol=atol, err_msg=f"head {k} class scores"
        )
        if (~kept).any():
            assert score[~kept].max() <= OPENCV_SCORE_THRESH + atol, (
                f"head {k}: a score OpenCV zeroed is {score[~kept].max()} in ours"
            )
