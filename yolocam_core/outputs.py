"""What yolocam writes: an explanation's files and the report of one image's detections.

One naming scheme serves ``yolocam explain`` and ``yolocam batch`` (the app's
downloads use the same report). For an explanation whose files start with PREFIX::

    PREFIX_scale<k>_<h>x<w>.png   overlay of scale k (its map on the image, the box drawn)
    PREFIX_scale<k>_<h>x<w>.npy   scale k's raw map, (h, w) float32 at the layer's grid
    PREFIX_sheet.png              every explained scale side by side (when asked for)
    PREFIX.json                   what the maps claim: target, what its score means, the
                                  normalisation, every head's score and each map's
                                  share of it, and the file names above

PREFIX is ``[<image>-<hash>_]<target>_<method>`` (:func:`explanation_prefix`):
``<target>`` is ``detection-<K>-<class>``, ``class-<class>`` or ``seed``; ``<image>-<hash>``
(:func:`image_tag`: the file's stem and 8 hex digits of a hash of its resolved path) is
added where several images share one folder (``yolocam explain``), so that ``a/x.jpg``
and ``b/x.jpg`` never overwrite each other; a batch run gives every image a folder of
its own instead. Characters other than letters, digits and ``-_+.`` become ``_``.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from PIL import Image
from PIL.PngImagePlugin import PngInfo

from yolocam_core import render
from yolocam_core.files import safe_name, shown
from yolocam_core.report import scale_fields

if TYPE_CHECKING:  # TensorFlow is imported lazily
    from yolocam_core.detector import Detection
    from yolocam_core.explainer import Explanation


def image_tag(path: str | os.PathLike) -> str:
    """``<stem>-<8 hex digits>``: the file's stem (at most 60 characters) and a hash of its
    resolved path, so that two images with the same name never share output names."""
    resolved = os.fsencode(Path(path).resolve())
    digest = hashlib.sha1(resolved).hexdigest()[:8]
    return f"{safe_name(shown(Path(path).stem))[:60]}-{digest}"


def target_stem(kind: str, index: int | None = None, class_name: str = "") -> str:
    """``detection-<K>-<class>``, ``class-<class>`` or ``seed`` (before :func:`safe_name`).

    Args:
        kind: ``"detection"``, ``"class"`` or ``"seed"``.
        index: K, the detection's index in score order (``detection`` only).
        class_name: the detection's or the class's name.
    """
    if kind == "detection":
        return f"detection-{index}-{class_name}"
    if kind == "class":
        return f"class-{class_name}"
    return kind


def explanation_prefix(target: str, method: str, image: str | None = None) -> str:
    """The PREFIX of an explanation's files (see the module's docstring)."""
    parts = [image, target, method] if image else [target, method]
    return safe_name("_".join(parts))


@dataclass(frozen=True)
class SavedMap:
    """The files of one scale's map.

    Attributes:
        scale: head index.
        grid: e.g. ``"13x13"``.
        overlay: the overlay PNG.
        raw_map: the raw grid map (``.npy``).
    """

    scale: int
    grid: str
    overlay: Path
    raw_map: Path


@dataclass(frozen=True)
class SavedExplanation:
    """What :func:`save_explanation` wrote.

    Attributes:
        prefix: the files' common PREFIX.
        maps: one :class:`SavedMap` per explained scale, in the explanation's order.
        sheet: the sheet PNG, or None.
        record: the JSON record (:func:`explanation_record`).
    """

    prefix: str
    maps: tuple[SavedMap, ...]
    sheet: Path | None
    record: Path


def save_explanation(
    folder: str | os.PathLike,
    prefix: str,
    image: np.ndarray,
    explanation: Explanation,
    *,
    image_name: str = "",
    colormap: str = "jet",
    opacity: float = 0.5,
    sheet: bool = True,
    compress_level: int = 6,
    model: str | None = None,
) -> SavedExplanation:
    """Write an explanation's overlays, raw maps, sheet and record into ``folder``.

    Args:
        folder: an existing folder.
        prefix: see :func:`explanation_prefix`.
        image: (H, W, 3) uint8 RGB, the explained image.
        explanation: with its (H, W) heatmaps (not :meth:`Explanation.compact`).
        image_name: the image as named in the record.
        colormap, opacity: of the overlays (see :func:`yolocam_core.render.overlay`).
        sheet: also write the side-by-side sheet.
        compress_level: PNG compression, 0 (fast, large) to 9.
        model: the model's name, for the sheet's footer and the record.

    Returns:
        The paths written.

    Raises:
        OSError: a file could not be written.
    """
    folder = Path(folder)
    panels = render.explanation_overlays(image, explanation, colormap, opacity)
    maps = []
    for scale_map, panel in zip(explanation.maps, panels, strict=True):
        grid = "{}x{}".format(*scale_map.grid_map.shape)
        stem = folder / f"{prefix}_scale{scale_map.scale}_{grid}"
        overlay, raw = stem.with_name(stem.name + ".png"), stem.with_name(stem.name + ".npy")
        Image.fromarray(panel).save(
            overlay,
            compress_level=compress_level,
            pnginfo=_claim(explanation, scale_map, image_name, model),
        )
        np.save(raw, scale_map.grid_map)
        maps.append(SavedMap(scale_map.scale, grid, overlay, raw))
    sheet_path = None
    if sheet:
        sheet_path = folder / f"{prefix}_sheet.png"
        picture = render.sheet(image, explanation, colormap, opacity, model=model)
        Image.fromarray(picture).save(sheet_path, compress_level=compress_level)
    saved = SavedExplanation(prefix, tuple(maps), sheet_path, folder / f"{prefix}.json")
    record = explanation_record(explanation, saved, image_name, relative_to=folder)
    if model:
        record = {"model": model, **record}
    saved.record.write_text(json.dumps(record, indent=1, ensure_ascii=False), encoding="utf-8")
    return saved


def _claim(
    explanation: Explanation, scale_map, image_name: str, model: str | None = None
) -> PngInfo:
    """What an overlay PNG shows, in its text chunks: ``Title`` (one line) and
    ``yolocam`` (JSON: the model, target, method, normalisation, this scale's fields,
    every head's score and the yolocam version)."""
    info = PngInfo()
    caption = render.map_caption(explanation, scale_map)
    title = f"{explanation.method} · {explanation.target} · {caption}"
    info.add_itxt("Title", title)
    claim = {
        "image": image_name,
        "model": model,
        "yolocam_version": render.yolocam_version(),
        "method": explanation.method,
        "target": explanation.target,
        "target_kind": explanation.target_kind,
        "norm": explanation.norm,
        "norm_meaning": render.norm_caption(explanation.norm, explanation),
        "score_note": explanation.score_note,
        "scale_scores": list(explanation.scale_scores),
        "scale_labels": list(explanation.scale_labels),
        "own_scale": explanation.own_scale,
        "ignores_target": render.ignores_target(explanation.method),
        "scale": scale_fields(scale_map),
    }
    info.add_itxt("yolocam", json.dumps(claim, ensure_ascii=False))
    return info


def explanation_record(
    explanation: Explanation,
    saved: SavedExplanation,
    image_name: str = "",
    relative_to: str | os.PathLike | None = None,
) -> dict[str, Any]:
    """What the saved maps claim, as JSON-ready data (``yolocam explain --json``).

    Keys: ``image``, ``yolocam_version``, ``method``, ``target`` (its caption), ``target_kind``,
    ``score_note`` (what "score" means), ``norm``, ``scale_scores`` (the target's
    score at every head), ``scale_labels`` (every head's label), ``own_scale`` (the
    detection's head, or None), ``sheet`` and
    ``scales``: per explained scale ``scale``, ``label``, ``layer``, ``score``,
    ``relative`` (over the strongest head's), ``share`` (of the sum over heads),
    ``weak``, ``overlay`` and ``raw_map``. File paths are relative to ``relative_to``
    when given, else as written.
    """

    def where(path: Path | None) -> str | None:
        if path is None:
            return None
        return shown(path.relative_to(relative_to) if relative_to is not None else path)

    scales = [
        scale_fields(scale_map) | {"overlay": where(files.overlay), "raw_map": where(files.raw_map)}
        for scale_map, files in zip(explanation.maps, saved.maps, strict=True)
    ]
    return {
        "image": image_name,
        "yolocam_version": render.yolocam_version(),
        "method": explanation.method,
        "ignores_target": render.ignores_target(explanation.method),
        "target": explanation.target,
        "target_kind": explanation.target_kind,
        "score_note": explanation.score_note,
        "norm": explanation.norm,
        "scale_scores": list(explanation.scale_scores),
        "scale_labels": list(explanation.scale_labels),
        "own_scale": explanation.own_scale,
        "sheet": where(saved.sheet),
        "scales": scales,
    }


def report_notes(detections, image_note: str | None) -> dict[str, str]:
    """The notes of a detections report: ``note`` when detections were left out
    (``detections.note()``), ``image_note`` when the photo is too small or elongated for
    the network (``Detector.image_warning``); each only when it says something."""
    notes = {"note": detections.note(), "image_note": image_note}
    return {key: text for key, text in notes.items() if text}


def detections_report(
    image: str, size: tuple[int, int], detections: Sequence[Detection], **extra: Any
) -> dict[str, Any]:
    """One image's detections as JSON-ready data: ``image``, ``width``, ``height``, any
    ``extra`` items (e.g. the thresholds), then ``detections`` (:meth:`Detection.to_dict`,
    in score order).

    The one schema of ``yolocam detect --json`` (a list of these), a batch run's
    ``detections.json``, ``yolocam evaluate --json``'s ``images`` and the app's download.

    Args:
        image: the image's name or path.
        size: (height, width) in pixels.
        detections: the detections.
        extra: more items, placed before ``detections``.
    """
    height, width = size
    return {
        "image": shown(image),
        "width": int(width),
        "height": int(height),
        **extra,
        "detections": [d.to_dict() for d in detections],
    }
