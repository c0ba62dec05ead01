"""``yolocam explain``: one target's maps at every scale, saved as files."""

from __future__ import annotations

import argparse
import json

from yolocam_core.cli.options import (
    EXIT_OK,
    add_map_options,
    add_model_options,
    check_target,
    model_spec_from_args,
    parse_scales,
)
from yolocam_core.errors import YolocamError, for_option


def add_parser(sub) -> argparse.ArgumentParser:
    """Add ``explain`` to the subcommands."""
    from yolocam_core.cams import method_names

    parser = sub.add_parser(
        "explain",
        help="explain a detection, a class or the whole head at every scale",
        description="Writes one overlay PNG and one raw grid-resolution map (.npy) per "
        "scale, a side-by-side sheet PNG and a JSON record of what the maps explain, named "
        "<image>-<hash>_<target>_<method>_… (see the README).",
    )
    parser.add_argument("image", metavar="IMAGE")
    add_model_options(parser)
    parser.add_argument(
        "--target",
        default="detection:0",
        help="detection:K (K-th detection of `yolocam detect`), class:NAME, or seed "
        "(the article's whole head output); default detection:0",
    )
    parser.add_argument("--method", default="gradcam", choices=method_names())
    add_map_options(parser)
    parser.add_argument("--out", default="yolocam-out", help="output folder (default yolocam-out)")
    parser.add_argument("--json", action="store_true", help="print what was written as JSON")
    return parser


def run(args: argparse.Namespace) -> int:
    """Check every argument, the output folder and the image, then load the model,
    explain and write the files."""
    from yolocam_core.explainer import Explainer
    from yolocam_core.files import ensure_output_folder, shown
    from yolocam_core.images import load_image
    from yolocam_core.outputs import (
        explanation_prefix,
        explanation_record,
        image_tag,
        save_explanation,
        target_stem,
    )
    from yolocam_core.targets import TargetSpec

    # Everything that can be known before the model is loaded.
    scales = parse_scales(args.scales)
    check_target(args.target)
    out = ensure_output_folder(args.out)
    image = load_image(args.image)
    spec = model_spec_from_args(args)

    detector = spec.load()
    detector.check_scales(scales, "--scales")
    try:
        target_spec = TargetSpec.parse(args.target, detector.class_names)
    except YolocamError as exc:
        raise for_option(exc, "--target") from None
    explainer = Explainer(detector)
    fwd = explainer.forward(image)
    detections = explainer.detect(fwd, args.score, args.iou)
    try:
        target = target_spec.build(detections)
    except YolocamError as exc:
        raise for_option(exc, "--target") from None
    result = explainer.explain(
        fwd, target, args.method, None if scales is None else list(scales), norm=args.norm
    )

    if target_spec.kind == "detection":
        class_name = detections[target_spec.index].class_name
    elif target_spec.kind == "class":
        class_name = detector.class_names[target_spec.index]
    else:
        class_name = ""
    stem = target_stem(target_spec.kind, target_spec.index, class_name)
    prefix = explanation_prefix(stem, args.method, image_tag(args.image))
    name = shown(args.image)
    try:
        saved = save_explanation(
            out,
            prefix,
            fwd.image,
            result,
            image_name=name,
            colormap=args.colormap,
            opacity=args.opacity,
        )
    except OSError as exc:
        raise YolocamError(f"--out {shown(out)}: cannot write ({exc.strerror or exc})") from None
    record = explanation_record(result, saved, name)
    if args.json:
        print(json.dumps(record, indent=2, ensure_ascii=False))
    else:
        print(f"{name}: {args.method} · {result.target}")
        for item in record["scales"]:
            print(f"  {item['label']:<20} score {item['score']:.4g}  {item['overlay']}")
        print(f"  sheet: {record['sheet']}")
    return EXIT_OK
