"""``yolocam explain``: one target's maps at every scale, saved as files."""

from __future__ import annotations

import argparse
import json

from yolocam_core.cli.options import (
    AUTO,
    EXIT_OK,
    add_drise_options,
    add_map_options,
    add_method_option,
    add_model_options,
    add_target_options,
    cam_method,
    check_drise_options,
    check_target,
    drise_progress,
    model_spec_from_args,
    note_detections,
    parse_scales,
    resolve_method,
)
from yolocam_core.errors import YolocamError, for_option


def add_parser(sub) -> argparse.ArgumentParser:
    """Add ``explain`` to the subcommands."""
    parser = sub.add_parser(
        "explain",
        help="explain a detection, a class or the whole head at every scale",
        description="Writes one overlay PNG and one raw grid-resolution map (.npy) per "
        "scale, a side-by-side sheet PNG and a JSON record of what the maps explain, named "
        "<image>-<hash>_<target>_<method>_… (see the README).",
    )
    parser.add_argument("image", metavar="IMAGE")
    add_model_options(parser)
    add_target_options(parser)
    add_method_option(parser)
    add_drise_options(parser)
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

    # Everything that can be known before the model is loaded.
    scales = parse_scales(args.scales)
    check_target(args.target)
    check_drise_options(args, [args.method])  # auto is never drise
    out = ensure_output_folder(args.out)
    image = load_image(args.image)
    spec = model_spec_from_args(args)

    detector = spec.load()
    detector.check_scales(scales, "--scales")
    target_spec, method = resolve_target(args, detector.class_names)
    explainer = Explainer(detector)
    fwd = explainer.forward(image)
    detections = explainer.detect(fwd, args.score, args.iou, args.max_detections)
    note_detections(shown(args.image), detections)
    try:
        target = target_spec.build(detections)
    except YolocamError as exc:
        raise for_option(exc, "--target") from None
    cam = cam_method(method, args)
    with drise_progress(cam) as progress:
        result = explainer.explain(
            fwd,
            target,
            cam,
            None if scales is None else list(scales),
            norm=args.norm,
            progress=progress,
        )

    if target_spec.kind == "detection":
        class_name = detections[target_spec.index].class_name
    elif target_spec.kind == "class":
        class_name = detector.class_names[target_spec.index]
    else:
        class_name = ""
    stem = target_stem(target_spec.kind, target_spec.index, class_name)
    if target_spec.attribute != "score":
        stem += f"-{target_spec.attribute}"
    prefix = explanation_prefix(stem, method, image_tag(args.image))
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
        how = " (auto: the default for a " + target_spec.kind + " target)"
        print(f"{name}: {method}{how if args.method == AUTO else ''} · {result.target}")
        for item in record["scales"]:
            print(f"  {item['label']:<20} score {item['score']:.4g}  {item['overlay']}")
        print(f"  sheet: {record['sheet']}")
    return EXIT_OK


def resolve_target(args: argparse.Namespace, class_names) -> tuple:
    """The ``--target``/``--attribute`` spec and the method (``auto`` resolved), checked
    together: a refused method/target pair is one line (the library's reason).

    Returns:
        (:class:`~yolocam_core.targets.TargetSpec`, method name).

    Raises:
        YolocamError: a bad target or attribute, or a method that cannot explain it.
    """
    from yolocam_core.cams import get_method
    from yolocam_core.targets import TargetSpec

    try:
        target_spec = TargetSpec.parse(args.target, class_names, args.attribute)
    except YolocamError as exc:
        raise for_option(exc, "--target") from None
    method = resolve_method(args.method, [target_spec.kind])
    if target_spec.kind != "detection":  # known before detecting: refuse early
        get_method(method).check_target(target_spec.build(()))
    return target_spec, method
