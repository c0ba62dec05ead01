"""What every ``yolocam`` command shares: exit codes, the one-line error, argument
types, the model and map options, and the model description built from them.

Every error a user can cause prints one line ``yolocam: error: …`` on stderr and the
command exits non-zero; files that work are still processed.

Adding an option to every command is one line in :func:`add_model_options` (every
command calls it); to the commands that draw maps (``explain``, ``batch``), one line
in :func:`add_map_options`.

This module imports nothing heavy: ``yolocam --help`` must not import TensorFlow.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Iterator, Sequence
from typing import TYPE_CHECKING

from yolocam_core.errors import YolocamError, for_option

if TYPE_CHECKING:
    import numpy as np

    from yolocam_core.models import ModelSpec

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130

#: Map normalisations the commands offer (the library's ``"auto"`` is not offered yet).
CLI_NORMS = ("per-map", "shared")
COLORMAPS = ("jet", "turbo", "viridis")


def error(message: str) -> None:
    """Print ``yolocam: error: <message>`` on stderr (one line)."""
    print(f"yolocam: error: {message}", file=sys.stderr, flush=True)


class UsageParser(argparse.ArgumentParser):
    """Usage errors as one line, with where to find help (exit status 2)."""

    def error(self, message: str):
        self.exit(EXIT_USAGE, f"yolocam: error: {message} (see `{self.prog} --help`)\n")


# -- argument types (argparse ``type=``: a bad value is a usage error) -------------------


def probability(text: str) -> float:
    """A number in [0, 1]."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not 0.0 <= value <= 1.0:  # also refuses nan
        raise argparse.ArgumentTypeError(f"{value} is outside [0, 1]")
    return value


def whole(low: int, high: int | None = None) -> Callable[[str], int]:
    """A whole number in [low, high] (no upper bound when ``high`` is None)."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
        if high is None and value < low:
            raise argparse.ArgumentTypeError(f"{value} must be at least {low}")
        if high is not None and not low <= value <= high:
            raise argparse.ArgumentTypeError(f"{value} is outside {low}..{high}")
        return value

    return parse


# -- lists checked before the model is loaded (one-line YolocamError, exit 1) ------------


def _items(values: str | Sequence[str]) -> list[str]:
    texts = [values] if isinstance(values, str) else list(values)
    return [item.strip() for text in texts for item in text.replace(",", " ").split()]


def _no_repeats(option: str, items: Sequence[str], what: str) -> None:
    repeated = sorted({item for item in items if items.count(item) > 1})
    if repeated:
        raise YolocamError(
            f"{option}: {what} {', '.join(repeated)} given more than once; a repeat is "
            "usually a typo for another one: give each once"
        )


def parse_methods(values: str | Sequence[str], option: str = "--methods") -> tuple[str, ...]:
    """``all``, or CAM method names separated by commas or spaces -> the names.

    Raises:
        YolocamError: none given, an unknown name, a name given twice, or ``all``
            beside other names.
    """
    from yolocam_core.cams import method_names

    names = method_names()
    chosen = _items(values)
    if chosen == ["all"]:
        return tuple(names)
    unknown = [m for m in chosen if m not in names]
    if unknown or not chosen:
        raise YolocamError(
            f"{option}: unknown {', '.join(map(repr, unknown)) or '(none given)'}; "
            f"use all or some of {', '.join(names)}"
        )
    _no_repeats(option, chosen, "method")
    return tuple(chosen)


def parse_scales(text: str, option: str = "--scales") -> tuple[int, ...] | None:
    """``all`` -> None, else comma-separated head indices (checked against the model
    by :meth:`Detector.check_scales`).

    A scale given twice is refused rather than silently dropped: ``0,0`` is most often
    a typo for ``0,1``, and the user should see which maps they get.

    Raises:
        YolocamError: not whole numbers, none, negative, or a scale given twice.
    """
    if text.strip() == "all":
        return None
    items = [v.strip() for v in text.split(",") if v.strip()]
    if not items or not all(v.isdigit() for v in items):
        raise YolocamError(f"{option} {text!r}: use 'all' or head indices like 0,1")
    _no_repeats(f"{option} {text!r}", items, "scale")
    return tuple(int(v) for v in items)


def check_target(text: str, option: str = "--target") -> None:
    """What can be known about a target before the model is loaded: its form
    (``detection:K``, ``class:NAME`` or ``seed``). The class name and K are checked by
    :meth:`yolocam_core.targets.TargetSpec.parse` and ``build`` once the model and the
    detections are known."""
    kind, _, value = text.strip().partition(":")
    if kind == "class" and value.strip():
        return
    from yolocam_core.targets import TargetSpec

    try:
        TargetSpec.parse(text, ())
    except YolocamError as exc:
        raise for_option(exc, option) from None


class GoodImages:
    """The images named on the command line that load, in order, as (path, (H, W, 3)
    uint8 RGB); each one that does not is one error line, counted in :attr:`failed`."""

    def __init__(self, paths: Sequence[str]):
        self.paths = list(paths)
        self.failed = 0

    def __iter__(self) -> Iterator[tuple[str, np.ndarray]]:
        from yolocam_core.images import load_image

        for path in self.paths:
            try:
                image = load_image(path)
            except YolocamError as exc:  # reported per file; the run goes on
                error(str(exc))
                self.failed += 1
                continue
            yield path, image

    @property
    def status(self) -> int:
        """The command's exit status: failed if any image did."""
        return EXIT_FAILED if self.failed else EXIT_OK


# -- option groups ---------------------------------------------------------------------


def add_model_options(parser: argparse.ArgumentParser) -> None:
    """``--model`` and the "your own model" options, ``--score`` and ``--iou`` (every
    command)."""
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
        "--score", type=probability, default=0.25, help="score threshold (default 0.25)"
    )
    parser.add_argument(
        "--iou", type=probability, default=0.45, help="NMS IoU threshold (default 0.45)"
    )


def add_map_options(parser: argparse.ArgumentParser) -> None:
    """``--scales``, ``--norm``, ``--colormap`` and ``--opacity`` (``explain``, ``batch``)."""
    parser.add_argument(
        "--scales", default="all", help="'all' or comma-separated head indices, e.g. 0,1"
    )
    parser.add_argument("--norm", default="per-map", choices=CLI_NORMS)
    parser.add_argument("--colormap", default="jet", choices=COLORMAPS)
    parser.add_argument("--opacity", type=probability, default=0.5)


def model_spec_from_args(args: argparse.Namespace) -> ModelSpec:
    """The :class:`~yolocam_core.models.ModelSpec` of :func:`add_model_options`' options
    (parsed there: a bad ``--input-size`` or ``--anchors`` is a one-line error).

    Imports TensorFlow (the model options' parsers live with the models): call it after
    :func:`yolocam_core.runtime.start_tensorflow`.
    """
    from yolocam_core.models import ModelSpec

    return ModelSpec.from_options(
        args.model,
        weights=args.weights,
        classes=args.classes,
        anchors=args.anchors,
        anchor_masks=args.anchor_masks,
        input_size=args.input_size,
        letterbox=args.letterbox,
        trust_model_code=args.trust_model_code,
    )
