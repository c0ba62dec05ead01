"""Faithfulness of the maps, per detection, method and scale, and ``yolocam evaluate``.

For one image: one forward pass, the detections, then per method one
:meth:`Explainer.explain_many` (all detections, all scales), and per map the metrics of
:mod:`yolocam_core.metrics`: pointing game, energy-based pointing game, deletion and
insertion AUC, each read against a random map of the same grid, and the
model-randomisation Spearman ρ. Identical maps (EigenCAM's, which do not depend on the
target; the random maps, shared by all detections) are perturbed once for all the
detections that share them.

Example:
    >>> result = evaluate_image(Explainer(load_detector()), "bus.jpg", methods=["gradcam"])
    >>> print(format_summary(summarize(result.rows)))
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import sys
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from yolocam_core.errors import YolocamError
from yolocam_core.metrics import (
    DEFAULT_STEPS,
    Curves,
    PerturbationCurves,
    energy_pointing_game,
    pointing_game,
    random_baseline,
    random_heatmap,
    rank_correlation,
)

if TYPE_CHECKING:  # TensorFlow is imported lazily: `yolocam --help` stays fast
    from yolocam_core.detector import Detection
    from yolocam_core.explainer import Explainer, Forward

#: Seeds of the random maps (their curves are averaged).
DEFAULT_SEEDS = (0, 1, 2)
#: ``scale`` of the summary rows that pool each detection at its own scale.
OWN = "own"


@dataclass(frozen=True)
class MetricRow:
    """The metrics of one detection's map by one method at one scale.

    Attributes:
        image: the image's name or path.
        detection: index of the detection in the image (score order).
        class_name: its class.
        score: its score.
        detection_scale: the head that predicted it.
        method: CAM method.
        scale: head whose map this is.
        scale_label: e.g. ``"13×13 · stride 32"``.
        pointing_game: the map's peak is inside the box.
        energy_pointing_game: share of the map's mass inside the box.
        deletion_auc: area under the deletion curve (lower = more faithful).
        insertion_auc: area under the insertion curve (higher = more faithful).
        random_deletion_auc: the same for a random map at this scale's grid.
        random_insertion_auc: the same for a random map at this scale's grid.
        sanity_spearman: Spearman ρ of the map with the randomised model's map (near
            0 = passes the sanity check), or None when not computed.
    """

    image: str
    detection: int
    class_name: str
    score: float
    detection_scale: int
    method: str
    scale: int
    scale_label: str
    pointing_game: bool
    energy_pointing_game: float
    deletion_auc: float
    insertion_auc: float
    random_deletion_auc: float
    random_insertion_auc: float
    sanity_spearman: float | None = None

    @property
    def own_scale(self) -> bool:
        """Whether the map is at the scale that predicted the detection."""
        return self.scale == self.detection_scale

    def to_dict(self) -> dict:
        data = asdict(self)
        for key, value in data.items():
            if isinstance(value, float):
                data[key] = None if math.isnan(value) else round(value, 6)
        data["own_scale"] = self.own_scale
        return data


@dataclass(frozen=True)
class ImageEvaluation:
    """Everything measured on one image.

    Attributes:
        image: name or path.
        size: (height, width).
        detections: the D evaluated detections.
        rows: one :class:`MetricRow` per detection × method × scale.
        curves: per (method, scale), :class:`Curves` with D rows: row d is detection
            d's score under detection d's own map.
        random: per scale, the random-map :class:`Curves` (D rows, mean over seeds).
        forward_passes: forward passes spent on the perturbation curves.
    """

    image: str
    size: tuple[int, int]
    detections: tuple[Detection, ...]
    rows: tuple[MetricRow, ...]
    curves: dict[tuple[str, int], Curves] = field(default_factory=dict)
    random: dict[int, Curves] = field(default_factory=dict)
    forward_passes: int = 0


def _map_key(heatmap: np.ndarray) -> bytes:
    return hashlib.blake2b(np.ascontiguousarray(heatmap).tobytes(), digest_size=16).digest()


def evaluate_image(
    explainer: Explainer,
    image: np.ndarray | str | bytes | Forward,
    methods: Sequence[str] = ("gradcam",),
    scales: Sequence[int] | None = None,
    detections: Sequence[Detection] | None = None,
    name: str = "",
    score_threshold: float = 0.25,
    iou_threshold: float = 0.45,
    steps: int = DEFAULT_STEPS,
    fill: str = "grey",
    seeds: Sequence[int] = DEFAULT_SEEDS,
    batch_size: int = 16,
    layer: str | Mapping[int, str] | None = None,
    random_explainer: Explainer | None = None,
    baseline: Mapping[int, Curves] | None = None,
) -> ImageEvaluation:
    """All metrics for every detection of one image, every method and scale.

    Maps are per-map min–max normalised heatmaps at image resolution (the ordering,
    and so deletion/insertion and the pointing game, does not depend on the
    normalisation; the energy share does). Pixel ties in a map (ReLU zeros) are broken
    by the seed-``seeds[0]`` random map of the same grid, so flat regions are removed
    in random blocks, like the baseline's.

    Args:
        explainer: the trained model's explainer.
        image: (H, W, 3) uint8 RGB, a path or bytes, or a :class:`Forward`.
        methods: CAM method names.
        scales: head indices; None = all.
        detections: the detections to evaluate; None = detect with the thresholds.
        name: shown in the rows (default: the path, or ``"image"``).
        score_threshold, iou_threshold: detection thresholds (when detecting).
        steps: deletion/insertion steps (pixel fractions).
        fill: ``"grey"`` or ``"blur"`` (see :class:`PerturbationCurves`).
        seeds: seeds of the random baseline maps (averaged).
        batch_size: images per forward pass of the perturbation curves.
        layer: another layer per scale (see :meth:`Explainer.explain_many`).
        random_explainer: from :func:`yolocam_core.metrics.randomised_explainer`; None
            skips the sanity check (``sanity_spearman`` None).
        baseline: random-map curves per scale from an earlier call with the same
            detections, steps, fill and seeds (``ImageEvaluation.random``), so that
            evaluating more methods later does not recompute them.

    Returns:
        An :class:`ImageEvaluation` (no rows when there is no detection).
    """
    from yolocam_core.explainer import Forward
    from yolocam_core.targets import DetectionTarget

    if not name:
        name = image if isinstance(image, str) else "image"
    if not methods:
        raise ValueError("methods is empty")
    fwd = image if isinstance(image, Forward) else explainer.forward(image)
    if detections is None:
        detections = explainer.detect(fwd, score_threshold, iou_threshold)
    detections = tuple(detections)
    scales = list(range(len(explainer.detector.heads))) if scales is None else list(scales)
    size = fwd.image.shape[:2]
    if not detections:
        return ImageEvaluation(name, size, (), ())
    detector = explainer.detector
    perturb = PerturbationCurves(detector, fwd.image, detections, steps, fill, batch_size)
    shape = fwd.image.shape[:2]

    if baseline is None:
        baseline = {}
    else:
        for s, curves_s in baseline.items():
            if curves_s.deletion.shape != (len(detections), steps + 1):
                raise ValueError(
                    f"baseline[{s}] has curves of shape {curves_s.deletion.shape}; expected "
                    f"{(len(detections), steps + 1)} (same detections and steps)"
                )
    missing = [s for s in scales if s not in baseline]
    random = {s: baseline[s] for s in scales if s in baseline}
    random.update(_random_curves(explainer, fwd, perturb, missing, seeds))
    ties = {
        s: random_heatmap(shape, seeds[0], detector.heads[s].grid, _upsampler(explainer, fwd))
        for s in scales
    }

    targets = [DetectionTarget(d) for d in detections]
    rows: list[MetricRow] = []
    curves: dict[tuple[str, int], Curves] = {}
    for method in methods:
        explained = explainer.explain_many(
            fwd, targets, method, scales, layer=layer, norm="per-map"
        )
        sanity = None
        if random_explainer is not None:
            randomised = random_explainer.explain_many(
                fwd.image, targets, method, scales, layer=layer
            )
            sanity = [
                [
                    rank_correlation(a.grid_map, b.grid_map)
                    for a, b in zip(t.maps, r.maps, strict=True)
                ]
                for t, r in zip(explained, randomised, strict=True)
            ]
        for j, s in enumerate(scales):
            cache: dict[bytes, Curves] = {}
            dele, ins = [], []
            for d, explanation in enumerate(explained):
                heatmap = explanation.maps[j].heatmap
                key = _map_key(heatmap)
                if key not in cache:
                    cache[key] = perturb.curves(heatmap, ties[s])
                dele.append(cache[key].deletion[d])
                ins.append(cache[key].insertion[d])
            curves[(method, s)] = Curves(perturb.fractions.copy(), np.array(dele), np.array(ins))
            own = curves[(method, s)]
            for d, (det, explanation) in enumerate(zip(detections, explained, strict=True)):
                heatmap = explanation.maps[j].heatmap
                rows.append(
                    MetricRow(
                        image=name,
                        detection=d,
                        class_name=det.class_name,
                        score=det.score,
                        detection_scale=det.scale,
                        method=method,
                        scale=s,
                        scale_label=detector.heads[s].label,
                        pointing_game=pointing_game(heatmap, det.box_xyxy),
                        energy_pointing_game=energy_pointing_game(heatmap, det.box_xyxy),
                        deletion_auc=float(own.deletion_auc[d]),
                        insertion_auc=float(own.insertion_auc[d]),
                        random_deletion_auc=float(random[s].deletion_auc[d]),
                        random_insertion_auc=float(random[s].insertion_auc[d]),
                        sanity_spearman=None if sanity is None else float(sanity[d][j]),
                    )
                )
    return ImageEvaluation(
        name, size, detections, tuple(rows), curves, random, perturb.forward_passes
    )


def _upsampler(explainer: Explainer, fwd: Forward):
    def upsample(grid: np.ndarray) -> np.ndarray:
        return explainer.to_image(grid, fwd.letterbox)

    return upsample


def _random_curves(explainer, fwd, perturb, scales, seeds) -> dict[int, Curves]:
    upsample = _upsampler(explainer, fwd)
    return {
        s: random_baseline(perturb, seeds, explainer.detector.heads[s].grid, upsample)
        for s in scales
    }


def baseline_curves(
    explainer: Explainer,
    image: np.ndarray | str | bytes | Forward,
    detections: Sequence[Detection],
    scales: Sequence[int] | None = None,
    steps: int = DEFAULT_STEPS,
    fill: str = "grey",
    seeds: Sequence[int] = DEFAULT_SEEDS,
    batch_size: int = 16,
) -> dict[int, Curves]:
    """The random-map curves :func:`evaluate_image` reads every map against.

    Per scale, a U(0, 1) map on the scale's grid, placed on the image as the CAM maps
    are (:meth:`Explainer.to_image`), one per seed; the curves are averaged over seeds.

    Returns:
        {scale: :class:`Curves`} with one row per detection (pass it back as
        ``evaluate_image(..., baseline=)``).
    """
    from yolocam_core.explainer import Forward

    fwd = image if isinstance(image, Forward) else explainer.forward(image)
    scales = list(range(len(explainer.detector.heads))) if scales is None else list(scales)
    if not detections:
        return {}
    perturb = PerturbationCurves(explainer.detector, fwd.image, detections, steps, fill, batch_size)
    return _random_curves(explainer, fwd, perturb, scales, seeds)


# -- summary ---------------------------------------------------------------------------------

SUMMARY_METRICS = (
    "pointing_game",
    "energy_pointing_game",
    "deletion_auc",
    "random_deletion_auc",
    "insertion_auc",
    "random_insertion_auc",
    "sanity_spearman",
)


def _mean(values) -> float | None:
    values = [float(v) for v in values if v is not None and not math.isnan(float(v))]
    return float(np.mean(values)) if values else None


def summarize(rows: Sequence[MetricRow]) -> list[dict]:
    """Means over detections per method × scale, and per method at each detection's own
    scale (``scale == "own"``).

    Returns:
        Dicts with ``method``, ``scale`` (an index or ``"own"``), ``scale_label``,
        ``detections`` (how many), and the mean of each of :data:`SUMMARY_METRICS`
        (``pointing_game`` as the hit rate; None where nothing was measured), in the
        order methods and scales first appear.
    """
    groups: dict[tuple[str, int | str], list[MetricRow]] = {}
    labels: dict[tuple[str, int | str], str] = {}
    for row in rows:
        groups.setdefault((row.method, row.scale), []).append(row)
        labels[(row.method, row.scale)] = row.scale_label
    for row in rows:
        if row.own_scale:
            groups.setdefault((row.method, OWN), []).append(row)
            labels[(row.method, OWN)] = "own scale"
    out = []
    for method in dict.fromkeys(r.method for r in rows):
        for (m, scale), members in groups.items():
            if m != method:
                continue
            item: dict = {
                "method": method,
                "scale": scale,
                "scale_label": labels[(m, scale)],
                "detections": len(members),
            }
            for metric in SUMMARY_METRICS:
                mean = _mean(getattr(r, metric) for r in members)
                item[metric] = None if mean is None else round(mean, 6)
            out.append(item)
    return out


def _fmt(value: float | None, digits: int = 3) -> str:
    return "—" if value is None else f"{value:.{digits}f}"


def format_summary(summary: Sequence[dict]) -> str:
    """A readable table of :func:`summarize`'s rows."""
    if not summary:
        return "no detections to evaluate"
    header = (
        f"{'method':<10} {'scale':<18} {'n':>3}  {'PG':>5} {'EPG':>5}  "
        f"{'del':>5} {'del·rnd':>7}  {'ins':>5} {'ins·rnd':>7}  {'sanity ρ':>8}"
    )
    lines = [header, "-" * len(header)]
    for item in summary:
        lines.append(
            f"{item['method']:<10} {item['scale_label']:<18} {item['detections']:>3}  "
            f"{_fmt(item['pointing_game'], 2):>5} {_fmt(item['energy_pointing_game'], 2):>5}  "
            f"{_fmt(item['deletion_auc']):>5} {_fmt(item['random_deletion_auc']):>7}  "
            f"{_fmt(item['insertion_auc']):>5} {_fmt(item['random_insertion_auc']):>7}  "
            f"{_fmt(item['sanity_spearman'], 2):>8}"
        )
    lines.append(
        "PG: pointing game hit rate; EPG: share of the map's mass in the box; del / ins: "
        "deletion (lower is better) / insertion (higher is better) AUC of the detection's "
        "score, rnd: a random map of the same grid; sanity ρ: Spearman with the "
        "randomised model's map (near 0 passes)."
    )
    return "\n".join(lines)


def reading(summary: Sequence[dict], scale: int | str = OWN) -> str:
    """One sentence on the summary at one scale, generated from the numbers.

    E.g. "At 13×13 · stride 32, gradcam++ drops the score fastest when its pixels are
    deleted (AUC 0.08 vs 0.31 random) and gradcam restores it fastest (0.71 vs 0.40)."
    """
    items = [
        s
        for s in summary
        if s["scale"] == scale and s["deletion_auc"] is not None and s["insertion_auc"] is not None
    ]
    if not items:
        return "Nothing was measured at this scale."
    where = "at each detection's own scale" if scale == OWN else f"at {items[0]['scale_label']}"
    best_del = min(items, key=lambda s: s["deletion_auc"])
    best_ins = max(items, key=lambda s: s["insertion_auc"])
    del_ok = best_del["deletion_auc"] < best_del["random_deletion_auc"]
    ins_ok = best_ins["insertion_auc"] > best_ins["random_insertion_auc"]
    if best_del["method"] == best_ins["method"] and del_ok and ins_ok:
        m = best_del
        return (
            f"{where[0].upper()}{where[1:]}, {m['method']} is the most faithful: deleting "
            f"its top pixels drops the score fastest (deletion AUC {m['deletion_auc']:.2f} "
            f"vs {m['random_deletion_auc']:.2f} for a random map) and inserting them "
            f"restores it fastest (insertion AUC {m['insertion_auc']:.2f} vs "
            f"{m['random_insertion_auc']:.2f})."
        )
    parts = []
    if del_ok:
        parts.append(
            f"{best_del['method']} drops the score fastest when its top pixels are deleted "
            f"(deletion AUC {best_del['deletion_auc']:.2f} vs "
            f"{best_del['random_deletion_auc']:.2f} for a random map)"
        )
    else:
        parts.append(
            "no method drops the score faster than a random map when its top pixels are "
            f"deleted (best: {best_del['method']}, {best_del['deletion_auc']:.2f} vs "
            f"{best_del['random_deletion_auc']:.2f})"
        )
    if ins_ok:
        parts.append(
            f"{best_ins['method']} restores it fastest "
            f"(insertion AUC {best_ins['insertion_auc']:.2f} vs "
            f"{best_ins['random_insertion_auc']:.2f})"
        )
    else:
        parts.append(
            "none restores it faster than a random map "
            f"(best: {best_ins['method']}, {best_ins['insertion_auc']:.2f} vs "
            f"{best_ins['random_insertion_auc']:.2f})"
        )
    return f"{where[0].upper()}{where[1:]}, {parts[0]}; {parts[1]}."


def format_rows(evaluation: ImageEvaluation) -> str:
    """Per-detection table of one image."""
    lines = [f"{evaluation.image}: {len(evaluation.detections)} detection(s)"]
    for row in evaluation.rows:
        lines.append(
            f"  #{row.detection:<2} {row.class_name:<12} {row.score:.2f}  {row.method:<10} "
            f"{row.scale_label:<18}{'*' if row.own_scale else ' '} "
            f"PG {'hit ' if row.pointing_game else 'miss'}  EPG {row.energy_pointing_game:.2f}  "
            f"del {row.deletion_auc:.3f} (rnd {row.random_deletion_auc:.3f})  "
            f"ins {row.insertion_auc:.3f} (rnd {row.random_insertion_auc:.3f})  "
            f"ρ {_fmt(row.sanity_spearman, 2)}"
        )
    return "\n".join(lines)


# -- the command -------------------------------------------------------------------------------


def parse_methods(text: str) -> list[str]:
    """``all`` or comma-separated method names -> names; YolocamError if unknown."""
    from yolocam_core.cams import method_names

    names = method_names()
    if text.strip() == "all":
        return names
    chosen = [m.strip() for m in text.split(",") if m.strip()]
    bad = [m for m in chosen if m not in names]
    if bad or not chosen:
        raise YolocamError(
            f"--methods {text!r}: unknown method {', '.join(bad) or '(none)'}; "
            f"use 'all' or some of {', '.join(names)}"
        )
    return list(dict.fromkeys(chosen))


def add_evaluate_parser(sub) -> argparse.ArgumentParser:
    """Add ``yolocam evaluate`` to the subparsers of :func:`yolocam_core.cli.build_parser`."""
    from yolocam_core.cli import _add_model_options, _probability

    evaluate = sub.add_parser(
        "evaluate",
        help="faithfulness metrics of the maps of every detection",
        description="For every detection, method and scale: pointing game, energy-based "
        "pointing game, deletion and insertion AUC (against a random map of the same grid) "
        "and the model-randomisation Spearman ρ; then a summary table per method × scale.",
    )
    evaluate.add_argument("images", nargs="+", metavar="IMAGE")
    _add_model_options(evaluate)
    evaluate.add_argument(
        "--methods", default="all", help="'all' or comma-separated names (default all)"
    )
    evaluate.add_argument(
        "--scales", default="all", help="'all' or comma-separated head indices, e.g. 0,1"
    )
    evaluate.add_argument(
        "--steps",
        type=_whole(1, 1000),
        default=DEFAULT_STEPS,
        help=f"deletion/insertion steps (default {DEFAULT_STEPS})",
    )
    evaluate.add_argument(
        "--fill",
        default="grey",
        choices=("grey", "blur"),
        help="what removed pixels become (default grey 128)",
    )
    evaluate.add_argument(
        "--seeds",
        type=_whole(1, 100),
        default=len(DEFAULT_SEEDS),
        help=f"random maps averaged for the baseline (default {len(DEFAULT_SEEDS)})",
    )
    evaluate.add_argument(
        "--min-score",
        type=_probability,
        default=None,
        help="evaluate only detections at or above this score (default: all detected)",
    )
    evaluate.add_argument(
        "--no-sanity", action="store_true", help="skip the model-randomisation check"
    )
    evaluate.add_argument(
        "--details", action="store_true", help="also print the per-detection rows"
    )
    evaluate.add_argument(
        "--json", action="store_true", help="print per-detection rows and the summary as JSON"
    )
    return evaluate


def _whole(low: int, high: int):
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
        if not low <= value <= high:
            raise argparse.ArgumentTypeError(f"{value} is outside {low}..{high}")
        return value

    return parse


def run_evaluate(args: argparse.Namespace) -> int:
    """``yolocam evaluate``: metrics per detection, method and scale; summary table."""
    from yolocam_core.cli import EXIT_FAILED, EXIT_OK, _error, detector_from_args, parse_scales
    from yolocam_core.explainer import Explainer
    from yolocam_core.images import load_image
    from yolocam_core.metrics import randomised_explainer

    methods = parse_methods(args.methods)
    detector = detector_from_args(args)
    scales = parse_scales(args.scales, len(detector.heads))
    explainer = Explainer(detector)
    random_explainer = None if args.no_sanity else randomised_explainer(explainer)
    progress = sys.stderr.isatty() and not args.json
    failed = 0
    evaluations: list[ImageEvaluation] = []
    for path in args.images:
        try:
            image = load_image(path)
        except YolocamError as exc:  # reported per file; the run goes on
            _error(str(exc))
            failed += 1
            continue
        if progress:
            print(f"evaluating {path} …", file=sys.stderr, flush=True)
        fwd = explainer.forward(image)
        detections = explainer.detect(fwd, args.score, args.iou)
        if args.min_score is not None:
            detections = [d for d in detections if d.score >= args.min_score]
        evaluations.append(
            evaluate_image(
                explainer,
                fwd,
                methods,
                scales,
                detections,
                name=path,
                steps=args.steps,
                fill=args.fill,
                seeds=tuple(range(args.seeds)),
                random_explainer=random_explainer,
            )
        )
    rows = [row for e in evaluations for row in e.rows]
    summary = summarize(rows)
    if args.json:
        report = {
            "settings": {
                "model": args.model,
                "score": args.score,
                "iou": args.iou,
                "min_score": args.min_score,
                "methods": methods,
                "scales": scales if scales is not None else list(range(len(detector.heads))),
                "steps": args.steps,
                "fill": args.fill,
                "seeds": args.seeds,
                "sanity": random_explainer is not None,
            },
            "images": [
                {
                    "image": e.image,
                    "width": e.size[1],
                    "height": e.size[0],
                    "detections": [d.to_dict() for d in e.detections],
                }
                for e in evaluations
            ],
            "rows": [row.to_dict() for row in rows],
            "summary": summary,
        }
        print(json.dumps(report, indent=2, ensure_ascii=False))
    elif evaluations:
        blocks = []
        for e in evaluations:
            if not e.detections:
                blocks.append(f"{e.image}: no detection at this --score; nothing to evaluate")
            elif args.details:
                blocks.append(format_rows(e))
        if rows:
            count = sum(len(e.detections) for e in evaluations)
            title = (
                f"Summary over {count} detection(s) in {len(evaluations)} image(s), means "
                f"per method × scale ({args.steps} steps, fill {args.fill}, "
                f"{args.seeds} random map(s)):"
            )
            scales_seen = list(dict.fromkeys(r.scale for r in rows))
            readings = [reading(summary, s) for s in [*scales_seen, OWN]]
            blocks.append("\n".join([title, format_summary(summary), *readings]))
        print("\n\n".join(blocks))
    return EXIT_FAILED if failed else EXIT_OK
