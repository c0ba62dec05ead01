"""Batch runs: explain every image of a folder, locally or on Ray, resumably.

Modules: :mod:`~yolocam_core.batch.settings` (what to compute, the summary's
columns), :mod:`~yolocam_core.batch.folders` (input listing, output layout, markers),
:mod:`~yolocam_core.batch.image` (one image), :mod:`~yolocam_core.batch.engines`
(local pool, Ray Data) and :mod:`~yolocam_core.batch.runner` (:func:`run_batch`, the
summary). The ``yolocam batch`` command is :mod:`yolocam_core.cli.batch`.

Layout of an output folder::

    OUT_DIR/
      summary.csv, summary.parquet     one row per image × detection × method × scale
      images/<name>-<hash>/            one folder per input image
        detections.json                the image's size and detections
        <target>_<method>_scale<k>_<h>x<w>.png / .npy   overlay and raw grid map
        <target>_<method>.json         what the maps explain (yolocam_core.outputs)
        <target>_<method>_sheet.png    all scales side by side (``sheet=True`` only)
        done.json                      written LAST, by atomic rename: the image is
                                       complete iff this marker exists (and matches)
        error.json                     instead of done.json when the image failed

Resume semantics: an image is skipped iff its ``done.json`` exists, was written with
the same settings (a fingerprint of model, thresholds, methods, targets, scales,
normalisation, colour map, opacity, sheet and metrics) and for the same source file
(size and modification time). The marker holds the image's summary rows, so a resumed
run rebuilds the whole summary without recomputing anything. Anything else (no
marker, a stale marker, a half-written folder from an interrupted run) is recomputed
from scratch: its folder is emptied first. Failed images get ``error.json`` and are
**retried on every run** (a failure may be transient: a file still being copied, a
full disk, a worker killed for memory; a corrupt file fails again in milliseconds
once the model is loaded), and stay in the summary as ``status == "error"`` rows. A run
with nothing left to do does not load the model.

Engines: ``local`` runs in this process (``workers=1``) or in a pool of ``spawn``-ed
processes that each load the model once (TensorFlow is not fork-safe); ``ray`` reads
the files with Ray Data in parallel and explains them in an actor pool whose actors
each hold the model once, so the same call runs on a Ray cluster (``address=``), as
long as every node sees ``OUT_DIR`` and the input folder at the same paths (a shared
file system) and has yolocam installed.

Example:
    >>> from yolocam_core.batch import BatchSettings, run_batch
    >>> report = run_batch("photos/", "out/", BatchSettings(methods=("gradcam",)))
    >>> report.failed, report.summary_csv
    (0, PosixPath('out/summary.csv'))
"""

from __future__ import annotations

from yolocam_core.batch.engines import load_explainer
from yolocam_core.batch.folders import image_dir, list_images, read_marker
from yolocam_core.batch.image import error_row, process_image, resolve_targets
from yolocam_core.batch.runner import run_batch, summary_frame, write_summary
from yolocam_core.batch.settings import (
    DONE_MARKER,
    ENGINES,
    ERROR_MARKER,
    FORMAT_VERSION,
    IMAGE_EXTENSIONS,
    METRIC_COLUMNS,
    SUMMARY_COLUMNS,
    TIMING_COLUMNS,
    BatchReport,
    BatchSettings,
    ImageItem,
)

__all__ = [
    "DONE_MARKER",
    "ENGINES",
    "ERROR_MARKER",
    "FORMAT_VERSION",
    "IMAGE_EXTENSIONS",
    "METRIC_COLUMNS",
    "SUMMARY_COLUMNS",
    "TIMING_COLUMNS",
    "BatchReport",
    "BatchSettings",
    "ImageItem",
    "error_row",
    "image_dir",
    "list_images",
    "load_explainer",
    "process_image",
    "read_marker",
    "resolve_targets",
    "run_batch",
    "summary_frame",
    "write_summary",
]
