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
from contextlib import contextmanager
from typing import TYPE_CHECKING

from yolocam_core.errors import YolocamError, for_option
from yolocam_core.norms import NORMS

if TYPE_CHECKING:
    import numpy as np

    from yolocam_core.models import ModelSpec

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130

#: Map normalisations the commands offer: the library's.
CLI_NORMS = NORMS
COLORMAPS = ("jet", "turbo", "viridis")
#: ``--method auto``: the target kind's default (:func:`yolocam_core.cams.default_method`).
AUTO = "auto"
#: Copies of library constants whose modules import TensorFlow (``--help`` must not);
#: tests check that they agree: ``targets.ATTRIBUTES``, ``detector.DEFAULT_MAX_DETECTIONS``.
ATTRIBUTES = ("score", "objectness", "x", "y", "w", "h")
DEFAULT_MAX_DETECTIONS = 300
#: D-RISE's default mask count (``DRise(masks=...)``).
DEFAULT_MASKS = 1000


def error(message: str) -> None:
    """Print ``yolocam: error: <message>`` on stderr (one line)."""
    print(f"yolocam: error: {message}", file=sys.stderr, flush=True)


def note(message: str) -> None:
    """Print ``yolocam: note: <message>`` on stderr (one line; the run goes on)."""
    print(f"yolocam: note: {message}", file=sys.stderr, flush=True)


def note_detections(name: str, detections) -> None:
    """Say on stderr when detections were left out (``Detections.note()``)."""
    text = detections.note() if hasattr(detections, "note") else None
    if text:
        note(f"{name}: {text}")


def note_image(name: str, image: np.ndarray, detector) -> None:
    """Say on stderr when the image is too small or too elongated for the network to
    see it well (``Detector.image_warning``, the app's warning); the run goes on."""
    text = detector.image_warning(image.shape[:2])
    if text:
        note(f"{name}: {text}")


class UsageError(YolocamError):
    """A malformed option found after parsing, where argparse's ``type=`` cannot check
    it (the check imports TensorFlow, or reads several options): one line, exit status
    2 like argparse's own usage errors (:func:`yolocam_core.cli.main.main`)."""


@contextmanager
def malformed_option() -> Iterator[None]:
    """Turn a :class:`~yolocam_core.errors.YolocamError` raised while parsing an
    option's text into a :class:`UsageError` (exit status 2)."""
    try:
        yield
    except YolocamError as exc:
        if isinstance(exc, UsageError):
            raise
        raise UsageError(str(exc)) from None


class UsageParser(argparse.ArgumentParser):
    """Usage errors as one line, with where to find help (exit status 2). Abbreviated
    options are refused (``--out`` is not taken for ``--output``)."""

    def __init__(self, *args, **kwargs) -> None:
        kwargs.setdefault("allow_abbrev", False)
        super().__init__(*args, **kwargs)

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


#: Most deletion/insertion steps (``evaluate --steps``, ``batch --metrics-steps``): each
#: step is two forward passes per map.
MAX_STEPS = 1000


def step_count(text: str) -> int:
    """Deletion/insertion steps: a whole number in 2..:data:`MAX_STEPS` (with one step,
    deletion and insertion measure the same two images and their AUCs say nothing)."""
    return whole(2, MAX_STEPS)(text)


def mask_count(text: str) -> int:
    """D-RISE's mask count: a whole number in 1..``MAX_MASKS``."""
    from yolocam_core.cams.drise import MAX_MASKS

    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{value} must be at least 1")
    if value > MAX_MASKS:
        raise argparse.ArgumentTypeError(
            f"{value:,} masks is over D-RISE's limit of {MAX_MASKS:,} (one forward pass per "
            "mask; the paper uses 5,000)"
        )
    return value


# -- lists checked before the model is loaded (one-line UsageError, exit 2) --------------


def _items(values: str | Sequence[str]) -> list[str]:
    texts = [values] if isinstance(values, str) else list(values)
    return [item.strip() for text in texts for item in text.replace(",", " ").split()]


def _no_repeats(option: str, items: Sequence[str], what: str) -> None:
    repeated = sorted({item for item in items if items.count(item) > 1})
    if repeated:
        raise UsageError(
            f"{option}: {what} {', '.join(repeated)} given more than once; a repeat is "
            "usually a typo for another one: give each once"
        )


def parse_methods(values: str | Sequence[str], option: str = "--methods") -> tuple[str, ...]:
    """``all``, ``auto``, or CAM method names separated by commas or spaces -> the names.

    ``all`` is every gradient method, not ``drise`` (black box, one forward pass per
    mask): ``all,drise`` adds it. ``auto`` (alone) is the target kind's default
    (:func:`yolocam_core.cams.default_method`), resolved by the command.

    Raises:
        UsageError: none given, an unknown name, a name given twice, or ``auto``
            beside other names.
    """
    from yolocam_core.cams import method_names

    names = method_names(black_box=True)
    chosen = _items(values)
    if chosen == [AUTO]:
        return (AUTO,)
    unknown = [m for m in chosen if m not in (*names, "all")]
    if unknown or not chosen:
        raise UsageError(
            f"{option}: unknown {', '.join(map(repr, unknown)) or '(none given)'}; "
            f"use all or some of {', '.join(names)}, or auto"
        )
    _no_repeats(option, chosen, "method")
    if "all" in chosen:
        extra = [m for m in chosen if m != "all"]
        overlap = [m for m in extra if m in method_names()]
        if overlap:
            raise UsageError(
                f"{option}: all already has {', '.join(overlap)}; give all alone, all,drise, "
                "or the names you want"
            )
        return (*method_names(), *extra)
    return tuple(chosen)


def parse_scales(text: str, option: str = "--scales") -> tuple[int, ...] | None:
    """``all`` -> None, else comma-separated head indices (checked against the model
    by :meth:`Detector.check_scales`).

    A scale given twice is refused rather than silently dropped: ``0,0`` is most often
    a typo for ``0,1``, and the user should see which maps they get.

    Raises:
        UsageError: not whole numbers, none, negative, or a scale given twice.
    """
    if text.strip() == "all":
        return None
    items = [v.strip() for v in text.split(",") if v.strip()]
    if not items or not all(v.isdigit() for v in items):
        raise UsageError(f"{option} {text!r}: use 'all' or head indices like 0,1")
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
        raise UsageError(str(for_option(exc, option))) from None


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
    parser.add_argument(
        "--max-detections",
        type=whole(1),
        default=DEFAULT_MAX_DETECTIONS,
        metavar="N",
        help=f"keep at most N detections, the highest-scoring, after NMS (default "
        f"{DEFAULT_MAX_DETECTIONS}); a note on stderr says when more were found",
    )


def add_target_options(parser: argparse.ArgumentParser) -> None:
    """``--target`` and ``--attribute`` (``explain``, ``report``)."""
    parser.add_argument(
        "--target",
        default="detection:0",
        help="detection:K (K-th detection of `yolocam detect`), class:NAME, or seed "
        "(the article's whole head output); default detection:0",
    )
    parser.add_argument(
        "--attribute",
        default="score",
        choices=ATTRIBUTES,
        help="which part of a detection is explained: its score (objectness × class "
        "probability; default), objectness, or a box coordinate x, y, w, h "
        "(detection targets only)",
    )


def add_method_option(parser: argparse.ArgumentParser) -> None:
    """``--method`` (``explain``, ``report``): auto or one method, drise included."""
    from yolocam_core.cams import DEFAULT_METHODS, method_names

    defaults = ", ".join(f"{kind}: {name}" for kind, name in DEFAULT_METHODS.items())
    parser.add_argument(
        "--method",
        default=AUTO,
        choices=[AUTO, *method_names(black_box=True)],
        help=f"CAM method (default auto: the target's own, {defaults}); drise is black "
        "box and slow (one forward pass per mask, see --masks)",
    )


def add_drise_options(parser: argparse.ArgumentParser) -> None:
    """``--masks``, ``--drise-seed`` and ``--drise-precision`` (every command that can
    run ``drise``)."""
    from yolocam_core.cams.drise import MAX_MASKS, PRECISIONS

    group = parser.add_argument_group("D-RISE (with method drise)")
    group.add_argument(
        "--masks",
        type=mask_count,
        default=None,
        metavar="N",
        help=f"random masks, one forward pass each (default {DEFAULT_MASKS}, at most "
        f"{MAX_MASKS:,}; the paper uses 5,000)",
    )
    group.add_argument(
        "--drise-seed",
        type=whole(0),
        default=None,
        metavar="SEED",
        help="seed of the random masks: the same seed gives the same maps (default 0)",
    )
    group.add_argument(
        "--drise-precision",
        choices=PRECISIONS,
        default=None,
        help="the masked forwards' arithmetic: auto (default) is bfloat16 on a CPU that "
        "computes it natively (Intel AMX or AVX512-BF16: about 4× faster, maps ranked "
        "alike), else float32",
    )


def add_map_options(parser: argparse.ArgumentParser) -> None:
    """``--scales``, ``--norm``, ``--colormap`` and ``--opacity`` (``explain``, ``batch``)."""
    parser.add_argument(
        "--scales", default="all", help="'all' or comma-separated head indices, e.g. 0,1"
    )
    parser.add_argument(
        "--norm",
        default="auto",
        choices=CLI_NORMS,
        help="auto (default): one colour scale shared by every scale for a detection or "
        "a class, so that a weak scale looks faint; per map for the whole head output and "
        "box coordinates. per-map: each map stretched to its own range (the article)",
    )
    parser.add_argument("--colormap", default="jet", choices=COLORMAPS)
    parser.add_argument("--opacity", type=probability, default=0.5)


def add_explain_options(parser: argparse.ArgumentParser) -> None:
    """Everything one explanation needs (``explain``, ``report``): the model, the
    target, the method, D-RISE's and the map options."""
    add_model_options(parser)
    add_target_options(parser)
    add_method_option(parser)
    add_drise_options(parser)
    add_map_options(parser)


def check_drise_options(args: argparse.Namespace, methods: Sequence[str]) -> None:
    """Refuse ``--masks``/``--drise-seed``/``--drise-precision`` when no D-RISE map is
    made (a typo or a forgotten ``--method drise``: the user expects them to matter).

    Raises:
        YolocamError: one of them given without ``drise`` among ``methods``.
    """
    given = [
        option
        for option, value in (
            ("--masks", args.masks),
            ("--drise-seed", args.drise_seed),
            ("--drise-precision", args.drise_precision),
        )
        if value is not None
    ]
    if given and "drise" not in methods:
        raise YolocamError(
            f"{' and '.join(given)} only apply to D-RISE; add drise to the methods "
            "(--method drise / --methods …,drise) or leave them out"
        )


def cam_method(name: str, args: argparse.Namespace, masks: int | None = None):
    """The method to hand the library: ``name``, or for ``drise`` a ``DRise`` with
    ``masks`` (default: ``--masks``, else :data:`DEFAULT_MASKS`), ``--drise-seed``
    and ``--drise-precision``."""
    if name != "drise":
        return name
    from yolocam_core.cams import DRise

    if masks is None:
        masks = DEFAULT_MASKS if args.masks is None else args.masks
    return DRise(
        masks=masks,
        seed=0 if args.drise_seed is None else args.drise_seed,
        precision=args.drise_precision or "auto",
    )


def resolve_method(name: str, kinds: Sequence[str]) -> str:
    """``auto`` -> the default method of targets of these kinds; any other name as is."""
    if name != AUTO:
        return name
    from yolocam_core.cams import default_method

    return default_method(kinds)


@contextmanager
def drise_progress(method, enabled: bool | None = None) -> Iterator[Callable | None]:
    """A tqdm bar on stderr while ``method`` (a ``DRise``) runs: yields the
    ``progress(done, total)`` callback to pass to the explainer, or None for other
    methods. ``enabled`` None: only when stderr is a terminal."""
    if getattr(method, "name", method) != "drise":
        yield None
        return
    from tqdm import tqdm

    with tqdm(
        total=method.masks,
        unit="mask",
        desc="D-RISE",
        file=sys.stderr,
        disable=None if enabled is None else not enabled,
        dynamic_ncols=True,
        leave=False,
    ) as bar:

        def update(done: int, total: int) -> None:
            bar.total = total
            bar.update(done - bar.n)
            if done >= total:
                bar.refresh()  # the last state, whatever tqdm's refresh interval

        yield update


def model_spec_from_args(args: argparse.Namespace) -> ModelSpec:
    """The :class:`~yolocam_core.models.ModelSpec` of :func:`add_model_options`' options
    (parsed there: a bad ``--input-size`` or ``--anchors`` is a one-line error).

    Imports TensorFlow (the model options' parsers live with the models): call it after
    :func:`yolocam_core.runtime.start_tensorflow`.
    """
    from yolocam_core.models import ModelSpec, parse_anchors, parse_input_size, parse_masks

    for option, subject, parse, value in (
        ("--input-size", "input size", parse_input_size, args.input_size),
        ("--anchors", "anchors", parse_anchors, args.anchors),
        ("--anchor-masks", "anchor masks", parse_masks, args.anchor_masks),
    ):
        try:
            parse(value)
        except YolocamError as exc:  # the library's words, said of the option
            text = str(exc)
            if text.startswith(subject + ": "):
                raise UsageError(f"{option}: {text[len(subject) + 2 :]}") from None
            raise UsageError(f"{option} {text.removeprefix(subject + ' ')}") from None
    with malformed_option():
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
