"""``yolocam batch``: its arguments and what it prints."""

from __future__ import annotations

import argparse
import sys

from yolocam_core.cli.options import (
    DEFAULT_MASKS,
    EXIT_FAILED,
    EXIT_INTERRUPTED,
    EXIT_OK,
    add_drise_options,
    add_map_options,
    add_model_options,
    check_drise_options,
    error,
    malformed_option,
    model_spec_from_args,
    parse_methods,
    parse_scales,
    step_count,
    whole,
)
from yolocam_core.errors import YolocamError


def add_parser(sub) -> argparse.ArgumentParser:
    """Add ``batch`` to the subcommands."""
    from yolocam_core.batch.settings import ENGINES

    parser = sub.add_parser(
        "batch",
        help="explain every image of a folder (resumable; locally or on Ray)",
        description="Per image, a folder with its detections (detections.json), one overlay "
        "PNG and raw map (.npy) per target × method × scale, a JSON record per target × "
        "method and a done.json marker; a summary table (summary.csv, summary.parquet) with "
        "one row per image × detection × method × scale. A second run skips finished images "
        "and retries failed ones.",
    )
    parser.add_argument("input_dir", metavar="INPUT_DIR", help="folder of images (recursive)")
    parser.add_argument("--out", required=True, metavar="OUT_DIR", help="output folder")
    add_model_options(parser)
    parser.add_argument(
        "--methods",
        nargs="+",
        default=["auto"],
        metavar="METHOD",
        help="CAM methods, space- or comma-separated; 'auto' (default): the targets' own "
        "(odam for detections, gradcam for a class, seed for the whole head); 'all': every "
        "gradient method, not drise (black box, one forward pass per mask: 'all drise' "
        "adds it)",
    )
    parser.add_argument(
        "--targets",
        default="detections",
        help="detections (every detected box; default), class:NAME or seed",
    )
    add_map_options(parser)
    add_drise_options(parser)
    parser.add_argument("--sheet", action="store_true", help="also write a sheet per target")
    parser.add_argument(
        "--metrics",
        action="store_true",
        help="add pointing game, energy pointing game and deletion/insertion AUC per row "
        "(slow: 2·(steps−1) forward passes per map)",
    )
    parser.add_argument(
        "--metrics-steps",
        type=step_count,
        default=None,
        metavar="N",
        help="deletion/insertion steps with --metrics (default: yolocam evaluate's)",
    )
    parser.add_argument(
        "--workers", type=whole(1), default=1, help="processes or Ray actors (default 1)"
    )
    parser.add_argument("--engine", default="local", choices=ENGINES, help="default local")
    parser.add_argument(
        "--address",
        default=None,
        help="Ray cluster address for --engine ray (default: start a local Ray)",
    )
    return parser


def run(args: argparse.Namespace) -> int:
    """Build the settings (every option checked before the model is loaded), run, report."""
    from yolocam_core.batch import BatchSettings, run_batch
    from yolocam_core.batch.settings import check_targets
    from yolocam_core.metrics import DEFAULT_STEPS

    methods = parse_methods(args.methods)
    check_drise_options(args, methods)
    if args.metrics_steps is not None and not args.metrics:
        raise YolocamError(
            "--metrics-steps only applies with --metrics; add --metrics or leave it out"
        )
    with malformed_option():
        check_targets(args.targets)
    settings = BatchSettings(
        model=model_spec_from_args(args),
        score=args.score,
        iou=args.iou,
        methods=methods,
        targets=args.targets,
        scales=parse_scales(args.scales),  # the range is checked against the model
        norm=args.norm,
        colormap=args.colormap,
        opacity=args.opacity,
        sheet=args.sheet,
        metrics=args.metrics,
        metrics_steps=(args.metrics_steps or DEFAULT_STEPS) if args.metrics else None,
        max_detections=args.max_detections,
        drise_masks=DEFAULT_MASKS if args.masks is None else args.masks,
        drise_seed=args.drise_seed or 0,
        drise_precision=args.drise_precision or "auto",
    )
    report = run_batch(
        args.input_dir,
        args.out,
        settings,
        engine=args.engine,
        workers=args.workers,
        address=args.address,
    )
    where = report.summary_csv
    if report.interrupted:
        done = report.skipped + report.computed
        error(
            f"interrupted; {done} of {report.total} image(s) are complete and kept; run the "
            f"same command again to resume (summary so far: {where})"
        )
        return EXIT_INTERRUPTED
    print(
        f"{report.total} image(s): {report.computed} processed, {report.skipped} already "
        f"complete, {report.failed} failed, in {report.seconds:.1f} s; summary: "
        f"{report.summary_csv} and {report.summary_parquet.name}"
    )
    if report.failed:
        sys.stdout.flush()
        error(
            f"{report.failed} of {report.total} image(s) failed; their errors are in {where} "
            "(status 'error'); run again to retry them"
        )
        return EXIT_FAILED
    return EXIT_OK
