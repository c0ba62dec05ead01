"""Faithfulness of the maps: one image's scorer, per detection, method and scale.

:class:`ImageScorer` scores maps of one image against its detections' boxes: pointing
game, energy-based pointing game, deletion and insertion AUC (:mod:`yolocam_core.metrics`).
``yolocam evaluate`` and ``yolocam batch --metrics`` both use it. :func:`evaluate_image`
adds what ``yolocam evaluate`` reports beside it: for one image, one forward pass, the
detections, then per method one :meth:`Explainer.explain_many` (all detections, all
scales), every map scored, each read against a random map of the same grid, and the
model-randomisation Spearman ρ. Identical maps (EigenCAM's, which do not depend on the
target; the random maps, shared by all detections) are perturbed once for all the
detections that share them.

Example:
    >>> result = evaluate_image(Explainer(load_detector()), "bus.jpg", methods=["gradcam"])
    >>> summarize(result.rows)[0]["deletion_auc"]
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from yolocam_core.metrics import (
    DEFAULT_STEPS,
    Curves,
    PerturbationCurves,
    agreement,
    energy_pointing_game,
    instance_hit,
    pointing_game,
    random_baseline,
    random_heatmap,
    rank_correlation,
    same_class_others,
    support_fraction,
)

if TYPE_CHECKING:  # TensorFlow is imported lazily
    from yolocam_core.cams import CamMethod
    from yolocam_core.detector import Detection, Detector
    from yolocam_core.explainer import Explainer, Explanation, Forward

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
        instance_hit: the map's peak is inside the box and outside every other
            detected box of its class (:func:`~yolocam_core.metrics.instance_hit`).
        support: share of the raw map's cells above zero.
        drise_spearman: Spearman ρ with D-RISE's map of the same detection and head
            (:func:`~yolocam_core.metrics.agreement`), or None when not computed.
        scale_relative: the detection's score at this head over its strongest head's
            (below :data:`~yolocam_core.explainer.WEAK_RELATIVE`: a weak scale).
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
    instance_hit: bool | None = None
    support: float | None = None
    drise_spearman: float | None = None
    scale_relative: float | None = None

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


@dataclass(frozen=True)
class ScoringSettings:
    """How maps are scored by deletion and insertion.

    Attributes:
        steps: deletion/insertion steps (equal pixel fractions; 2·(steps−1) forward
            passes per map).
        fill: what removed pixels become, ``"grey"`` or ``"blur"`` (see
            :class:`~yolocam_core.metrics.PerturbationCurves`).
        seeds: seeds of the random baseline maps (their curves are averaged); the
            first one's map also breaks ties between equal pixels of a map.
        batch_size: images per forward pass.
    """

    steps: int = DEFAULT_STEPS
    fill: str = "grey"
    seeds: tuple[int, ...] = DEFAULT_SEEDS
    batch_size: int = 16


@dataclass(frozen=True)
class MapScores:
    """The faithfulness of one map read against one detection.

    Attributes:
        pointing_game: the map's peak is inside the detection's box.
        energy_pointing_game: share of the map's mass inside the box.
        deletion_auc: area under the deletion curve of the detection's score (lower =
            more faithful).
        insertion_auc: the same for insertion (higher = more faithful).
    """

    pointing_game: bool
    energy_pointing_game: float
    deletion_auc: float
    insertion_auc: float


def _map_key(heatmap: np.ndarray) -> bytes:
    return hashlib.blake2b(np.ascontiguousarray(heatmap).tobytes(), digest_size=16).digest()


class ImageScorer:
    """Scores maps of one image against its detections' boxes; the one scorer of
    ``yolocam evaluate`` and ``yolocam batch --metrics``.

    Deletion/insertion remove (or restore) pixels in the order of the image-resolution
    heatmap, ties (ReLU zeros) broken by the ``settings.seeds[0]`` random map of the
    scale's grid, so that flat regions go in random blocks, like the baseline's.
    Identical maps at a scale (EigenCAM's, a class map shared by several boxes) are
    perturbed once. Maps are (H, W) heatmaps in [0, 1] (:attr:`ScaleMap.heatmap`): the
    ordering, and so deletion/insertion and the pointing game, does not depend on their
    normalisation; the energy share does.

    Args:
        detector: the model whose scores are perturbed.
        fwd: the image's forward pass (its image and letterbox).
        detections: the D detections maps are read against (row d of every curve).
        settings: steps, fill, seeds and batch size.
    """

    def __init__(
        self,
        detector: Detector,
        fwd: Forward,
        detections: Sequence[Detection],
        settings: ScoringSettings = ScoringSettings(),
    ):
        self.detector = detector
        self.fwd = fwd
        self.detections = tuple(detections)
        self.settings = settings
        self._perturb: PerturbationCurves | None = None
        self._ties: dict[int, np.ndarray] = {}
        self._curves: dict[tuple[int, bytes], Curves] = {}

    @property
    def perturbation(self) -> PerturbationCurves:
        """The image's perturbations (built at first use: two forward passes)."""
        if self._perturb is None:
            s = self.settings
            self._perturb = PerturbationCurves(
                self.detector, self.fwd.image, self.detections, s.steps, s.fill, s.batch_size
            )
        return self._perturb

    @property
    def forward_passes(self) -> int:
        """Forward passes spent so far."""
        return 0 if self._perturb is None else self._perturb.forward_passes

    def _grid(self, scale: int) -> tuple[int, int]:
        return self.detector.heads[scale].grid

    def _tie_break(self, scale: int) -> np.ndarray:
        if scale not in self._ties:
            self._ties[scale] = random_heatmap(
                self.fwd.image.shape[:2],
                self.settings.seeds[0],
                self._grid(scale),
                self.fwd.letterbox.map_to_image,
            )
        return self._ties[scale]

    def curves(self, scale: int, heatmap: np.ndarray) -> Curves:
        """Deletion and insertion curves of every detection under one map of ``scale``
        (D rows), computed once per distinct map."""
        key = (scale, _map_key(heatmap))
        if key not in self._curves:
            self._curves[key] = self.perturbation.curves(heatmap, self._tie_break(scale))
        return self._curves[key]

    def own_curves(self, scale: int, heatmaps: Sequence[np.ndarray]) -> Curves:
        """Row d: detection d's score under ``heatmaps[d]`` (its own map)."""
        rows = [self.curves(scale, h) for h in heatmaps]
        return Curves(
            self.perturbation.fractions.copy(),
            np.array([c.deletion[d] for d, c in enumerate(rows)]),
            np.array([c.insertion[d] for d, c in enumerate(rows)]),
        )

    def score(self, scale: int, heatmap: np.ndarray, detection: int) -> MapScores:
        """One map of ``scale`` read against detection ``detection`` (an index)."""
        box = self.detections[detection].box_xyxy
        curves = self.curves(scale, heatmap)
        return MapScores(
            pointing_game=bool(pointing_game(heatmap, box)),
            energy_pointing_game=float(energy_pointing_game(heatmap, box)),
            deletion_auc=float(curves.deletion_auc[detection]),
            insertion_auc=float(curves.insertion_auc[detection]),
        )

    def random_curves(self, scales: Sequence[int]) -> dict[int, Curves]:
        """Per scale, the curves of U(0, 1) maps on the scale's grid placed on the image
        as the CAM maps are (one per seed, averaged): the baseline."""
        return {
            s: random_baseline(
                self.perturbation,
                self.settings.seeds,
                self._grid(s),
                self.fwd.letterbox.map_to_image,
            )
            for s in scales
        }


def _forward(explainer: Explainer, image: np.ndarray | str | bytes | Forward) -> Forward:
    from yolocam_core.explainer import Forward

    return image if isinstance(image, Forward) else explainer.forward(image)


def _scales(explainer: Explainer, scales: Sequence[int] | None) -> list[int]:
    return list(range(len(explainer.detector.heads))) if scales is None else list(scales)


def evaluate_image(
    explainer: Explainer,
    image: np.ndarray | str | bytes | Forward,
    methods: Sequence[str | CamMethod] = ("gradcam",),
    scales: Sequence[int] | None = None,
    detections: Sequence[Detection] | None = None,
    *,
    name: str = "",
    settings: ScoringSettings = ScoringSettings(),
    layer: str | Mapping[int, str] | None = None,
    random_explainer: Explainer | Mapping[str, Explainer] | None = None,
    baseline: Mapping[int, Curves] | None = None,
    reference: Sequence[Explanation] | None = None,
    explained: Mapping[str, Sequence[Explanation]] | None = None,
) -> ImageEvaluation:
    """All metrics for every detection of one image, every method and scale.

    Each detection's map (per-map min–max normalised heatmap at image resolution) is
    scored against its own box by :class:`ImageScorer`.

    Args:
        explainer: the trained model's explainer.
        image: (H, W, 3) uint8 RGB, a path or bytes, or a :class:`Forward`.
        methods: CAM method names, or configured methods such as
            ``DRise(masks=500)`` (rows name them by their registry name).
        scales: head indices; None = all.
        detections: the detections to evaluate; None = detect at the default
            thresholds (score 0.25, IoU 0.45).
        name: shown in the rows (default: the path, or ``"image"``).
        settings: deletion/insertion steps, fill, random-map seeds, batch size.
        layer: another layer per scale (see :meth:`Explainer.explain_many`).
        random_explainer: from :func:`yolocam_core.metrics.randomised_explainer`, one
            for all methods or one per method name (a cascade is bounded by each
            method's layers); None, or a method missing from the mapping, skips the
            sanity check (``sanity_spearman`` None).
        baseline: random-map curves per scale from an earlier call with the same
            detections and settings (``ImageEvaluation.random``), so that evaluating
            more methods later does not recompute them.
        reference: D-RISE's explanations of ``detections`` (one per detection, every
            scale in ``scales``; :meth:`Explainer.explain_many` with a
            :class:`~yolocam_core.cams.DRise`), for ``drise_spearman``; None skips it.
        explained: explanations already made, per method name (one per detection,
            the maps of ``scales`` in that order, ``norm="per-map"``), used instead of
            explaining again: e.g. D-RISE's ``reference`` when ``drise`` is also
            evaluated (its own rows then have no ``drise_spearman``: the maps are the
            reference).

    Returns:
        An :class:`ImageEvaluation` (no rows when there is no detection).
    """
    if not methods:
        raise ValueError("methods is empty")
    name = name or (image if isinstance(image, str) else "image")
    fwd = _forward(explainer, image)
    detections = tuple(explainer.detect(fwd) if detections is None else detections)
    scales = _scales(explainer, scales)
    size = fwd.image.shape[:2]
    if not detections:
        return ImageEvaluation(name, size, (), ())
    scorer = ImageScorer(explainer.detector, fwd, detections, settings)
    random = _baseline(scorer, scales, baseline)
    rows: list[MetricRow] = []
    curves: dict[tuple[str, int], Curves] = {}
    for what, given in (("reference", reference), *(explained or {}).items()):
        if given is not None and len(given) != len(detections):
            raise ValueError(
                f"{what} has {len(given)} explanations for {len(detections)} detections"
            )
    for what, given in (explained or {}).items():
        for e in given:
            if e.norm != "per-map" or [m.scale for m in e.maps] != list(scales):
                raise ValueError(
                    f"explained[{what!r}] must hold per-map maps of scales {list(scales)}; "
                    f"got {e.norm} maps of {[m.scale for m in e.maps]}"
                )
    for method in methods:
        randomised = (
            random_explainer.get(getattr(method, "name", method))
            if isinstance(random_explainer, Mapping)
            else random_explainer
        )
        method_rows, method_curves = _evaluate_method(
            explainer,
            scorer,
            method,
            scales,
            name,
            layer,
            random,
            randomised,
            reference,
            (explained or {}).get(getattr(method, "name", method)),
        )
        rows.extend(method_rows)
        curves.update(method_curves)
    return ImageEvaluation(
        name, size, detections, tuple(rows), curves, random, scorer.forward_passes
    )


def _baseline(
    scorer: ImageScorer, scales: Sequence[int], baseline: Mapping[int, Curves] | None
) -> dict[int, Curves]:
    """The random-map curves of ``scales``: those given, the others computed."""
    baseline = dict(baseline or {})
    expected = (len(scorer.detections), scorer.settings.steps + 1)
    for s, curves_s in baseline.items():
        if curves_s.deletion.shape != expected:
            raise ValueError(
                f"baseline[{s}] has curves of shape {curves_s.deletion.shape}; expected "
                f"{expected} (same detections and steps)"
            )
    random = {s: baseline[s] for s in scales if s in baseline}
    random.update(scorer.random_curves([s for s in scales if s not in baseline]))
    return random


def _evaluate_method(
    explainer: Explainer,
    scorer: ImageScorer,
    method: str | CamMethod,
    scales: Sequence[int],
    name: str,
    layer: str | Mapping[int, str] | None,
    random: Mapping[int, Curves],
    random_explainer: Explainer | None,
    reference: Sequence[Explanation] | None = None,
    explained: Sequence[Explanation] | None = None,
) -> tuple[list[MetricRow], dict[tuple[str, int], Curves]]:
    """The rows and own-map curves of one method: every detection × scale (explained
    here unless ``explained`` gives the explanations)."""
    from yolocam_core.targets import DetectionTarget

    targets = [DetectionTarget(d) for d in scorer.detections]
    is_reference = explained is not None and explained is reference
    if explained is None:
        explained = explainer.explain_many(
            scorer.fwd, targets, method, scales, layer=layer, norm="per-map"
        )
    sanity = _sanity(random_explainer, scorer.fwd, targets, method, scales, layer, explained)
    method = explained[0].method if explained else getattr(method, "name", method)
    rows: list[MetricRow] = []
    curves: dict[tuple[str, int], Curves] = {}
    for j, s in enumerate(scales):
        heatmaps = [e.maps[j].heatmap for e in explained]
        curves[(method, s)] = scorer.own_curves(s, heatmaps)
        for d, (det, heatmap) in enumerate(zip(scorer.detections, heatmaps, strict=True)):
            scores = scorer.score(s, heatmap, d)
            grid_map = explained[d].maps[j].grid_map
            others = same_class_others(scorer.detections, d)
            drise = None
            if reference is not None and not is_reference:
                drise = float(agreement(grid_map, reference[d].by_scale(s).grid_map))
            rows.append(
                MetricRow(
                    image=name,
                    detection=d,
                    class_name=det.class_name,
                    score=det.score,
                    detection_scale=det.scale,
                    method=method,
                    scale=s,
                    scale_label=explainer.detector.heads[s].label,
                    **asdict(scores),
                    random_deletion_auc=float(random[s].deletion_auc[d]),
                    random_insertion_auc=float(random[s].insertion_auc[d]),
                    sanity_spearman=None if sanity is None else float(sanity[d][j]),
                    instance_hit=bool(instance_hit(heatmap, det.box_xyxy, others)),
                    support=support_fraction(grid_map),
                    drise_spearman=drise,
                    scale_relative=explained[d].maps[j].relative,
                )
            )
    return rows, curves


def _sanity(
    random_explainer: Explainer | None,
    fwd: Forward,
    targets,
    method: str | CamMethod,
    scales: Sequence[int],
    layer,
    explained: Sequence[Explanation],
) -> list[list[float]] | None:
    """Per detection and scale, Spearman ρ of the map with the randomised model's."""
    if random_explainer is None:
        return None
    randomised = random_explainer.explain_many(fwd.image, targets, method, scales, layer=layer)
    return [
        [rank_correlation(a.grid_map, b.grid_map) for a, b in zip(t.maps, r.maps, strict=True)]
        for t, r in zip(explained, randomised, strict=True)
    ]


def baseline_curves(
    explainer: Explainer,
    image: np.ndarray | str | bytes | Forward,
    detections: Sequence[Detection],
    scales: Sequence[int] | None = None,
    settings: ScoringSettings = ScoringSettings(),
) -> dict[int, Curves]:
    """The random-map curves :func:`evaluate_image` reads every map against.

    Per scale, a U(0, 1) map on the scale's grid, placed on the image as the CAM maps
    are (:meth:`Letterbox.map_to_image`), one per seed; the curves are averaged over seeds.

    Returns:
        {scale: :class:`Curves`} with one row per detection (pass it back as
        ``evaluate_image(..., baseline=)``).
    """
    if not detections:
        return {}
    fwd = _forward(explainer, image)
    scorer = ImageScorer(explainer.detector, fwd, detections, settings)
    return scorer.random_curves(_scales(explainer, scales))


# -- summary ---------------------------------------------------------------------------------

SUMMARY_METRICS = (
    "pointing_game",
    "energy_pointing_game",
    "deletion_auc",
    "random_deletion_auc",
    "insertion_auc",
    "random_insertion_auc",
    "sanity_spearman",
    "instance_hit",
    "support",
    "drise_spearman",
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


#: How much lower (deletion) or higher (insertion) than a random map's area a method's
#: must be for :func:`reading` to say it beats the random map (0.07 against 0.07 is a tie).
CLEAR_MARGIN = 0.1


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
    # a method beats the random map when its area is clearly (CLEAR_MARGIN) better
    del_ok = best_del["deletion_auc"] < (1 - CLEAR_MARGIN) * best_del["random_deletion_auc"]
    ins_ok = best_ins["insertion_auc"] > (1 + CLEAR_MARGIN) * best_ins["random_insertion_auc"]
    if len({s["method"] for s in items}) == 1:  # nothing to rank it against
        m = best_del
        return (
            f"{where[0].upper()}{where[1:]}, {m['method']} (the only method measured, so no "
            f"ranking): deletion AUC {m['deletion_auc']:.2f} vs "
            f"{m['random_deletion_auc']:.2f} for a random map ({'' if del_ok else 'not '}"
            f"lower, lower is better), insertion AUC {m['insertion_auc']:.2f} vs "
            f"{m['random_insertion_auc']:.2f} ({'' if ins_ok else 'not '}higher, higher is "
            "better)."
        )
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
