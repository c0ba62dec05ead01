"""Reports of one explanation: the metadata that travels with saved maps, and a
self-contained HTML page.

Every saved map is a claim, so it travels with what it claims: which score (the target
and what "score" means for it), by which method, at which scale, how it was
normalised, how strong each scale's score is beside the others, which model and which
yolocam version. :func:`explanation_metadata` is that record as a JSON-ready dict (the
app puts it in its maps zip as ``metadata.json``); :func:`html_report` is one HTML file
with the photo, the detections, every scale's overlay with its score and the same
metadata, images inline as data URIs, so that it opens anywhere, offline.

Example:
    >>> page = html_report(image, explanation, detections=dets, model="yolov4-tiny",
    ...                    image_name="bus.jpg")
    >>> Path("bus_report.html").write_text(page, encoding="utf-8")
"""

from __future__ import annotations

import base64
import html
import io
import json
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime

import cv2
import numpy as np
from PIL import Image

from yolocam_core import render
from yolocam_core.cams import get_method

#: Version of the metadata layout (bumped when a field changes meaning).
METADATA_FORMAT = 1


def method_info(name: str) -> dict:
    """``{"name", "title", "paper"}`` of a registered method (name only if unknown)."""
    try:
        method = get_method(name)
    except ValueError:
        return {"name": name}
    info = {"name": name, "title": method.title, "paper": method.paper}
    for field in ("answers", "note"):  # newer methods describe what they answer
        value = getattr(method, field, None)
        if value:
            info[field] = value
    return info


def scale_fields(scale_map) -> dict:
    """What one scale's map claims, JSON-ready: ``scale``, ``label``, ``layer``,
    ``score``, ``relative`` (over the strongest head's), ``share`` (of the sum over
    heads) and ``weak`` (the fields :func:`explanation_metadata` and
    :func:`yolocam_core.outputs.explanation_record` share)."""
    m = scale_map
    return {
        "scale": m.scale,
        "label": m.label,
        "layer": m.layer,
        "score": float(m.score),
        "relative": None if m.relative is None else float(m.relative),
        "share": None if m.share is None else float(m.share),
        "weak": bool(m.weak),
    }


def explanation_metadata(
    explanation,
    *,
    model: str | None = None,
    image_name: str | None = None,
    colormap: str | None = None,
    opacity: float | None = None,
    files: Mapping[int, str] | None = None,
    detections: Sequence | None = None,
    extra: Mapping | None = None,
) -> dict:
    """What an explanation claims, as a JSON-ready dict.

    Args:
        explanation: an :class:`~yolocam_core.explainer.Explanation`.
        model: the model's name.
        image_name: the explained image's name.
        colormap, opacity: how overlays were drawn, when they were.
        files: scale -> the file its raw map was saved to.
        detections: the image's detections (``Detection.to_dict()`` each), if wanted.
        extra: more top-level fields (e.g. thresholds).

    Returns:
        A dict with ``format``, ``yolocam_version``, ``created`` (UTC, ISO 8601),
        ``model``, ``image``, ``method``, ``target`` (kind, label, box, own scale and
        what "score" means), ``normalisation`` (mode and meaning), ``weak_below``
        (the relative score under which a scale is weak), ``scale_scores`` (every
        head's score), ``scale_labels`` (every head's label) and ``scales`` (per
        explained scale: label, layer, grid, score, relative, share, weak, own, and its
        file).
    """
    height, width = explanation.image_size
    scales = []
    for m in explanation.maps:
        item = scale_fields(m) | {
            "grid": list(m.grid_map.shape),
            "own_scale": m.scale == explanation.own_scale,
            "caption": render.map_caption(explanation, m),
        }
        if files and m.scale in files:
            item["file"] = files[m.scale]
        scales.append(item)
    from yolocam_core.explainer import WEAK_RELATIVE

    record = {
        "format": METADATA_FORMAT,
        "yolocam_version": render.yolocam_version(),
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "model": model,
        "image": {"name": image_name, "width": int(width), "height": int(height)},
        "method": method_info(explanation.method),
        "target": {
            "kind": explanation.target_kind,
            "label": explanation.target,
            "box_xyxy": None
            if explanation.box_xyxy is None
            else [round(float(v), 2) for v in explanation.box_xyxy],
            "own_scale": explanation.own_scale,
            "score_note": explanation.score_note,
        },
        "normalisation": {
            "mode": explanation.norm,
            "meaning": render.NORM_TEXT.get(explanation.norm, explanation.norm),
        },
        "weak_below": WEAK_RELATIVE,
        "scale_scores": [float(v) for v in explanation.scale_scores],
        "scale_labels": list(explanation.scale_labels),
        "scales": scales,
    }
    if colormap is not None or opacity is not None:
        record["rendering"] = {"colormap": colormap, "opacity": opacity}
    if detections is not None:
        record["detections"] = [d.to_dict() for d in detections]
    if extra:
        record.update(extra)
    return record


def data_uri(image: np.ndarray, fmt: str = "jpeg", quality: int = 85) -> str:
    """(H, W, 3) uint8 RGB -> ``data:image/jpeg;base64,...`` (or PNG)."""
    buffer = io.BytesIO()
    if fmt == "png":
        Image.fromarray(image).save(buffer, format="PNG", optimize=True)
    else:
        Image.fromarray(image).save(buffer, format="JPEG", quality=quality)
    return f"data:image/{fmt};base64,{base64.b64encode(buffer.getvalue()).decode('ascii')}"


def _scaled_detections(detections, factor: float):
    """Detections with boxes multiplied by ``factor`` (for a shrunk image)."""
    import dataclasses

    return [
        dataclasses.replace(d, box_xyxy=tuple(float(v) * factor for v in d.box_xyxy))
        for d in detections
    ]


_STYLE = """
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:24px auto;
max-width:1280px;padding:0 16px;color:#1d1d1f;line-height:1.4}
h1{margin:0 0 4px;font-size:26px}h2{font-size:19px;margin:28px 0 8px}
.sub{color:#555;margin:0 0 16px}
table{border-collapse:collapse;font-size:14px}
td,th{padding:4px 10px;border-bottom:1px solid #e3e3e3;text-align:left;vertical-align:top}
table.meta th{color:#555;font-weight:600;white-space:nowrap}
.row{display:flex;flex-wrap:wrap;gap:16px;align-items:flex-start}
figure{margin:0}figure img{max-width:100%;display:block;border-radius:4px}
figure.photo{flex:1 1 520px}figure.scale{flex:1 1 300px;max-width:420px}
figure.legend{flex:0 0 auto}
figcaption{font-size:13px;color:#333;margin-top:4px}
.weak figcaption b{color:#8a5a00}.weak img{outline:3px solid #ffc107}
.own figcaption b{color:#198754}
.note{background:#fff8e1;border-left:4px solid #ffc107;padding:6px 10px;font-size:14px}
tr.chosen{background:#fdecef;font-weight:600}
footer{margin-top:32px;color:#777;font-size:12px}
"""


def html_report(
    image: np.ndarray,
    explanation,
    *,
    detections: Sequence = (),
    chosen: int | None = None,
    model: str | None = None,
    image_name: str | None = None,
    colormap: str = "jet",
    opacity: float = 0.5,
    score_threshold: float | None = None,
    iou_threshold: float | None = None,
    detections_note: str | None = None,
    max_side: int = 960,
) -> str:
    """One self-contained HTML page of an explanation (images inline, no links out
    except the method's paper).

    Args:
        image: (H, W, 3) uint8 RGB, the explained image (its heatmaps' size).
        explanation: an :class:`~yolocam_core.explainer.Explanation` with heatmaps
            (every scale you want in the report).
        detections: the image's detections, best first (drawn and listed).
        chosen: index of the explained detection in ``detections`` (highlighted).
        model: the model's name.
        image_name: the image's name.
        colormap, opacity: how the overlays are drawn.
        score_threshold, iou_threshold: the detection thresholds, shown if given.
        detections_note: e.g. ``Detections.note()`` when detections were capped.
        max_side: images are shrunk to at most this many pixels a side.

    Returns:
        The HTML text (UTF-8). A JSON copy of :func:`explanation_metadata` (plus the
        detections) is embedded as ``<script type="application/json"
        id="yolocam-metadata">``.
    """
    small = render.shrink(image, max_side)
    factor = small.shape[1] / image.shape[1]
    shrunk = _scaled_detections(detections, factor)
    photo = render.draw_detections(small, shrunk, highlight=chosen)
    heatmaps = [
        cv2.resize(m.heatmap, (small.shape[1], small.shape[0]), interpolation=cv2.INTER_LINEAR)
        if m.heatmap.shape != small.shape[:2]
        else m.heatmap
        for m in explanation.maps
    ]
    import dataclasses

    resized = dataclasses.replace(
        explanation,
        maps=tuple(
            dataclasses.replace(m, heatmap=h)
            for m, h in zip(explanation.maps, heatmaps, strict=True)
        ),
        box_xyxy=None
        if explanation.box_xyxy is None
        else tuple(float(v) * factor for v in explanation.box_xyxy),
    )
    overlays = render.explanation_overlays(small, resized, colormap, opacity)
    legend = render.colorbar(
        min(360, small.shape[0]), colormap, title=explanation.norm.replace("-", " ")
    )
    extra: dict = {}
    if score_threshold is not None or iou_threshold is not None:
        extra["thresholds"] = {"score": score_threshold, "iou": iou_threshold}
    if detections_note:
        extra["detections_note"] = detections_note
    record = explanation_metadata(
        explanation,
        model=model,
        image_name=image_name,
        colormap=colormap,
        opacity=opacity,
        detections=list(detections),
        extra=extra,
    )
    e = html.escape
    method = record["method"]
    method_cell = e(method.get("title", method["name"])) + f" (<code>{e(method['name'])}</code>)"
    if method.get("paper"):
        method_cell += f' · <a href="{e(method["paper"])}">paper</a>'
    if method.get("note"):
        method_cell += f"<br>{e(method['note'])}"
    height, width = explanation.image_size
    rows = [
        ("Image", f"{e(image_name or '')} ({width}×{height} px)"),
        ("Model", e(model or "")),
        ("Method", method_cell),
        ("Target", e(explanation.target)),
        ("Score", e(explanation.score_note or "")),
        ("Normalisation", e(render.norm_caption(explanation.norm, explanation).split(": ", 1)[1])),
    ]
    if score_threshold is not None:
        thresholds = f"score ≥ {score_threshold:.2f}"
        if iou_threshold is not None:
            thresholds += f", NMS IoU {iou_threshold:.2f}"
        rows.append(("Detection thresholds", e(thresholds)))
    rows.append(("yolocam", e(record["yolocam_version"])))
    rows.append(("Created", e(record["created"])))
    meta_rows = "".join(f"<tr><th>{k}</th><td>{v}</td></tr>" for k, v in rows)

    grids = {k: label.split(" · ")[0] for k, label in enumerate(record["scale_labels"])}
    grids |= {m["scale"]: m["label"].split(" · ")[0] for m in record["scales"]}  # "13×13"
    det_rows = "".join(
        f"<tr{' class=chosen' if k == chosen else ''}><td>{k}</td><td>{e(d.class_name)}</td>"
        f"<td>{d.score:.3f}</td><td>{e(grids.get(d.scale, str(d.scale)))}</td>"
        f"<td>{d.cell[0]}, {d.cell[1]}</td>"
        f"<td>{', '.join(f'{v:.0f}' for v in d.box_xyxy)}</td></tr>"
        for k, d in enumerate(detections)
    )
    det_table = (
        "<table><tr><th>#</th><th>class</th><th>score</th><th>scale</th><th>cell</th>"
        f"<th>box (x1, y1, x2, y2)</th></tr>{det_rows}</table>"
        if detections
        else "<p>No detection at this threshold.</p>"
    )
    note = f'<p class="note">{e(detections_note)}</p>' if detections_note else ""

    figures = []
    for panel, m in zip(overlays, explanation.maps, strict=True):
        classes = ["scale"]
        if m.weak:
            classes.append("weak")
        if m.scale == explanation.own_scale:
            classes.append("own")
        caption = render.map_caption(explanation, m, label=False)
        figures.append(
            f'<figure class="{" ".join(classes)}" data-scale="{m.scale}">'
            f'<img src="{data_uri(panel)}" alt="{e(m.label)} overlay">'
            f"<figcaption><b>{e(m.label)}</b><br>{e(caption)}<br>"
            f"<small>layer {e(m.layer)}</small></figcaption></figure>"
        )
    figures.append(
        f'<figure class="legend"><img src="{data_uri(legend, "png")}" alt="colour bar">'
        "<figcaption>colour bar</figcaption></figure>"
    )
    blob = json.dumps(record, ensure_ascii=False, indent=1).replace("</", "<\\/")
    title = f"yolocam · {explanation.method} · {explanation.target}" + (
        f" · {image_name}" if image_name else ""
    )
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="generator" content="yolocam {e(record["yolocam_version"])}">
<title>{e(title)}</title><style>{_STYLE}</style></head>
<body>
<header><h1>Why did the detector fire?</h1>
<p class="sub">{e(explanation.method)} · {e(explanation.target)}</p></header>
<section><table class="meta">{meta_rows}</table></section>
<section><h2>Detections</h2>{note}
<div class="row"><figure class="photo"><img src="{data_uri(photo)}" alt="photo with detections">
<figcaption>{len(detections)} detection(s); the explained one highlighted</figcaption></figure>
<div>{det_table}</div></div></section>
<section><h2>Heatmaps by scale</h2>
<p>{e(render.norm_caption(explanation.norm, explanation))}. {e(explanation.score_note or "")}</p>
<div class="row">{"".join(figures)}</div></section>
<footer>Made with yolocam {e(record["yolocam_version"])}. Red: where the chosen score rose
most at that scale. A weak scale's map (its score under
{record["weak_below"]:.0%} of the top scale's) shows what little that scale adds, not the
target.</footer>
<script type="application/json" id="yolocam-metadata">{blob}</script>
</body></html>
"""
