"""Everything the app caches, and the limits that keep one request bounded.

Models are shared by every session (``cache_resource``, keyed by a model name);
results are cached per image hash and parameters (``cache_data``). Drawing (colour
map, opacity) is never cached here, so changing it never recomputes gradients.

Memory is bounded whatever a model outputs:

- at most ``max_detections`` detections per image (300 by default; NMS stops early,
  see :meth:`Detector.postprocess`), so tables, menus and drawings stay small;
- cached explanations hold only the small grid maps (``Explanation.compact``); the
  full-size heatmaps of the one explanation shown are made per run (``explain_many``
  makes none until one is read, see :class:`~yolocam_core.explainer.OnDemandHeatmaps`);
- heavy work (forward passes, gradients, model loading) runs at most
  :data:`HEAVY_SLOTS` at a time across the whole server (:func:`heavy`): a burst of
  sessions waits its turn instead of multiplying the memory in use; a black-box
  method (D-RISE, one forward pass per mask) takes one of them, one run at a time
  (:func:`slow`), so that the other sessions' quick work keeps a slot.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import re
import shutil
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import streamlit as st

from yolocam_app import heap
from yolocam_core import render
from yolocam_core.cams import is_black_box
from yolocam_core.detector import DEFAULT_MAX_DETECTIONS, Detections
from yolocam_core.errors import YolocamError
from yolocam_core.explainer import Explainer, Explanation
from yolocam_core.images import load_image
from yolocam_core.models import ModelSpec, load_detector, sample_images
from yolocam_core.targets import TargetSpec

ROOT = Path(__file__).resolve().parents[1]
#: The app's static files: logo, favicon, styles (and their licence file).
ASSETS = ROOT / "assets"


def get_explainer(model_name: str) -> Explainer:
    """One explainer per model for the whole server; read-only and thread-safe.

    ``model_name`` is a zoo name, or ``"upload:<digest>"`` for a model loaded in the
    sidebar's "Your model" section (see :func:`uploaded_explainer`).
    """
    if model_name.startswith(UPLOAD_PREFIX):
        return uploaded_explainer(model_name.removeprefix(UPLOAD_PREFIX))
    return zoo_explainer(model_name)


# -- bounded work ---------------------------------------------------------------------

#: Heavy computations running at once on the whole server (2 cores: more would not
#: be faster, only use more memory).
HEAVY_SLOTS = 2
#: How long a request waits for a slot before it is told the server is busy.
HEAVY_WAIT_S = 120.0
_HEAVY = threading.BoundedSemaphore(HEAVY_SLOTS)
#: The sidebar's "Max detections" can go up to this.
MAX_DETECTIONS_LIMIT = 1000
#: Detections explained together (one compiled call per scale) for instant switching.
MAX_BATCH = 30


#: While waiting for a slot, whether the work is still wanted is checked this often.
SLOT_POLL_S = 0.5


@contextlib.contextmanager
def _held(
    slots: threading.BoundedSemaphore, busy: str, check: Callable[[int, int], None] | None = None
) -> Iterator[None]:
    """Hold one of ``slots``; YolocamError(``busy``) when none frees up within
    :data:`HEAVY_WAIT_S` seconds. While waiting, ``check(0, 0)`` (a progress callback)
    is called every :data:`SLOT_POLL_S`: it raises to give up (nobody wants the work)."""
    deadline = time.monotonic() + HEAVY_WAIT_S
    while not slots.acquire(timeout=SLOT_POLL_S if check else HEAVY_WAIT_S):
        if check is None or time.monotonic() >= deadline:
            raise YolocamError(busy)
        check(0, 0)
    try:
        yield
    finally:
        slots.release()


@contextlib.contextmanager
def heavy(what: str = "this", check: Callable[[int, int], None] | None = None) -> Iterator[None]:
    """Hold one of the server's :data:`HEAVY_SLOTS` while computing.

    Raises:
        YolocamError: no slot within :data:`HEAVY_WAIT_S` seconds.
    """
    busy = (
        f"the server is busy with other requests and could not start {what} within "
        f"{HEAVY_WAIT_S:.0f} s; try again in a minute"
    )
    with _held(_HEAVY, busy, check):
        yield


@st.cache_resource(show_spinner="Loading the model (converted once, then cached on disk)…")
def zoo_explainer(model_name: str) -> Explainer:
    """The explainer of a named (zoo) model."""
    with heavy("loading the model"):
        explainer = Explainer(load_detector(model_name))
    heap.model_loaded()
    return explainer


# -- models uploaded in the sidebar ("Your model") ------------------------------------

UPLOAD_PREFIX = "upload:"
MB = 1 << 20
#: Per-kind upload limits (the server's own cap, .streamlit/config.toml, is 300 MB).
UPLOAD_LIMITS = {
    "image": 25 * MB,
    "cfg": MB,
    "weights": 300 * MB,
    "keras": 300 * MB,
    "names": MB,
}
UPLOAD_LIMIT_LABELS = {
    "image": "a photo",
    "cfg": "a Darknet .cfg",
    "weights": "Darknet .weights",
    "keras": "a Keras model",
    "names": "a class names file",
}


def widget_limit_mb(kind: str) -> int:
    """The uploader widget's own cap for ``kind``: a positive whole number of MB.

    Streamlit's ``max_upload_size`` takes MB, which its browser code turns into bytes
    as MB × 10⁶ (× 2²⁰ on Windows), so the limit is rounded up in decimal MB: the
    browser refuses clearly oversized files early and never a file within the limit;
    the exact byte limit is checked by :func:`check_upload_size`.
    """
    return max(1, -(-UPLOAD_LIMITS[kind] // 1_000_000))


def check_upload_size(kind: str, file_name: str, size: int) -> None:
    """YolocamError when an upload of ``kind`` is over its limit."""
    limit = UPLOAD_LIMITS[kind]
    if size > limit:
        raise YolocamError(
            f"{file_name} is {size / MB:,.1f} MB; the limit for {UPLOAD_LIMIT_LABELS[kind]} "
            f"is {limit / MB:,.0f} MB"
        )


#: Uploaded model files live under ``<cache>/uploads/<digest>/`` while they are loaded
#: (a Keras model is read into memory, a Darknet one converted and cached on disk), and
#: are removed right after; leftovers of an interrupted load are removed when older
#: than this many seconds, and at most :data:`MAX_UPLOAD_FOLDERS` folders exist at once.
UPLOAD_FOLDER_TTL_S = 3600.0
MAX_UPLOAD_FOLDERS = 8


def uploads_dir() -> Path:
    """``<yolocam cache>/uploads`` (``$XDG_CACHE_HOME/yolocam/uploads``)."""
    from yolocam_core.models.cache import cache_dir

    return cache_dir() / "uploads"


def safe_file_name(role: str, original: str, data: bytes) -> str:
    """The uploaded file's own name made safe for the file system (so that messages
    name the user's file), with the suffix its loader expects."""
    stem = re.sub(r"[^A-Za-z0-9_.-]", "_", Path(original).stem)[:80].strip(".") or role
    suffix = Path(original).suffix.lower() if role == "keras" else f".{role}"
    if role == "keras" and suffix not in (".h5", ".hdf5", ".keras"):
        suffix = ".h5" if data[:8] == b"\x89HDF\r\n\x1a\n" else ".keras"
    return stem + suffix


def upload_digest(files: dict[str, tuple[str, bytes]], options: dict) -> str:
    """16 hex digits of sha256 over the files (role, name, contents) and the options
    as given, so that the same upload is loaded once for the whole server."""
    digest = hashlib.sha256(repr(sorted(options.items())).encode("utf-8"))
    for role in sorted(files):
        name, data = files[role]
        digest.update(f"{role}\x1f{name}\x1f".encode())
        digest.update(hashlib.sha256(data).digest())
    return digest.hexdigest()[:16]


def upload_spec(digest: str, files: dict[str, tuple[str, bytes]], **options) -> ModelSpec:
    """The :class:`ModelSpec` of an upload: its files under ``uploads/<digest>/``, the
    options parsed as the command line parses them, never trusted with code, and named
    after the uploaded model file.

    Args:
        digest: from :func:`upload_digest`.
        files: role (``"cfg"`` and ``"weights"``, or ``"keras"``) -> (file name, bytes).
        **options: ``classes``, ``anchors``, ``anchor_masks``, ``input_size``,
            ``letterbox`` as :meth:`ModelSpec.from_options` takes them.

    Raises:
        ModelFileError: an option that cannot be parsed (the message says why).
    """
    folder = uploads_dir() / digest
    paths = {role: folder / safe_file_name(role, *file) for role, file in files.items()}
    main = "cfg" if "cfg" in paths else "keras"
    return ModelSpec.from_options(
        paths[main],
        weights=paths.get("weights"),
        trust_model_code=False,
        name=files[main][0],
        **options,
    )


def _prune_uploads(keep: Path) -> None:
    """Remove leftover upload folders (an interrupted load) older than
    :data:`UPLOAD_FOLDER_TTL_S`, and the oldest beyond :data:`MAX_UPLOAD_FOLDERS`."""
    root = uploads_dir()
    if not root.is_dir():
        return
    folders = []
    for path in root.iterdir():
        try:  # another session's load may remove its own folder meanwhile
            if path.is_dir() and path != keep:
                folders.append((path.stat().st_mtime, path))
        except OSError:
            continue
    folders.sort(reverse=True)
    now = time.time()
    for k, (mtime, folder) in enumerate(folders):
        if k >= MAX_UPLOAD_FOLDERS - 1 or now - mtime > UPLOAD_FOLDER_TTL_S:
            shutil.rmtree(folder, ignore_errors=True)


@st.cache_resource(max_entries=4, show_spinner="Loading your model…")
def uploaded_explainer(
    digest: str, _spec: ModelSpec | None = None, _blobs: dict[str, bytes] | None = None
) -> Explainer:
    """The explainer of an uploaded model, built once per digest (file contents and
    options) and shared like the zoo's. Darknet models are also cached on disk.

    The files (``_blobs``, by role) are written where ``_spec`` says (under
    ``uploads/<digest>/``), the spec is loaded (:meth:`ModelSpec.load`), and the folder
    is removed. Called with the digest alone, it returns the model if it is in memory
    and raises YolocamError otherwise. Python code in a model is never trusted here.
    """
    if _spec is None or _blobs is None:
        raise YolocamError(
            "this uploaded model is no longer loaded; load it again under 'Your model'"
        )
    if _spec.trust_model_code:
        raise YolocamError("uploaded models are never trusted with code")
    folder = Path(_spec.source).parent
    with heavy("loading your model"):
        _prune_uploads(keep=folder)
        try:
            paths = {"cfg": _spec.source, "keras": _spec.source, "weights": _spec.weights}
            folder.mkdir(parents=True, exist_ok=True)
            for role, data in _blobs.items():
                Path(paths[role]).write_bytes(data)
            explainer = Explainer(_spec.load())
            # One forward pass now, so that a model that cannot run fails here, readably.
            explainer.forward(np.full((64, 64, 3), 128, np.uint8))
        finally:
            shutil.rmtree(folder, ignore_errors=True)
    return explainer


# -- photos ---------------------------------------------------------------------------


#: Photos fetched into the project's ignored ``.cache/`` (none is in the repository):
#: glob patterns, in menu order. ``.cache/samples/`` holds what
#: ``scripts/fetch-samples.sh`` fetches (public-domain photos from Debian packages);
#: ``.cache/darknet/`` what ``scripts/test-deps.sh`` unpacks (Debian's ``darknet``).
CACHED_SAMPLES = (
    ".cache/samples/*.jpg",
    ".cache/samples/*.png",
    ".cache/darknet/usr/share/darknet/data/*.jpg",
)
#: At most this many sample photos, each at most this many bytes.
MAX_SAMPLES = 24
MAX_SAMPLE_BYTES = 8 * MB


@st.cache_data(show_spinner=False)
def samples() -> dict[str, bytes]:
    """Sample photos, name -> bytes: the default model's package's (``bus.jpg``,
    ``zidane.jpg``), then photos fetched into the ignored cache, when present
    (:data:`CACHED_SAMPLES`). No photo is kept in the repository."""
    photos = {name: path.read_bytes() for name, path in sample_images().items()}
    for pattern in CACHED_SAMPLES:
        for path in sorted(ROOT.glob(pattern)):
            if len(photos) >= MAX_SAMPLES:
                return photos
            if path.is_file() and path.stat().st_size <= MAX_SAMPLE_BYTES:
                photos.setdefault(path.name, path.read_bytes())
    return photos


@st.cache_data(show_spinner=False)
def styles() -> str:
    """The app's style sheet (``assets/styles.css``) as a ``<style>`` element."""
    return f"<style>{(ASSETS / 'styles.css').read_text(encoding='utf-8')}</style>"


def image_key(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()[:32]


# The app works on a copy whose longer side is at most this (the network sees 416 px
# anyway); it keeps heatmaps, caches and browser payloads small.
DISPLAY_MAX_SIDE = 1280


@st.cache_data(max_entries=16, show_spinner=False)
def decode_image(key: str, _data: bytes) -> tuple[np.ndarray, tuple[int, int]]:
    """The image for display, (H, W, 3) uint8 RGB, and its original (height, width).

    Raises ImageError for anything that is not a usable image.
    """
    image = load_image(_data)
    original = image.shape[:2]
    return render.shrink(image, DISPLAY_MAX_SIDE), original


# -- detection and explanations -------------------------------------------------------


@st.cache_data(max_entries=64, show_spinner=False)
def detect(
    model_name: str,
    key: str,
    _image: np.ndarray,
    score: float,
    iou: float,
    max_detections: int = DEFAULT_MAX_DETECTIONS,
) -> Detections:
    """At most ``max_detections`` detections (``.note()`` says if more were found)."""
    explainer = get_explainer(model_name)
    with heavy("detecting"):
        return explainer.detect(explainer.forward(_image), score, iou, max_detections)


#: A progress callback, ``progress(done, total)``, for slow (black-box) methods.
Progress = Callable[[int, int], None]
#: A method's options in the app, hashable (part of the cache keys): D-RISE's
#: ``(("masks", N), ("seed", S))``, none for the others (see ``yolocam_app.methods``).
MethodOptions = tuple[tuple[str, int], ...]
#: Black-box methods (D-RISE: one forward pass per mask, seconds to minutes) running
#: at once on the whole server: one, so that the other heavy slot stays free for the
#: quick work of every other session.
SLOW_SLOTS = 1
_SLOW = threading.BoundedSemaphore(SLOW_SLOTS)


@contextlib.contextmanager
def slow(what: str = "this", check: Callable[[int, int], None] | None = None) -> Iterator[None]:
    """Hold the server's one slot for black-box work (then a heavy slot, :func:`heavy`);
    ``check`` as :func:`_held`'s.

    Raises:
        YolocamError: no slot within :data:`HEAVY_WAIT_S` seconds.
    """
    busy = (
        f"another session is computing a slow (black-box) method and {what} could not "
        f"start within {HEAVY_WAIT_S:.0f} s; try again in a minute, or use fewer masks"
    )
    with _held(_SLOW, busy, check), heavy(what, check):
        yield


def work_slot(method: str, what: str, progress: Progress | None = None):
    """The slot a computation of ``method`` holds: :func:`slow` for black-box methods,
    else :func:`heavy`; while it waits, ``progress(0, 0)`` may give up (it raises)."""
    return slow(what, progress) if is_black_box(method) else heavy(what, progress)


def _explain_many(
    explainer: Explainer, image, targets, method, options, scales, layers, norm, progress
):
    """``explain_many`` of all targets in one call, each compacted (grid maps only;
    no full-size heatmap is made).

    ``progress`` reaches the library's ``explain_many`` (slow methods such as D-RISE
    report masks done of all masks); ``options`` configure the method (D-RISE's masks
    and seed).
    """
    from yolocam_app.methods import instance

    explained = explainer.explain_many(
        explainer.forward(image),
        targets,
        method=instance(method, options),
        scales=list(scales),
        layer=dict(layers) or None,
        norm=norm,
        progress=progress,
    )
    return [e.compact() for e in explained]


def _only_scales(explanation: Explanation, scales: tuple[int, ...]) -> Explanation:
    """``explanation`` with the maps of ``scales`` only (a compact one: its heatmaps,
    and so their normalisation over the scales shown, are made afterwards)."""
    if tuple(m.scale for m in explanation.maps) == tuple(scales):
        return explanation
    maps = {m.scale: m for m in explanation.maps}
    return dataclasses.replace(explanation, maps=tuple(maps[s] for s in scales))


@st.cache_data(max_entries=48, show_spinner=False)
def explain_compact(
    model_name: str,
    key: str,
    _image: np.ndarray,
    score: float,
    iou: float,
    max_detections: int,
    target: TargetSpec,
    method: str,
    scales: tuple[int, ...],
    norm: str,
    layers: tuple[tuple[int, str], ...] = (),
    batch: bool = True,
    _progress: Progress | None = None,
    options: MethodOptions = (),
) -> Explanation:
    """One target's explanation, compact (grid maps only: a few kB per entry).

    With ``batch``, a detection among the first :data:`MAX_BATCH` comes from
    :func:`explain_detections`, which explains them all at once, so that switching
    between them is instant. A black-box method (D-RISE) always takes that path (its
    masked forward passes serve every detection at once) and is computed at every
    scale (its masks serve every head), so that another detection or scale is a cache
    hit; it takes no expert layers.
    """
    black_box = is_black_box(method)
    every_scale = tuple(range(len(get_explainer(model_name).detector.heads)))
    computed = every_scale if black_box else scales
    layers = () if black_box else layers
    detections = detect(model_name, key, _image, score, iou, max_detections)
    if (batch or black_box) and target.kind == "detection" and target.index < MAX_BATCH:
        every = explain_detections(
            model_name,
            key,
            _image,
            score,
            iou,
            max_detections,
            method,
            computed,
            norm,
            layers,
            _progress,
            target.attribute,
            options,
        )
        return _only_scales(every[target.index], scales)
    explainer = get_explainer(model_name)
    built = target.build(detections)
    with work_slot(method, "explaining", _progress):
        (result,) = _explain_many(
            explainer, _image, [built], method, options, computed, layers, norm, _progress
        )
    return _only_scales(result, scales)


@st.cache_data(max_entries=6, show_spinner=False)
def explain_detections(
    model_name: str,
    key: str,
    _image: np.ndarray,
    score: float,
    iou: float,
    max_detections: int,
    method: str,
    scales: tuple[int, ...],
    norm: str,
    layers: tuple[tuple[int, str], ...] = (),
    _progress: Progress | None = None,
    attribute: str = "score",
    options: MethodOptions = (),
) -> list[Explanation]:
    """The first :data:`MAX_BATCH` detections explained from one forward pass, compact
    (``st.cache_data`` copies its value on every hit: a few kB each; D-RISE's maps,
    at a quarter of the network input's resolution, a few tens of kB)."""
    detections = detect(model_name, key, _image, score, iou, max_detections)
    count = min(len(detections), MAX_BATCH)
    targets = [TargetSpec("detection", k, attribute).build(detections) for k in range(count)]
    explainer = get_explainer(model_name)  # outside the slot: loading takes its own
    with work_slot(method, "explaining the detections", _progress):
        return _explain_many(
            explainer, _image, targets, method, options, scales, layers, norm, _progress
        )


def explain(
    model_name: str,
    key: str,
    image: np.ndarray,
    score: float,
    iou: float,
    max_detections: int,
    target: TargetSpec,
    method: str,
    scales: tuple[int, ...],
    norm: str,
    layers: tuple[tuple[int, str], ...] = (),
    batch: bool = True,
    progress: Progress | None = None,
    options: MethodOptions = (),
) -> Explanation:
    """One target's explanation with its full-size heatmaps (rebuilt from the cached
    compact one: a millisecond or two)."""
    compact = explain_compact(
        model_name,
        key,
        image,
        score,
        iou,
        max_detections,
        target,
        method,
        tuple(scales),
        norm,
        tuple(layers),
        batch,
        progress,
        tuple(options),
    )
    return get_explainer(model_name).with_heatmaps(compact)
