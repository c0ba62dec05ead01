"""``yolocam explain``: one target's maps at every scale, saved as files."""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from yolocam_core.cli.options import (
    AUTO,
    EXIT_OK,
    add_explain_options,
    cam_method,
    check_drise_options,
    check_target,
    drise_progress,
    model_spec_from_args,
    note,
    note_detections,
    note_image,
    parse_scales,
    resolve_method,
)
from yolocam_core.errors import YolocamError, for_option

if TYPE_CHECKING:
    import numpy as np

    from yolocam_core.explainer import Explanation
    from yolocam_core.targets import TargetSpec


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
    add_explain_options(parser)
    parser.add_argument("--out", default="yolocam-out", help="output folder (default yolocam-out)")
    parser.add_argument("--json", action="store_true", help="print what was written as JSON")
    return parser


@dataclass
class Explained:
    """What :func:`explain_image` computed for ``explain`` and ``report``."""

    image: np.ndarray
    detections: Sequence
    target_spec: TargetSpec
    method: str
    result: Explanation
    class_names: Sequence[str]
    model: str = ""


def check_early(args: argparse.Namespace) -> tuple[int, ...] | None:
    """What can be checked before the image and the model are loaded; the scales."""
    model_spec_from_args(args)  # a malformed model option
    scales = parse_scales(args.scales)
    check_target(args.target)
    check_drise_options(args, [args.method])  # auto is never drise
    kind = args.target.strip().partition(":")[0]  # its form was just checked
    if kind != "detection":  # the pair is known from the text: refuse it now
        from yolocam_core.cams import check_kind

        check_kind(resolve_method(args.method, [kind]), kind, args.attribute)
    return scales


def explain_image(args: argparse.Namespace, scales: tuple[int, ...] | None) -> Explained:
    """Load the image and the model, detect, and explain ``--target`` with ``--method``
    (auto resolved), a D-RISE bar on stderr while it runs.

    Raises:
        YolocamError: a bad image, model, scale, target or method/target pair.
    """
    from yolocam_core.explainer import Explainer
    from yolocam_core.files import shown
    from yolocam_core.images import load_image

    image = load_image(args.image)
    detector = model_spec_from_args(args).load()
    detector.check_scales(scales, "--scales")
    target_spec, method = resolve_target(args, detector.class_names)
    note_image(shown(args.image), image, detector)
    explainer = Explainer(detector)
    fwd = explainer.forward(image)
    detections = explainer.detect(fwd, args.score, args.iou, args.max_detections)
    note_detections(shown(args.image), detections)
    try:
        target = target_spec.build(detections)
    except YolocamError as exc:
        raise for_option(exc, "--target") from None
    if target_spec.kind == "class" and all(d.class_id != target_spec.index for d in detections):
        name = detector.class_names[target_spec.index]
        where = (
            f"among the {len(detections)} detections kept (--max-detections)"
            if detections.capped
            else "detected"
        )
        note(
            f"{shown(args.image)}: no {name} {where} at score ≥ {args.score:.2f}; the maps "
            f"show what raises the {name} score anyway"
        )
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
    return Explained(
        fwd.image, detections, target_spec, method, result, detector.class_names, detector.name
    )


def method_line(name: str, args: argparse.Namespace, explained: Explained) -> str:
    """``bus.jpg: odam (auto: the default for a detection target) · person 0.87``."""
    how = f" (auto: the default for a {explained.target_spec.kind} target)"
    method = explained.method + (how if args.method == AUTO else "")
    return f"{name}: {method} · {explained.result.target}"


def run(args: argparse.Namespace) -> int:
    """Check every argument, the output folder and the image, then load the model,
    explain and write the files."""
    from yolocam_core import render
    from yolocam_core.files import ensure_output_folder, shown
    from yolocam_core.outputs import (
        explanation_prefix,
        explanation_record,
        image_tag,
        save_explanation,
        target_stem,
    )

    scales = check_early(args)
    out = ensure_output_folder(args.out)
    explained = explain_image(args, scales)
    target_spec, method, result = explained.target_spec, explained.method, explained.result
    detections = explained.detections

    if target_spec.kind == "detection":
        class_name = detections[target_spec.index].class_name
    elif target_spec.kind == "class":
        class_name = explained.class_names[target_spec.index]
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
            explained.image,
            result,
            image_name=name,
            colormap=args.colormap,
            opacity=args.opacity,
            model=explained.model,
        )
    except OSError as exc:
        raise YolocamError(f"--out {shown(out)}: cannot write ({exc.strerror or exc})") from None
    record = {
        "model": explained.model,
        "thresholds": {"score": args.score, "iou": args.iou},
        **explanation_record(result, saved, name),
    }
    if target_spec.kind == "detection":  # which box, beyond its caption
        det = detections[target_spec.index]
        record["detection"] = {"index": target_spec.index, **det.to_dict()}
    kept = json.loads(saved.record.read_text(encoding="utf-8"))  # paths relative to --out
    extra = {k: v for k, v in record.items() if k not in kept}
    saved.record.write_text(
        json.dumps({**extra, **kept}, indent=1, ensure_ascii=False), encoding="utf-8"
    )
    if args.json:
        print(json.dumps(record, indent=2, ensure_ascii=False))
    else:
        print(method_line(name, args, explained))
        for item, scale_map in zip(record["scales"], result.maps, strict=True):
            print(f"  {item['label']:<20} {render.map_caption(result, scale_map, label=False)}")
            print(f"  {'':<20} {item['overlay']}")
        if len(result.maps) < len(result.scale_scores):  # the heads not shown, too
            print(f"  {render.scores_line(result)}")
        print(f"  {render.norm_caption(result.norm, result)}")
        print(f"  sheet: {record['sheet']}")
    return EXIT_OK


def resolve_target(args: argparse.Namespace, class_names) -> tuple:
    """The ``--target``/``--attribute`` spec, with the model's class names, and the
    method (``auto`` resolved). Pairs known from the text were refused by
    :func:`check_early`; a detection's pair is checked by the explainer once built.

    Returns:
        (:class:`~yolocam_core.targets.TargetSpec`, method name).

    Raises:
        YolocamError: a bad target or attribute (e.g. an unknown class).
    """
    from yolocam_core.targets import TargetSpec

    try:
        target_spec = TargetSpec.parse(args.target, class_names, args.attribute)
    except YolocamError as exc:
        raise for_option(exc, "--target") from None
    return target_spec, resolve_method(args.method, [target_spec.kind])
