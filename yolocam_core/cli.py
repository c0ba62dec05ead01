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
from pathlib import Path

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


def _input_size(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value <= 0 or value % 32:
        raise argparse.ArgumentTypeError(f"{value} is not a positive multiple of 32 (e.g. 416)")
    return value


def _add_map_options(parser: argparse.ArgumentParser) -> None:
    """--scales, --norm, --colormap and --opacity (``explain`` and ``batch``)."""
    parser.add_argument(
        "--scales", default="all", help="'all' or comma-separated head indices, e.g. 0,1"
    )
    parser.add_argument("--norm", default="per-map", choices=("per-map", "shared"))
    parser.add_argument("--colormap", default="jet", choices=("jet", "turbo", "viridis"))
    parser.add_argument("--opacity", type=_probability, default=0.5)


def _add_model_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--model",
        default="yolov4-tiny",
        metavar="NAME|PATH",
        help="model name (default: yolov4-tiny), or your own model: a Darknet .cfg (its "
        ".weights beside it, or --weights) or a Keras .keras/.h5 file with raw YOLO head outputs",
    )
    own = parser.add_argument_group("your own model (with --model PATH)")
    own.add_argument("--weights", metavar="FILE", help="Darknet .weights for a .cfg --model")
    own.add_argument(
        "--classes",
        metavar="FILE|coco|voc",
        help="class names: a file with one name per line, or a preset (default: coco for 80 "
        "classes, voc for 20)",
    )
    own.add_argument(
        "--anchors",
        metavar="W,H, W,H, ...",
        help="anchor sizes in input pixels, e.g. '10,13, 16,30, 33,23, …' (default: the cfg's; "
        "Keras models: YOLOv3's nine or tiny's six)",
    )
    own.add_argument(
        "--anchor-masks",
        metavar="MASKS",
        help="Keras models: anchors of each head, coarsest first, e.g. '6,7,8; 3,4,5; 0,1,2', "
        "or 'keras-yolo3' for its tiny model (default: split evenly, largest first)",
    )
    own.add_argument(
        "--input-size",
        type=_input_size,
        metavar="N",
        help="network input side in pixels, a multiple of 32 (default: the model's, else 416)",
    )
    own.add_argument(
        "--letterbox",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="keep the aspect ratio and pad (default: the cfg's letter_box; Keras models: on)",
    )
    own.add_argument(
        "--trust-model-code",
        action="store_true",
        help="load Keras models that contain Python code (Lambda layers, custom code); "
        "only for files you wrote or trust",
    )
    parser.add_argument(
        "--score", type=_probability, default=0.25, help="score threshold (default 0.25)"
    )
    parser.add_argument(
        "--iou", type=_probability, default=0.45, help="NMS IoU threshold (default 0.45)"
    )


class _Parser(argparse.ArgumentParser):
    """Usage errors as one line, with where to find help."""

    def error(self, message: str):
        self.exit(EXIT_USAGE, f"yolocam: error: {message} (see `{self.prog} --help`)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="yolocam",
        description="Grad-CAM explanations for YOLO object detectors.",
    )
    sub = parser.add_subparsers(
        dest="command", required=True, metavar="COMMAND", parser_class=_Parser
    )

    detect = sub.add_parser("detect", help="detect objects in images")
    detect.add_argument("images", nargs="+", metavar="IMAGE")
    _add_model_options(detect)
    detect.add_argument("--json", action="store_true", help="print JSON instead of a table")

    from yolocam_core.cams import method_names

    explain = sub.add_parser(
        "explain",
        help="explain a detection, a class or the whole head at every scale",
        description="Writes one overlay PNG per scale, a side-by-side sheet PNG and the raw "
        "grid-resolution maps (.npy).",
    )
    explain.add_argument("image", metavar="IMAGE")
    _add_model_options(explain)
    explain.add_argument(
        "--target",
        default="detection:0",
        help="detection:K (K-th detection of `yolocam detect`), class:NAME, or seed "
        "(the article's whole head output); default detection:0",
    )
    explain.add_argument("--method", default="gradcam", choices=method_names())
    _add_map_options(explain)
    explain.add_argument("--out", default="yolocam-out", help="output folder (default yolocam-out)")
    explain.add_argument("--json", action="store_true", help="print what was written as JSON")

    from yolocam_core.evaluate import add_evaluate_parser

    add_evaluate_parser(sub)

    from yolocam_core.batch import add_batch_parser

    add_batch_parser(sub)
    return parser


def detector_from_args(args: argparse.Namespace):
    """The detector named by the model options of :func:`_add_model_options`.

    Commands whose parser lacks the "your own model" options get their defaults.
    """
    from yolocam_core.models import load_detector

    return load_detector(
        args.model,
        weights=getattr(args, "weights", None),
        classes=getattr(args, "classes", None),
        anchors=getattr(args, "anchors", None),
        anchor_masks=getattr(args, "anchor_masks", None),
        input_size=getattr(args, "input_size", None),
        letterbox=getattr(args, "letterbox", None),
        trust_model_code=bool(getattr(args, "trust_model_code", False)),
    )


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

    detector = detector_from_args(args)
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
        print(json.dumps(results, indent=2, ensure_ascii=False))
    elif tables:
        print("\n\n".join(tables))
    return EXIT_FAILED if failed else EXIT_OK


def parse_target(text: str, detections, class_names):
    """``detection:K`` | ``class:NAME`` | ``seed`` -> a Target; YolocamError if invalid."""
    from yolocam_core.errors import YolocamError
    from yolocam_core.targets import ClassTarget, DetectionTarget, SeedTarget

    kind, _, value = text.partition(":")
    if kind == "seed" and not value:
        return SeedTarget()
    if kind == "detection":
        if not value.isdigit():
            raise YolocamError(f"--target {text!r}: K in detection:K must be a whole number")
        k = int(value)
        if k >= len(detections):
            raise YolocamError(
                f"--target {text!r}: the image has {len(detections)} detection(s) at this "
                f"--score; K must be below that (see `yolocam detect`)"
            )
        return DetectionTarget(detections[k])
    if kind == "class" and value:
        lowered = [n.lower() for n in class_names]
        if value.lower() in lowered:
            return ClassTarget(lowered.index(value.lower()))
        if value.isdigit() and int(value) < len(class_names):
            return ClassTarget(int(value))
        raise YolocamError(
            f"--target {text!r}: unknown class; the model's classes include "
            f"{', '.join(class_names[:10])}, …"
        )
    raise YolocamError(f"--target {text!r}: use detection:K, class:NAME or seed")


def parse_scales(text: str, num_heads: int) -> list[int] | None:
    from yolocam_core.errors import YolocamError

    if text == "all":
        return None
    try:
        scales = [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise YolocamError(f"--scales {text!r}: use 'all' or indices like 0,1") from None
    bad = [s for s in scales if not 0 <= s < num_heads]
    if bad or not scales:
        raise YolocamError(
            f"--scales {text!r}: this model has scales 0..{num_heads - 1}; got {bad or 'none'}"
        )
    return scales


def run_explain(args: argparse.Namespace) -> int:
    import numpy as np
    from PIL import Image

    from yolocam_core import render
    from yolocam_core.explainer import Explainer

    detector = detector_from_args(args)
    explainer = Explainer(detector)
    fwd = explainer.forward(args.image)
    detections = explainer.detect(fwd, args.score, args.iou)
    target = parse_target(args.target, detections, detector.class_names)
    scales = parse_scales(args.scales, len(detector.heads))
    result = explainer.explain(fwd, target, args.method, scales, norm=args.norm)

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    slug = f"{Path(args.image).stem}_{args.method}_{args.target.replace(':', '-')}"
    slug = "".join(c if c.isalnum() or c in "-_+." else "_" for c in slug)
    overlays = render.explanation_overlays(fwd.image, result, args.colormap, args.opacity)
    written = []
    for scale_map, panel in zip(result.maps, overlays, strict=True):
        grid = f"{scale_map.grid_map.shape[0]}x{scale_map.grid_map.shape[1]}"
        png = out / f"{slug}_scale{scale_map.scale}_{grid}.png"
        npy = out / f"{slug}_scale{scale_map.scale}_{grid}.npy"
        Image.fromarray(panel).save(png)
        np.save(npy, scale_map.grid_map)
        written.append(
            {
                "scale": scale_map.scale,
                "label": scale_map.label,
                "layer": scale_map.layer,
                "score": scale_map.score,
                "overlay": str(png),
                "raw_map": str(npy),
            }
        )
    sheet_path = out / f"{slug}_sheet.png"
    Image.fromarray(render.sheet(fwd.image, result, args.colormap, args.opacity)).save(sheet_path)
    if args.json:
        report = {
            "image": args.image,
            "method": args.method,
            "target": result.target,
            "norm": args.norm,
            "sheet": str(sheet_path),
            "scales": written,
        }
        print(json.dumps(report, indent=2, ensure_ascii=False))
    else:
        print(f"{args.image}: {args.method} · {result.target}")
        for item in written:
            print(f"  {item['label']:<20} score {item['score']:.4g}  {item['overlay']}")
        print(f"  sheet: {sheet_path}")
    return EXIT_OK


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``yolocam`` command; returns the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    _quiet_tensorflow()
    from yolocam_core.batch import run as run_batch
    from yolocam_core.errors import YolocamError
    from yolocam_core.evaluate import run_evaluate

    try:
        return {
            "detect": run_detect,
            "explain": run_explain,
            "evaluate": run_evaluate,
            "batch": run_batch,
        }[args.command](args)
    except YolocamError as exc:
        _error(str(exc))
        return EXIT_FAILED
    except KeyboardInterrupt:
        _error("interrupted")
        return 130


if __name__ == "__main__":
    sys.exit(main())
