"""Drawing: heatmap -> colour overlay, boxes and labels, colour bars, side-by-side sheets.

All images are (H, W, 3) uint8 RGB; heatmaps are (H, W) float in [0, 1]. Every map
drawn here says what it is: overlays carry a marker when their scale is weak (its score
under 1% of the strongest scale's) and when they are the detection's own scale; sheets
carry each scale's score, the normalisation, a colour bar, the method, the model and
the yolocam version.
"""

from __future__ import annotations

import importlib.metadata
from collections.abc import Mapping, Sequence
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
#: Weak-scale marker colour (amber) and own-scale badge colour.
WEAK_COLOUR = (255, 193, 7)
OWN_COLOUR = (25, 135, 84)
#: What each normalisation means, for captions.
NORM_TEXT = {
    "shared": "shared across scales: each map above its own minimum, over one range for "
    "every scale; colours compare between scales",
    "per-map": "per map: each map stretched to its own range; colours do not compare "
    "between scales",
}


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


def shrink(image: np.ndarray, max_side: int) -> np.ndarray:
    """An image at most ``max_side`` pixels a side: shrunk by area averaging (aspect
    ratio kept, each side at least 1 pixel), or the same array when it fits.

    Args:
        image: (H, W) or (H, W, C).
    """
    scale = max_side / max(image.shape[:2])
    if scale >= 1:
        return image
    size = (max(1, round(image.shape[1] * scale)), max(1, round(image.shape[0] * scale)))
    return cv2.resize(image, size, interpolation=cv2.INTER_AREA)


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
    return text.replace("×", "x").replace("·", "-").replace("★", "*").replace("≥", ">=")


def _line_width(image: np.ndarray) -> int:
    return max(2, round(max(image.shape[:2]) / 400))


def percent(fraction: float) -> str:
    """0.987 -> ``"99%"``, 0.00137 -> ``"0.14%"``, 1.5e-05 -> ``"0.0015%"``."""
    value = 100.0 * float(fraction)
    if value >= 10 or value == 0:
        return f"{value:.0f}%"
    return f"{value:.2g}%"


def weak_text(scale_map) -> str:
    """E.g. ``"weak: 0.14% of the top scale's score"`` (see ``ScaleMap.weak``)."""
    return f"weak: {percent(scale_map.relative)} of the top scale's score"


def scale_caption(scale_map, own_scale: int | None = None, label: bool = True) -> str:
    """One line saying what a scale's map is worth.

    E.g. ``"13×13 · stride 32 · score 0.987 · 99% of the total · ★ own scale"`` or
    ``"26×26 · stride 16 · score 1.5e-05 · weak: 0.0015% of the top scale's score"``.

    Args:
        scale_map: a :class:`~yolocam_core.explainer.ScaleMap`.
        own_scale: the head that predicted the explained detection, or None.
        label: start with the scale's label.
    """
    parts = [scale_map.label] if label else []
    parts.append(f"score {scale_map.score:.3g}")
    if scale_map.weak:
        parts.append(weak_text(scale_map))
    elif scale_map.share is not None:
        parts.append(f"{percent(scale_map.share)} of the total")
    if own_scale is not None and scale_map.scale == own_scale:
        parts.append("★ own scale")
    return " · ".join(parts)


def ignores_target(method: str) -> bool:
    """Whether a method's map is the same whatever the target (Eigen-CAM)."""
    from yolocam_core.cams import get_method  # here: the module stays light to import

    try:
        return bool(get_method(method).target_independent)
    except ValueError:  # not a registered method
        return False


def map_caption(explanation, scale_map, label: bool = True) -> str:
    """:func:`scale_caption` of one of ``explanation``'s maps, marked ``"ignores the
    target"`` when its method does."""
    caption = scale_caption(scale_map, explanation.own_scale, label=label)
    if ignores_target(explanation.method):
        caption += " · ignores the target"
    return caption


def scores_line(explanation) -> str:
    """Every head's score for the target, shown or not, e.g. ``"score at every scale:
    13×13 0.993 ★ · 26×26 0.00204 (weak)"`` ("" without scores)."""
    scores = getattr(explanation, "scale_scores", ())
    if not scores:
        return ""
    from yolocam_core.explainer import WEAK_RELATIVE  # loaded wherever explanations are

    weak = set(explanation.weak_scales)
    top = max(scores)
    if top > 0 and any(m.relative is not None for m in explanation.maps):
        weak |= {s for s, v in enumerate(scores) if max(v, 0.0) / top < WEAK_RELATIVE}
    labels = dict(enumerate(getattr(explanation, "scale_labels", ())))
    labels |= {m.scale: m.label for m in explanation.maps}
    labels = {s: label.split(" · ")[0] for s, label in labels.items()}
    parts = []
    for scale, score in enumerate(scores):
        part = f"{labels.get(scale, f'scale {scale}')} {score:.3g}"
        if scale == explanation.own_scale:
            part += " ★"
        if scale in weak:
            part += " (weak)"
        parts.append(part)
    return "score at every scale: " + " · ".join(parts)


def norm_caption(norm: str, explanation=None) -> str:
    """E.g. ``"normalisation: shared across scales: colours compare between scales"``.

    With ``explanation``, shared maps of a target whose scores have no common unit
    across scales (the whole head output, a box coordinate) say so."""
    text = f"normalisation: {NORM_TEXT.get(norm, norm)}"
    if norm == "shared" and explanation is not None and not explanation.comparable:
        text += (
            " (forced: this target's scores have no common unit across scales, so the "
            "colours compare map values, not how much each scale explains)"
        )
    return text


def _label_spots(box, size, image_size, gap: int) -> list[tuple[float, float]]:
    """Top-left corners to try for a label of ``size`` (w, h) at ``box``, best first."""
    x1, y1, x2, y2 = box
    tw, th = size
    spots = [
        (x1, y1 - th - gap),  # above, left
        (x1, y1),  # inside, top left
        (x1, y2),  # below, left
        (x2 - tw, y1 - th - gap),  # above, right
        (x2 - tw, y1),  # inside, top right
        (x1, y2 - th),  # inside, bottom left
    ]
    height, width = image_size
    return [
        (float(np.clip(x, 0, max(0, width - tw))), float(np.clip(y, 0, max(0, height - th))))
        for x, y in spots
    ]


def _overlaps(rect, placed, margin: float = 1.0) -> bool:
    x1, y1, x2, y2 = rect
    return any(
        x1 < b[2] + margin and b[0] < x2 + margin and y1 < b[3] + margin and b[1] < y2 + margin
        for b in placed
    )


def layout_labels(
    boxes: Sequence[tuple[float, float, float, float]],
    sizes: Mapping[int, tuple[float, float]],
    image_size: tuple[int, int],
    order: Sequence[int],
    gap: float = 2.0,
    always: int | None = None,
    limit: int | None = None,
) -> dict[int, tuple[float, float, float, float]]:
    """Where each box's label goes so that no two labels overlap.

    Greedy, in ``order``: each label takes the first free spot around its box (above
    left, inside top left, below left, above right, inside top right, inside bottom
    left), clipped to the image; a label with no free spot is left out, except
    ``always`` (placed above its box anyway).

    Args:
        boxes: (x1, y1, x2, y2) per box, in pixels.
        sizes: box index -> its label's (width, height) in pixels.
        image_size: (height, width).
        order: box indices in the order their labels are placed.
        gap: pixels between a box and a label above it.
        always: a box whose label is placed even without a free spot.
        limit: at most this many labels.

    Returns:
        box index -> the label's rectangle (x1, y1, x2, y2); boxes left out are absent.
    """
    placed: dict[int, tuple[float, float, float, float]] = {}
    for k in order:
        if limit is not None and len(placed) >= limit:
            break
        if k not in sizes:
            continue
        tw, th = sizes[k]
        candidates = _label_spots(boxes[k], (tw, th), image_size, gap)
        spot = next(
            (
                (x, y, x + tw, y + th)
                for x, y in candidates
                if not _overlaps((x, y, x + tw, y + th), placed.values())
            ),
            None,
        )
        if spot is None and k == always:
            x, y = candidates[0]
            spot = (x, y, x + tw, y + th)
        if spot is not None:
            placed[k] = spot
    return placed


def draw_boxes(
    image: np.ndarray,
    boxes: Sequence[tuple[float, float, float, float]],
    labels: Sequence[str] | None = None,
    colours: Sequence[tuple[int, int, int]] | None = None,
    highlight: int | None = None,
    max_labels: int = 60,
    font_size: int | None = None,
) -> np.ndarray:
    """Draw boxes (x1, y1, x2, y2 in pixels) with labels that never overlap; a copy.

    Labels are placed in order (the highlighted box first, then the given order) at
    the first free spot around their box (above, inside, below, left or right); a
    label with no free spot is left out (its box is still drawn).

    Args:
        image: (H, W, 3) uint8 RGB.
        boxes: N boxes.
        labels: N labels (or None / empty strings for none).
        colours: N RGB colours; default white.
        highlight: index of the box to highlight: drawn last, thicker, edged with a
            white line; the others are dimmed.
        max_labels: at most this many labels.
        font_size: label height in pixels; default about 1/40 of the longer side
            (at most 1/12 of the shorter: a 4000×200 photo's labels stay in it).
    """
    base = Image.fromarray(image).convert("RGBA")
    layer = Image.new("RGBA", base.size, (0, 0, 0, 0))
    draw = ImageDraw.Draw(layer)
    width = _line_width(image)
    size = font_size or _text_size(image.shape[:2], 40)
    font = _font(size)
    dim = 110 if highlight is not None else 255  # alpha of the other boxes
    order = [k for k in range(len(boxes)) if k != highlight]
    if highlight is not None:
        order.append(highlight)  # drawn last: on top
    first = [highlight] if highlight is not None else []
    label_order = [k for k in dict.fromkeys(first + order) if labels and k < len(labels)]
    for k in order:
        colour = tuple(colours[k]) if colours else TARGET_COLOUR
        x1, y1, x2, y2 = (float(v) for v in boxes[k])
        if k == highlight:
            draw.rectangle((x1, y1, x2, y2), outline=(255, 255, 255, 255), width=width * 3)
            draw.rectangle((x1, y1, x2, y2), outline=(*colour, 255), width=width * 2)
        else:
            draw.rectangle((x1, y1, x2, y2), outline=(*colour, dim), width=width)
    texts, sizes, offsets = {}, {}, {}
    for k in label_order[: 4 * max_labels]:  # room for labels that find no spot
        if not labels[k]:
            continue
        texts[k] = _drawable(labels[k], font)
        left, top, right, bottom = draw.textbbox((0, 0), texts[k], font=font)
        sizes[k] = (right - left + 2 * width, bottom - top + 2 * width)
        offsets[k] = (left, top)
    spots = layout_labels(
        boxes, sizes, image.shape[:2], list(sizes), gap=width, always=highlight, limit=max_labels
    )
    for k, (x, y, x2, y2) in spots.items():
        colour = tuple(colours[k]) if colours else TARGET_COLOUR
        alpha = 255 if (highlight is None or k == highlight) else dim + 60
        draw.rectangle((x, y, x2, y2), fill=(*colour, alpha))
        text_colour = (0, 0, 0) if sum(colour) > 382 else (255, 255, 255)
        left, top = offsets[k]
        draw.text(
            (x + width - left, y + width - top), texts[k], fill=(*text_colour, alpha), font=font
        )
    return np.asarray(Image.alpha_composite(base, layer).convert("RGB"))


def draw_detections(
    image: np.ndarray,
    detections,
    labels: Sequence[str] | None = None,
    highlight: int | None = None,
    max_labels: int = 60,
    font_size: int | None = None,
) -> np.ndarray:
    """Boxes of detections, coloured by class, labelled ``"#0 person 0.99"`` by default.

    Args:
        image: (H, W, 3) uint8 RGB.
        detections: :class:`~yolocam_core.detector.Detection` s, best first.
        labels: one per detection; default ``"#k class score"``.
        highlight: index of the chosen detection (highlighted, the others dimmed).
        max_labels: at most this many labels (the highlighted one always).
        font_size: label height in pixels (see :func:`draw_boxes`).
    """
    labels = labels or [f"#{k} {d.class_name} {d.score:.2f}" for k, d in enumerate(detections)]
    colours = [PALETTE[d.class_id % len(PALETTE)] for d in detections]
    return draw_boxes(
        image, [d.box_xyxy for d in detections], labels, colours, highlight, max_labels, font_size
    )


def _text_size(size: tuple[int, int], fraction: int) -> int:
    """A text height for an image of (height, width): 1/``fraction`` of its longer side,
    at most 1/12 of its shorter side (for very elongated images), at least 12 px."""
    return max(12, round(min(max(size) / fraction, min(size) / 12)))


def mark_panel(
    panel: np.ndarray, weak: str | None = None, own: bool = False, font_size: int | None = None
) -> np.ndarray:
    """Mark an overlay: an amber band with ``weak`` across its top and an amber frame
    (a weak scale's map), and a green ``"★ own scale"`` badge at its bottom left."""
    if not weak and not own:
        return panel
    canvas = Image.fromarray(panel)
    draw = ImageDraw.Draw(canvas)
    height, width = panel.shape[:2]
    size = font_size or _text_size((height, width), 28)
    font = _font(size)
    pad = max(2, size // 4)
    if weak:
        text = _drawable(weak, font)
        left, top, right, bottom = draw.textbbox((0, 0), text, font=font)
        while right - left > width - 2 * pad and size > 8:  # fit the width
            size -= 1
            font = _font(size)
            left, top, right, bottom = draw.textbbox((0, 0), text, font=font)
        band = bottom - top + 2 * pad
        draw.rectangle((0, 0, width, band), fill=WEAK_COLOUR)
        draw.text((pad - left, pad - top), text, fill=(0, 0, 0), font=font)
        frame = max(2, round(max(height, width) / 150))
        draw.rectangle((0, 0, width - 1, height - 1), outline=WEAK_COLOUR, width=frame)
    if own:
        text = _drawable("★ own scale", font)
        left, top, right, bottom = draw.textbbox((0, 0), text, font=font)
        box = (0, height - (bottom - top) - 2 * pad, right - left + 2 * pad, height)
        draw.rectangle(box, fill=OWN_COLOUR)
        draw.text((pad - left, box[1] + pad - top), text, fill=(255, 255, 255), font=font)
    return np.asarray(canvas)


def explanation_overlays(
    image: np.ndarray,
    explanation,
    colormap: str = "jet",
    opacity: float = 0.5,
    marks: bool = True,
) -> list[np.ndarray]:
    """One overlay per explained scale, with the target's box drawn if it has one.

    Args:
        image: (H, W, 3) uint8 RGB, the explained image (heatmaps have its size).
        explanation: an :class:`~yolocam_core.explainer.Explanation` with heatmaps.
        colormap, opacity: see :func:`overlay`.
        marks: mark weak scales and the detection's own scale (:func:`mark_panel`).
    """
    panels = []
    for scale_map in explanation.maps:
        panel = overlay(image, scale_map.heatmap, colormap, opacity)
        if explanation.box_xyxy is not None:
            panel = draw_boxes(panel, [explanation.box_xyxy])
        if marks:
            panel = mark_panel(
                panel,
                weak_text(scale_map) if scale_map.weak else None,
                own=scale_map.scale == explanation.own_scale,
            )
        panels.append(panel)
    return panels


def colorbar(
    height: int,
    colormap: str = "jet",
    width: int | None = None,
    labels: tuple[str, str] = ("max", "min"),
    title: str | None = None,
) -> np.ndarray:
    """A vertical colour bar, (height, width, 3) uint8 RGB: high values at the top.

    Args:
        height: pixels.
        colormap: see :func:`colorize`.
        width: pixels; default about height / 4 (room for the labels).
        labels: text at the top and the bottom of the bar.
        title: a line above the bar, e.g. ``"shared"``.
    """
    height = max(int(height), 64)  # room for the ramp and both labels
    width = width or max(90, height // 3)
    bar = np.full((height, width, 3), 255, np.uint8)
    size = max(10, height // 18)
    font = _font(size)
    top = size + 8 if title else 4
    bottom = height - size - 8
    ramp_w = max(10, width // 4)
    ramp = colorize(np.linspace(1.0, 0.0, max(2, bottom - top))[:, None], colormap)
    bar[top:bottom, 4 : 4 + ramp_w] = np.repeat(ramp, ramp_w, axis=1)
    canvas = Image.fromarray(bar)
    draw = ImageDraw.Draw(canvas)
    draw.rectangle((4, top, 4 + ramp_w - 1, bottom - 1), outline=(60, 60, 60))
    x = 4 + ramp_w + 4
    for text, y in ((labels[0], top), (labels[1], bottom - size)):
        draw.text((x, y), _drawable(text, font), fill=(20, 20, 20), font=font)
    if title:
        draw.text((4, 2), _drawable(title, font), fill=(20, 20, 20), font=font)
    return np.asarray(canvas)


def text_bar(text: str, width: int, height: int, centred: bool = True) -> np.ndarray:
    """A white (height, width, 3) bar with one line of dark text (shrunk to fit)."""
    size = max(10, round(height * 0.55))
    font = _font(size)
    bar = Image.new("RGB", (width, height), (255, 255, 255))
    draw = ImageDraw.Draw(bar)
    text = _drawable(text, font)
    left, top, right, bottom = draw.textbbox((0, 0), text, font=font)
    while right - left > width - 16 and size > 8:
        size -= 1
        font = _font(size)
        left, top, right, bottom = draw.textbbox((0, 0), text, font=font)
    x = (width - (right - left)) / 2 - left if centred else 8 - left
    draw.text((x, (height - (bottom - top)) / 2 - top), text, fill=(20, 20, 20), font=font)
    return np.asarray(bar)


def text_block(text: str, width: int, height: int, centred: bool = True) -> np.ndarray:
    """:func:`text_bar` lines of ``height`` pixels, the words wrapped to ``width``."""
    font = _font(max(10, round(height * 0.55)))
    lines: list[str] = []
    line = ""
    for word in text.split():
        trial = f"{line} {word}" if line else word
        if line and font.getlength(_drawable(trial, font)) > width - 16:
            lines.append(line)
            line = word
        else:
            line = trial
    lines.append(line)
    return np.vstack([text_bar(one, width, height, centred) for one in lines])


def titled(
    panel: np.ndarray, title: str, height: int = 360, lines: Sequence[str] = ()
) -> np.ndarray:
    """Scale a panel to ``height`` pixels and put a centred title bar (and optional
    further lines, smaller) above it."""
    width = max(1, round(panel.shape[1] * height / panel.shape[0]))
    width = max(width, height // 2)
    body = cv2.resize(panel, (width, height), interpolation=cv2.INTER_AREA)
    bars = [text_bar(title, width, max(24, height // 10))]
    bars += [text_block(line, width, max(20, height // 14)) for line in lines]
    return np.vstack([*bars, body])


def sheet(
    image: np.ndarray,
    explanation,
    colormap: str = "jet",
    opacity: float = 0.5,
    height: int = 360,
    caption: str | None = None,
    model: str | None = None,
) -> np.ndarray:
    """All scales of an explanation side by side, each titled with its scale and score.

    Above: ``"<method> · <target>"`` and the normalisation; each panel: its scale
    (``"13×13 · stride 32"``), its score and share (or the weak-scale marker) and the
    own-scale badge; right: a colour bar; below: the score's meaning, the model and
    the yolocam version.

    Args:
        image: (H, W, 3) uint8 RGB, the explained image.
        explanation: an :class:`~yolocam_core.explainer.Explanation`.
        colormap, opacity: see :func:`overlay`.
        height: panel height in pixels.
        caption: the first line; default ``"<method> · <target>"``.
        model: the model's name for the footer.

    Returns:
        (rows, columns, 3) uint8 RGB.
    """
    height = max(int(height), 96)  # room for the colour bar and its labels
    panels = explanation_overlays(image, explanation, colormap, opacity)
    tiles = [
        titled(p, m.label, height, [map_caption(explanation, m, label=False)])
        for p, m in zip(panels, explanation.maps, strict=True)
    ]
    tallest = max(t.shape[0] for t in tiles)  # wrapped captions differ in height
    tiles = [
        np.vstack([np.full((tallest - t.shape[0], t.shape[1], 3), 255, np.uint8), t]) for t in tiles
    ]
    bar_height = tiles[0].shape[0]
    legend = colorbar(
        height - 8,
        colormap,
        labels=("max", "min"),
        title="per map" if explanation.norm == "per-map" else "shared",
    )
    legend = np.vstack(
        [np.full((bar_height - legend.shape[0], legend.shape[1], 3), 255, np.uint8), legend]
    )
    gap = np.full((bar_height, 8, 3), 255, np.uint8)
    row = [tiles[0]]
    for tile in [*tiles[1:], legend]:
        row += [gap, tile]
    body = np.hstack(row)
    text = caption if caption is not None else f"{explanation.method} · {explanation.target}"
    line = max(28, height // 9)
    small = max(20, height // 14)
    footer = [f"yolocam {yolocam_version()}"]
    if model:
        footer.insert(0, f"model {model}")
    if ignores_target(explanation.method):
        text += " (the method ignores the target)"
    width = body.shape[1]
    rows = [
        text_block(text, width, line, centred=False),
        text_block(norm_caption(explanation.norm, explanation), width, small, centred=False),
        body,
    ]
    for words in (scores_line(explanation), getattr(explanation, "score_note", "")):
        if words:
            rows.append(text_block(words, width, small, centred=False))
    rows.append(text_block(" · ".join(footer), width, small, centred=False))
    return np.vstack(rows)


@lru_cache(maxsize=1)
def yolocam_version() -> str:
    """The installed yolocam version, e.g. ``"0.1.0"`` (``"unknown"`` from a source tree)."""
    try:
        return importlib.metadata.version("yolocam")
    except importlib.metadata.PackageNotFoundError:
        return "unknown"
