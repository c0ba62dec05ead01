"""``yolocam evaluate``: faithfulness metrics of every detection's maps, and the tables."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING

from yolocam_core.cli.options import (
    GoodImages,
    add_drise_options,
    add_model_options,
    cam_method,
    check_drise_options,
    drise_progress,
    mask_count,
    model_spec_from_args,
    note_detections,
    note_image,
    parse_methods,
    parse_scales,
    probability,
    resolve_method,
    step_count,
    whole,
)
from yolocam_core.errors import YolocamError

if TYPE_CHECKING:
    from yolocam_core.cams import DRise
    from yolocam_core.evaluate import ImageEvaluation

#: Masks of the D-RISE reference ``evaluate`` compares every map with (``--drise-masks``)
#: when ``drise`` is not among the methods: fewer than D-RISE's own default (1,000),
#: since it runs on every image evaluated. With ``drise`` among them, the reference is
#: its maps (its ``--masks``), made once.
DRISE_REFERENCE_MASKS = 300
#: ``--randomise``'s default.
DEFAULT_RANDOMISE = "last-two"


def add_parser(sub) -> argparse.ArgumentParser:
    """Add ``evaluate`` to the subcommands."""
    from yolocam_core.evaluate import DEFAULT_SEEDS
    from yolocam_core.metrics import DEFAULT_STEPS, RANDOMISATIONS

    parser = sub.add_parser(
        "evaluate",
        help="faithfulness metrics of the maps of every detection",
        description="For every detection, method and scale: pointing game, instance rate "
        "(the peak in the box and in no other box of its class), energy-based pointing "
        "game, deletion and insertion AUC (against a random map of the same grid), the "
        "model-randomisation Spearman ρ, the map's support and its Spearman agreement with "
        "D-RISE's map of the same detection; then a summary table per method × scale.",
    )
    parser.add_argument("images", nargs="+", metavar="IMAGE")
    add_model_options(parser)
    parser.add_argument(
        "--methods",
        default="all",
        help="'all' (every gradient method; not drise: black box, one forward pass per "
        "mask; 'all,drise' adds it), 'auto' (odam, the detections' default), or "
        "comma-separated names (default all)",
    )
    parser.add_argument(
        "--scales", default="all", help="'all' or comma-separated head indices, e.g. 0,1"
    )
    parser.add_argument(
        "--steps",
        type=step_count,
        default=DEFAULT_STEPS,
        help=f"deletion/insertion steps (default {DEFAULT_STEPS})",
    )
    parser.add_argument(
        "--fill",
        default="grey",
        choices=("grey", "blur"),
        help="what removed pixels become (default grey 128)",
    )
    parser.add_argument(
        "--seeds",
        type=whole(1, 100),
        default=len(DEFAULT_SEEDS),
        help=f"random maps averaged for the baseline (default {len(DEFAULT_SEEDS)})",
    )
    parser.add_argument(
        "--min-score",
        type=probability,
        default=None,
        help="evaluate only detections at or above this score (default: all detected)",
    )
    parser.add_argument(
        "--no-sanity", action="store_true", help="skip the model-randomisation check"
    )
    parser.add_argument(
        "--randomise",
        choices=RANDOMISATIONS,
        default=None,
        help="which layers the randomisation check re-initialises: last-two (each head's "
        "last two convolutions, default) or cascade (every layer from the layer each "
        "method explains at to the head output, as Adebayo et al.; one copy per method)",
    )
    parser.add_argument(
        "--drise-masks",
        type=mask_count,
        default=None,
        metavar="N",
        help="masks of the D-RISE reference the maps are compared with (ρ D-RISE column; "
        f"seed --drise-seed; default {DRISE_REFERENCE_MASKS}, or with drise among the "
        "methods its --masks: its maps are then the reference, made once)",
    )
    parser.add_argument(
        "--no-drise",
        action="store_true",
        help="skip the agreement with D-RISE (one forward pass per mask per image)",
    )
    add_drise_options(parser)
    parser.add_argument("--details", action="store_true", help="also print the per-detection rows")
    parser.add_argument(
        "--json", action="store_true", help="print per-detection rows and the summary as JSON"
    )
    return parser


def run(args: argparse.Namespace) -> int:
    """Metrics per detection, method and scale; a summary table (or JSON)."""
    from yolocam_core.evaluate import ScoringSettings, evaluate_image, summarize
    from yolocam_core.explainer import Explainer
    from yolocam_core.targets import DetectionTarget

    methods = tuple(resolve_method(m, ["detection"]) for m in parse_methods(args.methods))
    reference_options = args.drise_seed is not None or args.drise_precision is not None
    if reference_options and "drise" not in methods and not args.no_drise:
        methods_for_check = (*methods, "drise")  # they also shape the reference
    else:
        methods_for_check = methods
    check_drise_options(args, methods_for_check)
    if args.no_drise and args.drise_masks is not None:
        raise YolocamError("--drise-masks and --no-drise contradict each other: leave one out")
    if args.no_sanity and args.randomise is not None:
        raise YolocamError("--randomise and --no-sanity contradict each other: leave one out")
    if args.randomise is None:
        args.randomise = DEFAULT_RANDOMISE
    cams = [cam_method(m, args) for m in methods]
    reference_method = None if args.no_drise else _reference_method(args, cams)
    scales = parse_scales(args.scales)
    spec = model_spec_from_args(args)
    settings = ScoringSettings(steps=args.steps, fill=args.fill, seeds=tuple(range(args.seeds)))
    progress = sys.stderr.isatty() and not args.json
    explainer = random_explainer = None
    images = GoodImages(args.images)
    evaluations = []
    detected: dict[str, int] = {}  # per image, the detections before --min-score
    for path, image in images:
        if explainer is None:  # at the first good image
            detector = spec.load()
            detector.check_scales(scales, "--scales")
            explainer = Explainer(detector)
            random_explainer = None if args.no_sanity else _randomised(explainer, cams, args)
        if progress:
            print(f"evaluating {path} …", file=sys.stderr, flush=True)
        note_image(path, image, explainer.detector)
        fwd = explainer.forward(image)
        detections = explainer.detect(fwd, args.score, args.iou, args.max_detections)
        note_detections(path, detections)
        if args.min_score is not None:
            detected[path] = len(detections)
            detections = [d for d in detections if d.score >= args.min_score]
        reference = None
        if detections and reference_method is not None:
            with drise_progress(reference_method, progress) as report:
                reference = explainer.explain_many(
                    fwd,
                    [DetectionTarget(d) for d in detections],
                    reference_method,
                    scales,
                    norm="per-map",
                    progress=report,
                )
        # drise among the methods with the reference's settings: its maps, made once
        shared = reference is not None and any(c is reference_method for c in cams)
        reused = {reference_method.name: reference} if shared else None
        evaluations.append(
            evaluate_image(
                explainer,
                fwd,
                cams,
                scales,
                detections,
                name=path,
                settings=settings,
                random_explainer=random_explainer,
                reference=reference,
                explained=reused,
            )
        )
    rows = [row for e in evaluations for row in e.rows]
    summary = summarize(rows)
    if args.json:
        report = _report(
            args, methods, scales, explainer, evaluations, rows, summary, reference_method
        )
        print(json.dumps(report, indent=2, ensure_ascii=False))
    elif evaluations:
        print(_tables(args, evaluations, rows, summary, reference_method, detected))
    return images.status


def _report(args, methods, scales, explainer, evaluations, rows, summary, reference) -> dict:
    from yolocam_core.outputs import detections_report

    num_heads = len(explainer.detector.heads) if explainer is not None else 0
    return {
        "settings": {
            "model": args.model,
            "score": args.score,
            "iou": args.iou,
            "max_detections": args.max_detections,
            "min_score": args.min_score,
            "methods": list(methods),
            "scales": list(scales) if scales is not None else list(range(num_heads)),
            "steps": args.steps,
            "fill": args.fill,
            "seeds": args.seeds,
            "sanity": None if args.no_sanity else args.randomise,
            "drise_reference": None
            if reference is None
            else {"masks": reference.masks, "seed": reference.seed},
        },
        "images": [detections_report(e.image, e.size, e.detections) for e in evaluations],
        "rows": [row.to_dict() for row in rows],
        "summary": summary,
    }


def _reference_method(args: argparse.Namespace, cams: Sequence) -> DRise:
    """The D-RISE whose maps are the reference: the evaluated ``drise`` itself (same
    object) when ``--drise-masks`` is not given or equals its ``--masks``, else one of
    ``--drise-masks`` (default :data:`DRISE_REFERENCE_MASKS`) and ``--drise-seed``."""
    from yolocam_core.cams import DRise

    evaluated = next((c for c in cams if isinstance(c, DRise)), None)
    if evaluated is not None and args.drise_masks in (None, evaluated.masks):
        return evaluated
    masks = DRISE_REFERENCE_MASKS if args.drise_masks is None else args.drise_masks
    return cam_method("drise", args, masks=masks)


def _randomised(explainer, cams, args) -> dict:
    """The randomised copies the sanity check compares with, per method name: one
    shared copy (last-two), or one per method bounded by its layers (cascade)."""
    from yolocam_core.cams import get_method
    from yolocam_core.metrics import randomised_explainer

    names = [getattr(c, "name", c) for c in cams]
    black_box = [bool(getattr(get_method(n), "black_box", False)) for n in names]
    shared = None
    if args.randomise == "last-two" or any(black_box):
        shared = randomised_explainer(explainer)  # D-RISE reads no layer: last-two
    if args.randomise == "last-two":
        return dict.fromkeys(names, shared)
    return {
        name: shared if box else randomised_explainer(explainer, mode="cascade", method=cam)
        for name, cam, box in zip(names, cams, black_box, strict=True)
    }


def _tables(
    args, evaluations, rows, summary, reference_method: DRise | None, detected: dict[str, int]
) -> str:
    from yolocam_core.evaluate import OWN, reading

    blocks = []
    for e in evaluations:
        if not e.detections and detected.get(e.image):
            blocks.append(
                f"{e.image}: none of its {detected[e.image]} detection(s) scores at least "
                f"--min-score {args.min_score:g}; nothing to evaluate"
            )
        elif not e.detections:
            blocks.append(f"{e.image}: no detection at this --score; nothing to evaluate")
        elif args.details:
            blocks.append(format_rows(e))
    if rows:
        count = sum(len(e.detections) for e in evaluations)
        reference = (
            ""
            if reference_method is None
            else (f", D-RISE reference {reference_method.describe()}")
        )
        title = (
            f"Summary over {count} detection(s) in {len(evaluations)} image(s), means "
            f"per method × scale ({args.steps} steps, fill {args.fill}, "
            f"{args.seeds} random map(s){reference}):"
        )
        scales_seen = list(dict.fromkeys(r.scale for r in rows))
        readings = [reading(summary, s) for s in [*scales_seen, OWN]]
        blocks.append("\n".join([title, format_summary(summary), *readings]))
    return "\n\n".join(blocks)


def _fmt(value: float | None, digits: int = 3) -> str:
    return "—" if value is None else f"{value:.{digits}f}"


def format_summary(summary: Sequence[dict]) -> str:
    """A readable table of :func:`summarize`'s rows."""
    if not summary:
        return "no detections to evaluate"
    header = (
        f"{'method':<10} {'scale':<18} {'n':>3}  {'PG':>5} {'inst':>5} {'EPG':>5}  "
        f"{'del':>5} {'del·rnd':>7}  {'ins':>5} {'ins·rnd':>7}  {'sanity ρ':>8} "
        f"{'support':>7} {'ρ D-RISE':>8}"
    )
    lines = [header, "-" * len(header)]
    for item in summary:
        lines.append(
            f"{item['method']:<10} {item['scale_label']:<18} {item['detections']:>3}  "
            f"{_fmt(item['pointing_game'], 2):>5} {_fmt(item.get('instance_hit'), 2):>5} "
            f"{_fmt(item['energy_pointing_game'], 2):>5}  "
            f"{_fmt(item['deletion_auc']):>5} {_fmt(item['random_deletion_auc']):>7}  "
            f"{_fmt(item['insertion_auc']):>5} {_fmt(item['random_insertion_auc']):>7}  "
            f"{_fmt(item['sanity_spearman'], 2):>8} {_fmt(item.get('support'), 2):>7} "
            f"{_fmt(item.get('drise_spearman'), 2):>8}"
        )
    lines.append(
        "PG: pointing game hit rate; inst: instance rate (the peak in the box and in no "
        "other box of its class); EPG: share of the map's mass in the box; del / ins: "
        "deletion (lower is better) / insertion (higher is better) AUC of the detection's "
        "score, rnd: a random map of the same grid; sanity ρ: Spearman with the "
        "randomised model's map (near 0 passes); support: share of the map's cells above "
        "zero; ρ D-RISE: Spearman with D-RISE's map of the same detection."
    )
    return "\n".join(lines)


def format_rows(evaluation: ImageEvaluation) -> str:
    """Per-detection table of one image."""
    lines = [f"{evaluation.image}: {len(evaluation.detections)} detection(s)"]
    for row in evaluation.rows:
        lines.append(
            f"  #{row.detection:<2} {row.class_name:<12} {row.score:.2f}  {row.method:<10} "
            f"{row.scale_label:<18}{'*' if row.own_scale else ' '} "
            f"PG {'hit ' if row.pointing_game else 'miss'}  "
            f"inst {'hit ' if row.instance_hit else 'miss'}  EPG {row.energy_pointing_game:.2f}  "
            f"del {row.deletion_auc:.3f} (rnd {row.random_deletion_auc:.3f})  "
            f"ins {row.insertion_auc:.3f} (rnd {row.random_insertion_auc:.3f})  "
            f"ρ {_fmt(row.sanity_spearman, 2)}  ρ D-RISE {_fmt(row.drise_spearman, 2)}"
        )
    return "\n".join(lines)
