"""``yolocam report``: one explanation as a self-contained HTML page."""

from __future__ import annotations

import argparse

from yolocam_core.cli.explain import check_early, explain_image, method_line
from yolocam_core.cli.options import (
    EXIT_OK,
    add_explain_options,
)
from yolocam_core.errors import YolocamError


def add_parser(sub) -> argparse.ArgumentParser:
    """Add ``report`` to the subcommands."""
    parser = sub.add_parser(
        "report",
        help="explain one target and write a self-contained HTML report",
        description="One HTML file with the photo and its detections, every scale's "
        "overlay with its score, and what the maps claim (target, method, normalisation, "
        "model, thresholds; also embedded as JSON), images inline: it opens anywhere, "
        "offline.",
    )
    parser.add_argument("image", metavar="IMAGE")
    parser.add_argument(
        "-o", "--output", required=True, metavar="FILE.html", help="the HTML file to write"
    )
    add_explain_options(parser)
    return parser


def run(args: argparse.Namespace) -> int:
    """Check the arguments and where the report goes, explain, write the page."""
    from yolocam_core.files import check_output_file, shown
    from yolocam_core.report import html_report

    scales = check_early(args)
    output = check_output_file(args.output, "--output")
    explained = explain_image(args, scales)
    spec = explained.target_spec
    name = shown(args.image)
    page = html_report(
        explained.image,
        explained.result,
        detections=explained.detections,
        chosen=spec.index if spec.kind == "detection" else None,
        model=args.model,
        image_name=name,
        colormap=args.colormap,
        opacity=args.opacity,
        score_threshold=args.score,
        iou_threshold=args.iou,
        detections_note=explained.detections.note()
        if hasattr(explained.detections, "note")
        else None,
    )
    try:
        output.write_text(page, encoding="utf-8")
    except OSError as exc:
        raise YolocamError(
            f"--output {shown(output)}: cannot write ({exc.strerror or exc})"
        ) from None
    print(method_line(name, args, explained))
    print(f"  report: {shown(output)}")
    return EXIT_OK
