"""Drawing: heatmap -> colour overlay, boxes and labels, side-by-side sheets.

All images are (H, W, 3) uint8 RGB; heatmaps are (H, W) float in [0, 1].
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache

import cv2
import numpy as np
from PIL import Image, ImageDraw, ImageFont

COLORMAPS = {
    "jet": cv2.COLORMAP_JET,
    "turbo": cv2.COLORMAP_TURBO,
    "viridis": cv2.COLORMAP_VIRIDIS,
}

# Distinct box colours (RGB), one per class id modulo the list.
PALETTE = (
    (230, 25, 75),
    (60, 180, 75),
    (255, 225, 25),
    (0, 130, 200),
    (245, 130, 48),
    (145, 30, 180),
    (70, 240, 240),
    (240, 50, 230),
    (210, 245, 60),
    (250, 190, 212),
)
TARGET_COLOUR = (255, 255, 255)


def colorize(heatmap: np.ndarray, colormap: str = "jet") -> np.ndarray:
    """(H, W) values in [0, 1] -> (H, W, 3) uint8 RGB through a colour map.

    Args:
        heatmap: the map; values outside [0, 1] are clipped.
        colormap: ``"jet"`` (the article's), ``"turbo"`` or ``"viridis"``.
    """
    if colormap not in COLORMAPS:
        raise ValueError(f"unknown colormap {colormap!r}; choose one of {', '.join(COLORMAPS)}")
    levels = np.uint8(np.clip(np.nan_to_num(heatmap), 0.0, 1.0) * 255.0 + 0.5)
    bgr = cv2.applyColorMap(levels, COLORMAPS[colormap])
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


def overlay(
    image: np.ndarray, heatmap: np.ndarray, colormap: str = "jet", opacity: float = 0.5
) -> np.ndarray:
    """Blend a coloured heatmap over the image.

    Args:
        image: (H, W, 3) uint8 RGB.
        heatmap: (H, W) in [0, 1], same size as the image.
        colormap: see :func:`colorize`.
        opacity: weight of the heatmap, 0 (image only) to 1 (heatmap only).

    Returns:
        (H, W, 3) uint8 RGB.
    """
    if heatmap.shape != image.shape[:2]:
        raise ValueError(f"heatmap shape {heatmap.shape} differs from image {image.shape[:2]}")
    if not 0.0 <= opacity <= 1.0:
        raise ValueError(f"opacity must lie in [0, 1], got {opacity}")
    return cv2.addWeighted(colorize(heatmap, colormap), opacity, image, 1.0 - opacity, 0.0)


# A font with "×" and "·"; Pillow's built-in font has neither, so it is the fallback.
_FONT_FILES = (
    "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/dejavu/DejaVuSans.ttf",
    "DejaVuSans.ttf",
)


@lru_cache(maxsize=8)
def _font(size: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    for path in _FONT_FILES:
        try:
            return ImageFont.truetype(path, size)
        except OSError:
            continue
    return ImageFont.load_default(size=size)


def _drawable(text: str, font) -> str:
    """Replace the characters the built-in fallback font cannot draw."""
    if isinstance(font, ImageFont.FreeTypeFont) and "DejaVu" in (font.getname()[0] or ""):
        return text
    return text.replace("×", "x").replace("·", "-")


def _line_width(image: np.ndarray) -> int:
    return max(2, round(max(image.shape[:2]) / 400))


def draw_boxes(
    image: np.ndarray,
    boxes: Sequence[tuple[float, float, float, float]],
    labels: Sequence[str] | None = None,
    colours: Sequence[tuple[int, int, int]] | None = None,
) -> np.ndarray:
    """Draw boxes (x1, y1, x2, y2 in pixels) with optional labels; returns a copy."""
    canvas = Image.fromarray(image)
    draw = ImageDraw.Draw(canvas)
    width = _line_width(image)
    font = _font(max(12, width * 7))
    for k, box in enumerate(boxes):
        colour = tuple(colours[k]) if colours else TARGET_COLOUR
        x1, y1, x2, y2 = (float(v) for v in box)
        draw.rectangle((x1, y1, x2, y2), outline=colour, width=width)
        if labels and labels[k]:
            label = _drawable(labels[k], font)
            left, top, right, bottom = draw.textbbox((0, 0), label, font=font)
            tw, th = right - left, bottom - top
            ty = y1 - th - 2 * width if y1 - th - 2 * width >= 0 else y1
            draw.rectangle((x1, ty, x1 + tw + 2 * width, ty + th + 2 * width), fill=colour)
            text_colour = (0, 0, 0) if sum(colour) > 382 else (255, 255, 255)
            draw.text((x1 + width - left, ty + width - top), label, fill=text_colour, font=font)
    return np.asarray(canvas)


def draw_detections(image: np.ndarray, detections, labels: Sequence[str] | None = None):
    """Boxes of detections, coloured by class, labelled ``"person 0.99"`` by default."""
    labels = labels or [f"{d.class_name} {d.score:.2f}" for d in detections]
    colours = [PALETTE[d.class_id % len(PALETTE)] for d in detections]
    return draw_boxes(image, [d.box_xyxy for d in detections], labels, colours)


def explanation_overlays(
    image: np.ndarray, explanation, colormap: str = "jet", opacity: float = 0.5
) -> list[np.ndarray]:
    """One overlay per explained scale, with the target's box drawn if it has one."""
    panels = []
    for scale_map in explanation.maps:
        panel = overlay(image, scale_map.heatmap, colormap, opacity)
        if explanation.box_xyxy is not None:
            panel = draw_boxes(panel, [explanation.box_xyxy])
        panels.append(panel)
    return panels


def text_bar(text: str, width: int, height: int, centred: bool = True) -> np.ndarray:
    """A white (height, width, 3) bar with one line of dark text."""
    font = _font(max(12, round(height * 0.55)))
    bar = Image.new("RGB", (width, height), (255, 255, 255))
    draw = ImageDraw.Draw(bar)
    text = _drawable(text, font)
    left, top, right, bottom = draw.textbbox((0, 0), text, font=font)
    x = (width - (right - left)) / 2 - left if centred else 8 - left
    draw.text((x, (height - (bottom - top)) / 2 - top), text, fill=(20, 20, 20), font=font)
    return np.asarray(bar)


def titled(panel: np.ndarray, title: str, height: int = 360) -> np.ndarray:
    """Scale a panel to ``height`` pixels and put a centred title bar above it."""
    width = max(1, round(panel.shape[1] * height / panel.shape[0]))
    body = cv2.resize(panel, (width, height), interpolation=cv2.INTER_AREA)
    return np.vstack([text_bar(title, width, max(24, height // 10)), body])


def sheet(
    image: np.ndarray,
    explanation,
    colormap: str = "jet",
    opacity: float = 0.5,
    height: int = 360,
    caption: str | None = None,
) -> np.ndarray:
    """All scales of an explanation side by side, each titled ``"13×13 · stride 32"``.

    Args:
        image: (H, W, 3) uint8 RGB, the explained image.
        explanation: an :class:`~yolocam_core.explainer.Explanation`.
        colormap, opacity: see :func:`overlay`.
        height: panel height in pixels.
        caption: a line above the panels; default ``"<method> · <target>"``.

    Returns:
        (rows, columns, 3) uint8 RGB.
    """
    panels = explanation_overlays(image, explanation, colormap, opacity)
    tiles = [titled(p, m.label, height) for p, m in zip(panels, explanation.maps, strict=True)]
    gap = np.full((tiles[0].shape[0], 8, 3), 255, np.uint8)
    row = [tiles[0]]
    for tile in tiles[1:]:
        row += [gap, tile]
    body = np.hstack(row)
    text = caption if caption is not None else f"{explanation.method} · {explanation.target}"
    return np.vstack([text_bar(text, body.shape[1], max(28, height // 9), centred=False), body])
