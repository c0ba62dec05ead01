"""What a batch run computes (:class:`BatchSettings`), its inputs and report, and the
summary's columns."""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from yolocam_core.errors import YolocamError
from yolocam_core.norms import NORMS

if TYPE_CHECKING:  # yolocam_core.models imports TensorFlow: `yolocam --help` stays fast
    from yolocam_core.cams.base import CamMethod
    from yolocam_core.models import ModelSpec

#: Bump when the per-image folder layout or the rows change: older markers then
#: count as stale and their images are recomputed. 2: the file names of
#: :mod:`yolocam_core.outputs` (``…_scale<k>_…``, ``detection-<K>-<class>``, a JSON
#: record per explanation).
FORMAT_VERSION = 2

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".webp", ".bmp", ".tif", ".tiff", ".gif")
DONE_MARKER, ERROR_MARKER = "done.json", "error.json"
IMAGES_SUBDIR = "images"
SUMMARY_CSV, SUMMARY_PARQUET = "summary.csv", "summary.parquet"
RAY_LOG = "ray-driver.log"  # what Ray's native code printed during an ``engine="ray"`` run
ENGINES = ("local", "ray")

#: Summary columns and their pandas dtypes, in order. Metric columns (``--metrics``,
#: :data:`METRIC_COLUMNS`) follow them.
SUMMARY_COLUMNS: dict[str, str] = {
    "image": "string",  # path relative to the input folder, '/'-separated
    "status": "string",  # "ok" or "error"
    "error": "string",  # the error, for status == "error"
    "width": "Int64",
    "height": "Int64",
    "n_detections": "Int64",
    "note": "string",  # photo too small or elongated for the network; detections left out
    "target": "string",  # "detection", "class" or "seed"
    "target_label": "string",  # e.g. "person 0.99", "class dog"
    "detection": "Int64",  # index K into detections.json (the box the row is about)
    "class_id": "Int64",
    "class_name": "string",
    "det_score": "Float64",
    "x1": "Float64",
    "y1": "Float64",
    "x2": "Float64",
    "y2": "Float64",
    "det_scale": "Int64",  # the scale that predicted the detection
    "method": "string",
    "scale": "Int64",
    "grid": "string",  # e.g. "13x13"
    "layer": "string",
    "target_score": "Float64",  # the explained score at this scale
    "relative": "Float64",  # target_score over the strongest head's score
    "share": "Float64",  # target_score over the sum of every head's score
    "weak": "boolean",  # relative below 1%: the map explains little of the score
    "norm": "string",  # how the overlay was normalised (e.g. "shared", "per-map")
    "ignores_target": "boolean",  # the method draws the same map for any target
    "overlay": "string",  # relative to OUT_DIR
    "raw_map": "string",  # relative to OUT_DIR
    "seconds": "Float64",  # wall time of the whole image (timing: differs run to run)
}
#: Columns that measure time and so differ between otherwise identical runs.
TIMING_COLUMNS = ("seconds",)
#: Metric columns and their dtypes, in order, when ``metrics=True`` (the names of
#: ``yolocam evaluate``; empty for rows without a box, e.g. ``seed`` targets).
METRIC_COLUMNS: dict[str, str] = {
    "pointing_game": "boolean",  # the map's peak is inside the box
    "energy_pointing_game": "Float64",  # share of the map's mass inside the box
    "deletion_auc": "Float64",  # lower = more faithful
    "insertion_auc": "Float64",  # higher = more faithful
}


def _default_model() -> ModelSpec:
    from yolocam_core.models import ModelSpec

    return ModelSpec()


#: What ``targets`` may be: every detection, or a :class:`~yolocam_core.targets.TargetSpec`
#: of these kinds.
TARGET_CHOICES = "detections, class:NAME or seed"


def check_targets(targets: str) -> None:
    """Refuse a ``targets`` setting other than :data:`TARGET_CHOICES` (the class name
    is checked against the model later).

    Raises:
        YolocamError: any other text.
    """
    kind, _, value = targets.partition(":")
    if targets not in ("detections", "seed") and not (kind == "class" and value):
        raise YolocamError(f"--targets {targets!r}: use {TARGET_CHOICES}")


@dataclass(frozen=True)
class BatchSettings:
    """What to compute for every image; everything here is part of the fingerprint.

    Attributes:
        model: the model (:class:`~yolocam_core.models.ModelSpec`, file paths absolute:
            workers may run elsewhere); this process, the local pool's processes and
            the Ray actors each load it with :meth:`ModelSpec.load`. A name or path
            string is turned into a spec.
        score: detection score threshold.
        iou: NMS IoU threshold.
        methods: CAM method names (see :func:`yolocam_core.cams.method_names`), or
            ``("auto",)``: each target kind's default
            (:func:`yolocam_core.cams.default_method`).
        targets: ``"detections"`` (every detected box), ``"class:NAME"`` (one class;
            its rows are repeated per detection of that class, or one row per scale
            if there is none) or ``"seed"`` (the article's whole head output).
        scales: head indices, or None for all.
        norm: ``"auto"`` (shared across scales for detection and class targets, per
            map for the whole head output: the library's default), ``"per-map"`` or
            ``"shared"``.
        colormap: overlay colour map.
        opacity: overlay opacity.
        sheet: also write a side-by-side sheet per target × method.
        metrics: add pointing game, energy-based pointing game and deletion/insertion
            AUC per row with a box (:class:`yolocam_core.evaluate.ImageScorer`, the
            scorer of ``yolocam evaluate``, without its random baseline and sanity check).
        metrics_steps: deletion/insertion steps (2·(steps−1) forward passes per map);
            None: ``yolocam_core.metrics.DEFAULT_STEPS``, as ``yolocam evaluate``.
        max_detections: at most this many detections per image, the highest-scoring
            (``detections.json`` has a ``note`` when more were found).
        drise_masks, drise_seed: D-RISE's masks and their seed (method ``drise``).
        drise_precision: its masked forwards' arithmetic (``DRise(precision=…)``).
    """

    model: ModelSpec = field(default_factory=_default_model)
    score: float = 0.25
    iou: float = 0.45
    methods: tuple[str, ...] = ("auto",)
    targets: str = "detections"
    scales: tuple[int, ...] | None = None
    norm: str = "auto"
    colormap: str = "jet"
    opacity: float = 0.5
    sheet: bool = False
    metrics: bool = False
    metrics_steps: int | None = None
    max_detections: int = 300
    drise_masks: int = 1000
    drise_seed: int = 0
    drise_precision: str = "auto"

    def __post_init__(self) -> None:
        if isinstance(self.model, (str, os.PathLike)):
            from yolocam_core.models import ModelSpec

            object.__setattr__(self, "model", ModelSpec.from_options(self.model))

    def model_files(self) -> list[str]:
        """The files the model is read from (its cfg or Keras file, weights, names)."""
        spec = self.model
        values = (spec.source, spec.weights, spec.classes)
        return [v for v in values if isinstance(v, str) and os.path.isfile(v)]

    def check(self) -> None:
        """Raise a one-line YolocamError for what is wrong without loading the model
        (the scales' range and a class name are checked against it later)."""
        from yolocam_core.cams import get_method

        if not self.methods:
            raise YolocamError("--methods: give at least one method")
        for method in self.methods:
            if method == "auto" and len(self.methods) == 1:
                continue
            try:
                get_method(method)
            except ValueError as exc:
                raise YolocamError(f"--methods: {exc}") from None
        check_targets(self.targets)
        kind = self.targets.partition(":")[0]
        if self.scales is not None:
            if not self.scales or len(set(self.scales)) != len(self.scales):
                raise YolocamError(f"--scales {self.scales}: give each scale once, at least one")
        if self.norm not in NORMS:
            raise YolocamError(f"--norm {self.norm!r}: use one of {', '.join(NORMS)}")
        if self.max_detections < 1:
            raise YolocamError(f"--max-detections {self.max_detections}: give at least 1")
        if "drise" in self.methods:
            self.method_for("drise")  # DRise checks its options
        if self.targets == "seed" or kind == "class":  # every image would fail: refuse now
            from yolocam_core.cams import check_kind

            for method in self.methods:
                check_kind(self.method_for(method, (kind,)), kind)

    def method_for(self, method: str, kinds: Sequence[str] = ("detection",)) -> str | CamMethod:
        """The method to explain targets of these kinds with: ``auto`` resolved, and
        for ``drise`` a ``DRise`` with :attr:`drise_masks`, :attr:`drise_seed` and
        :attr:`drise_precision`."""
        from yolocam_core.cams import DRise, default_method

        if method == "auto":
            return default_method(kinds)
        if method == "drise":
            return DRise(
                masks=self.drise_masks, seed=self.drise_seed, precision=self.drise_precision
            )
        return method

    def fingerprint(self) -> str:
        """A short hash of the settings (the whole model spec included), the output
        format version and the size and modification time of the model's files (a
        retrained model is new work)."""
        data = asdict(self)
        for name, default in _LATER_FIELDS.items():  # runs from before them still resume
            if data[name] == default:
                del data[name]
        data["format"] = FORMAT_VERSION
        data["files"] = [source_stat(path) for path in self.model_files()]
        text = json.dumps(data, sort_keys=True, default=list)
        return hashlib.sha256(text.encode()).hexdigest()[:16]


#: Fields added after FORMAT_VERSION 2, left out of the fingerprint at these values.
_LATER_FIELDS = {
    "max_detections": 300,
    "drise_masks": 1000,
    "drise_seed": 0,
    "drise_precision": "auto",
}


@dataclass(frozen=True)
class ImageItem:
    """One input image: its path and its name relative to the input folder."""

    path: str
    rel: str


@dataclass
class BatchReport:
    """What a :func:`run_batch` call did.

    Attributes:
        total: images found.
        computed: images processed in this run (successfully or not).
        skipped: images already complete from an earlier run.
        failed: images whose summary rows are errors (this run or, for none, earlier).
        failures: (image, error) of the failed images.
        summary_csv, summary_parquet: where the summary was written.
        seconds: wall time of the call.
        interrupted: the run was interrupted; finished images are kept.
    """

    total: int = 0
    computed: int = 0
    skipped: int = 0
    failed: int = 0
    failures: list[tuple[str, str]] = field(default_factory=list)
    summary_csv: Path | None = None
    summary_parquet: Path | None = None
    seconds: float = 0.0
    interrupted: bool = False


def source_stat(path: str) -> dict | None:
    """Size and modification time of a file (what makes a result stale), or None."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    return {"size": st.st_size, "mtime_ns": st.st_mtime_ns}
