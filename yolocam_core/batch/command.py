"""``yolocam batch``: its arguments and what it prints."""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from typing import Any

from yolocam_core.batch.runner import run_batch
from yolocam_core.batch.settings import ENGINES, BatchSettings
from yolocam_core.errors import YolocamError


def _positive(text: str) -> int:
    import argparse

    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{value} must be at least 1")
    return value


def add_batch_parser(sub):
    """Add ``yolocam batch`` to the subparsers of :func:`yolocam_core.cli.build_parser`."""
    from yolocam_core.cli import _add_map_options, _add_model_options

    batch = sub.add_parser(
        "batch",
        help="explain every image of a folder (resumable; locally or on Ray)",
        description="Per image, a folder with its detections (detections.json), one overlay "
        "PNG and raw map (.npy) per target × method × scale and a done.json marker; a "
        "summary table (summary.csv, summary.parquet) with one row per image × detection × "
        "method × scale. A second run skips finished images and retries failed ones.",
    )
    batch.add_argument("input_dir", metavar="INPUT_DIR", help="folder of images (recursive)")
    batch.add_argument("--out", required=True, metavar="OUT_DIR", help="output folder")
    _add_model_options(batch)
    batch.add_argument(
        "--methods",
        nargs="+",
        default=["gradcam"],
        metavar="METHOD",
        help="CAM methods, space- or comma-separated, or 'all' (default gradcam)",
    )
    batch.add_argument(
        "--targets",
        default="detections",
        help="detections (every detected box; default), class:NAME or seed",
    )
    _add_map_options(batch)
    batch.add_argument("--sheet", action="store_true", help="also write a sheet per target")
    batch.add_argument(
        "--metrics",
        action="store_true",
        help="add pointing game, energy pointing game and deletion/insertion AUC per row "
        "(slow: 2·(steps−1) forward passes per map)",
    )
    batch.add_argument(
        "--metrics-steps",
        type=_positive,
        default=None,
        metavar="N",
        help="deletion/insertion steps with --metrics (default: yolocam evaluate's)",
    )
    batch.add_argument(
        "--workers", type=_positive, default=1, help="processes or Ray actors (default 1)"
    )
    batch.add_argument("--engine", default="local", choices=ENGINES, help="default local")
    batch.add_argument(
        "--address",
        default=None,
        help="Ray cluster address for --engine ray (default: start a local Ray)",
    )
    return batch


def _parse_methods(values: Sequence[str]) -> tuple[str, ...]:
    from yolocam_core.cams import method_names

    names = [m.strip() for text in values for m in text.split(",") if m.strip()]
    if "all" in names:
        return tuple(method_names())
    unknown = [m for m in names if m not in method_names()]
    if unknown or not names:
        raise YolocamError(
            f"--methods: unknown {', '.join(map(repr, unknown)) or 'none given'}; "
            f"choose from {', '.join(method_names())} or all"
        )
    return tuple(dict.fromkeys(names))


#: The "your own model" options of ``yolocam_core.cli._add_model_options``, passed on to
#: ``load_detector`` in every worker (as ``cli.detector_from_args`` does in one process).
MODEL_OPTIONS = (
    "weights",
    "classes",
    "anchors",
    "anchor_masks",
    "input_size",
    "letterbox",
    "trust_model_code",
)


def _absolute_if_file(value):
    """Workers (Ray actors especially) may run in another folder: make file paths absolute."""
    if isinstance(value, str) and os.path.isfile(value):
        return os.path.abspath(value)
    return value


def _model_options(args) -> tuple[tuple[str, Any], ...]:
    options = []
    for name in MODEL_OPTIONS:
        value = getattr(args, name, None)
        if value is None or (name == "trust_model_code" and not value):
            continue  # load_detector's default (--no-letterbox, False, is kept)
        options.append((name, _absolute_if_file(value)))
    return tuple(options)


def run(args) -> int:
    """``yolocam batch``: see :func:`yolocam_core.cli.build_parser`."""
    from yolocam_core.cli import EXIT_FAILED, EXIT_OK, detector_from_args
    from yolocam_core.metrics import DEFAULT_STEPS

    methods = _parse_methods(args.methods)
    scales = None
    if args.scales != "all":  # the range is checked against the model before any work
        try:
            scales = tuple(int(v) for v in args.scales.split(",") if v.strip())
        except ValueError:
            raise YolocamError(f"--scales {args.scales!r}: use 'all' or indices like 0,1") from None
    settings = BatchSettings(
        model=_absolute_if_file(args.model),
        model_options=_model_options(args),
        score=args.score,
        iou=args.iou,
        methods=methods,
        targets=args.targets,
        scales=scales,
        norm=args.norm,
        colormap=args.colormap,
        opacity=args.opacity,
        sheet=args.sheet,
        metrics=args.metrics,
        metrics_steps=args.metrics_steps or (DEFAULT_STEPS if args.metrics else None),
    )
    report = run_batch(
        args.input_dir,
        args.out,
        settings,
        engine=args.engine,
        workers=args.workers,
        address=args.address,
        detector_factory=lambda: detector_from_args(args),
    )
    where = report.summary_csv
    if report.interrupted:
        done = report.skipped + report.computed
        print(
            f"yolocam: error: interrupted; {done} of {report.total} image(s) are complete and "
            f"kept; run the same command again to resume (summary so far: {where})",
            file=sys.stderr,
        )
        return 130
    print(
        f"{report.total} image(s): {report.computed} processed, {report.skipped} already "
        f"complete, {report.failed} failed, in {report.seconds:.1f} s; summary: "
        f"{report.summary_csv} and {report.summary_parquet.name}"
    )
    if report.failed:
        print(
            f"yolocam: error: {report.failed} of {report.total} image(s) failed; their errors "
            f"are in {where} (status 'error'); run again to retry them",
            file=sys.stderr,
        )
        return EXIT_FAILED
    return EXIT_OK
