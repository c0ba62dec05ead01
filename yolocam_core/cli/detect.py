"""``yolocam detect``: the detections of each image, as a table or as JSON."""

from __future__ import annotations

import argparse
import json

from yolocam_core.cli.options import (
    GoodImages,
    add_model_options,
    model_spec_from_args,
    note_detections,
    note_image,
)


def add_parser(sub) -> argparse.ArgumentParser:
    """Add ``detect`` to the subcommands."""
    parser = sub.add_parser("detect", help="detect objects in images")
    parser.add_argument("images", nargs="+", metavar="IMAGE")
    add_model_options(parser)
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    return parser


def format_table(image: str, width: int, height: int, detections, detector) -> str:
    """A readable table of one image's detections."""
    lines = [f"{image} ({width}×{height}): {len(detections)} detection(s)"]
    if detections:
        lines.append(
            f"  {'#':>2}  {'class':<16} {'score':>5}  {'box x1, y1, x2, y2':<24} "
            f"{'scale':<20} {'cell':<9} anchor"
        )
    for k, det in enumerate(detections):
        box = ", ".join(f"{v:.0f}" for v in det.box_xyxy)
        cell = f"({det.cell[0]}, {det.cell[1]})"
        lines.append(
            f"  {k:>2}  {det.class_name:<16} {det.score:>5.2f}  {box:<24} "
            f"{detector.head_label(det.scale):<20} {cell:<9} {det.anchor}"
        )
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    """Detect in every image; a bad image is one line on stderr and the others still run.

    The model is loaded at the first good image (a call with only bad files is quick).
    """
    from yolocam_core.files import shown
    from yolocam_core.outputs import detections_report, report_notes

    spec = model_spec_from_args(args)
    detector = None
    images = GoodImages(args.images)
    reports, tables = [], []
    for path, image in images:
        if detector is None:
            detector = spec.load()
        note_image(shown(path), image, detector)
        detections = detector.detect(image, args.score, args.iou, args.max_detections)
        note_detections(shown(path), detections)
        height, width = image.shape[:2]
        if args.json:
            extra = report_notes(detections, detector.image_warning((height, width)))
            reports.append(
                detections_report(
                    path,
                    (height, width),
                    detections,
                    model=detector.name,
                    score_threshold=args.score,
                    iou_threshold=args.iou,
                    max_detections=args.max_detections,
                    **extra,
                )
            )
        else:
            tables.append(format_table(shown(path), width, height, detections, detector))
    if args.json:
        print(json.dumps(reports, indent=2, ensure_ascii=False))
    elif tables:
        print("\n\n".join(tables))
    return images.status
