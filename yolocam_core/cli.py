"""The ``yolocam`` command.

Every error a user can cause prints one line ``yolocam: error: …`` on stderr and
the command exits non-zero; files that work are still processed.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2


def _quiet_tensorflow() -> None:
    """Import TensorFlow and initialise its devices with stderr silenced.

    TensorFlow's C++ start-up lines (oneDNN, CUDA probing) are written before its
    log level applies; they would bury the one-line errors this command promises.
    """
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    sys.stderr.flush()
    saved = os.dup(2)
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 2)
        import tensorflow as tf

        tf.constant(0.0)
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)


def _error(message: str) -> None:
    print(f"yolocam: error: {message}", file=sys.stderr)


def _probability(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"{value} is outside [0, 1]")
    return value


def _add_model_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", default="yolov4-tiny", help="model name (default: yolov4-tiny)")
    parser.add_argument(
        "--score", type=_probability, default=0.25, help="score threshold (default 0.25)"
    )
    parser.add_argument(
        "--iou", type=_probability, default=0.45, help="NMS IoU threshold (default 0.45)"
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="yolocam",
        description="Grad-CAM explanations for YOLO object detectors.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    detect = sub.add_parser("detect", help="detect objects in images")
    detect.add_argument("images", nargs="+", metavar="IMAGE")
    _add_model_options(detect)
    detect.add_argument("--json", action="store_true", help="print JSON instead of a table")

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


def run_detect(args: argparse.Namespace) -> int:
    from yolocam_core.errors import YolocamError
    from yolocam_core.images import load_image
    from yolocam_core.zoo import load_detector

    detector = load_detector(args.model)
    failed = 0
    results, tables = [], []
    for path in args.images:
        try:
            image = load_image(path)
        except YolocamError as exc:  # reported per file; the run goes on
            _error(str(exc))
            failed += 1
            continue
        detections = detector.detect(image, args.score, args.iou)
        height, width = image.shape[:2]
        if args.json:
            results.append(
                {
                    "image": path,
                    "width": width,
                    "height": height,
                    "detections": [d.to_dict() for d in detections],
                }
            )
        else:
            tables.append(format_table(path, width, height, detections, detector))
    if args.json:
        print(json.dumps(results, indent=2))
    elif tables:
        print("\n\n".join(tables))
    return EXIT_FAILED if failed else EXIT_OK


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``yolocam`` command; returns the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    _quiet_tensorflow()
    from yolocam_core.errors import YolocamError

    try:
        return {"detect": run_detect}[args.command](args)
    except YolocamError as exc:
        _error(str(exc))
        return EXIT_FAILED
    except KeyboardInterrupt:
        _error("interrupted")
        return 130


if __name__ == "__main__":
    sys.exit(main())
