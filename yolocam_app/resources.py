"""Everything the app caches, and the limits that keep one request bounded.

Models are shared by every session (``cache_resource``, keyed by a model name);
results are cached per image hash and parameters (``cache_data``). Drawing (colour
map, opacity) is never cached here, so changing it never recomputes gradients.

Memory is bounded whatever a model outputs:

- at most ``max_detections`` detections per image (300 by default; NMS stops early,
  see :meth:`Detector.postprocess`), so tables, menus and drawings stay small;
- cached explanations hold only the small grid maps (``Explanation.compact``); the
  full-size heatmaps of the one explanation shown are rebuilt per run;
- detections are explained a few at a time (:data:`EXPLAIN_CHUNK`), so the full-size
  heatmaps ``explain_many`` builds on the way exist for a few at once, not for all;
- heavy work (forward passes, gradients, model loading) runs at most
  :data:`HEAVY_SLOTS` at a time across the whole server (:func:`heavy`): a burst of
  sessions waits its turn instead of multiplying the memory in use.
"""

from __future__ import annotations

import contextlib
import hashlib
import inspect
import re
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import streamlit as st

from yolocam_core.detector import DEFAULT_MAX_DETECTIONS, Detections
from yolocam_core.errors import YolocamError
from yolocam_core.explainer import Explainer, Explanation
from yolocam_core.images import load_image
from yolocam_core.models import load_detector, sample_images
from yolocam_core.targets import TargetSpec

ROOT = Path(__file__).resolve().parents[1]
#: The app's static files: logo, favicon, styles, redistributable sample photos.
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
#: ... in chunks of this many: explain_many builds each target's full-size heatmaps,
#: which are dropped (compacted) chunk by chunk.
EXPLAIN_CHUNK = 4


@contextlib.contextmanager
def heavy(what: str = "this") -> Iterator[None]:
    """Hold one of the server's :data:`HEAVY_SLOTS` while computing.

    Raises:
        YolocamError: no slot within :data:`HEAVY_WAIT_S` seconds.
    """
    if not _HEAVY.acquire(timeout=HEAVY_WAIT_S):
        raise YolocamError(
            f"the server is busy with other requests and could not start {what} within "
            f"{HEAVY_WAIT_S:.0f} s; try again in a minute"
        )
    try:
        yield
    finally:
        _HEAVY.release()


@st.cache_resource(show_spinner="Loading the model (converted once, then cached on disk)…")
def zoo_explainer(model_name: str) -> Explainer:
    """The explainer of a named (zoo) model."""
    with heavy("loading the model"):
        return Explainer(load_detector(model_name))


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


@dataclass(frozen=True)
class UploadRequest:
    """What the sidebar asks to load (hashable; the files' bytes travel apart).

    Attributes:
        kind: ``"darknet"`` (files ``cfg`` and ``weights``) or ``"keras"`` (file
            ``keras``: a .h5 or .keras).
        file_names: role -> the uploaded file's name, e.g. ``(("keras", "m.h5"),)``.
        classes: ``"auto"``, ``"coco"``, ``"voc"``, or the names from a file.
        anchors: as typed (empty = the model's or the projects' defaults).
        anchor_masks: as typed (Keras models; empty = default).
        input_size: None = the model's own.
        letterbox: None = the model's default.
    """

    kind: str
    file_names: tuple[tuple[str, str], ...]
    classes: str | tuple[str, ...] = "auto"
    anchors: str = ""
    anchor_masks: str = ""
    input_size: int | None = None
    letterbox: bool | None = None

    @property
    def label(self) -> str:
        names = dict(self.file_names)
        return names.get("keras") or names.get("cfg") or "uploaded model"


def upload_digest(request: UploadRequest, blobs: dict[str, bytes]) -> str:
    """16 hex digits of sha256 over the files' contents and the options."""
    digest = hashlib.sha256(repr(request).encode("utf-8"))
    for role in sorted(blobs):
        digest.update(role.encode("ascii"))
        digest.update(hashlib.sha256(blobs[role]).digest())
    return digest.hexdigest()[:16]


@st.cache_resource(max_entries=4, show_spinner="Loading your model…")
def uploaded_explainer(
    digest: str, _request: UploadRequest | None = None, _blobs: dict[str, bytes] | None = None
) -> Explainer:
    """The explainer of an uploaded model, built once per digest (file contents and
    options) and shared like the zoo's. Darknet models are also cached on disk.

    Called with the digest alone, it returns the model if it is in memory and raises
    YolocamError otherwise. Python code in a model is never trusted here.
    """
    if _request is None or _blobs is None:
        raise YolocamError(
            "this uploaded model is no longer loaded; load it again under 'Your model'"
        )
    import tempfile

    request = _request
    with heavy("loading your model"), tempfile.TemporaryDirectory(prefix="yolocam-upload-") as tmp:
        folder = Path(tmp)
        paths = {}
        for role, data in _blobs.items():
            # The user's file name (made safe), so that messages name their file.
            original = Path(dict(request.file_names).get(role, role)).name
            stem = re.sub(r"[^A-Za-z0-9_.-]", "_", Path(original).stem)[:80] or role
            suffix = Path(original).suffix.lower() if role == "keras" else f".{role}"
            if role == "keras" and suffix not in (".h5", ".hdf5", ".keras"):
                suffix = ".h5" if data[:8] == b"\x89HDF\r\n\x1a\n" else ".keras"
            (folder / role).mkdir()
            paths[role] = folder / role / f"{stem}{suffix}"
            paths[role].write_bytes(data)
        classes = request.classes
        if classes == "auto":
            classes = None
        detector = load_detector(
            paths["cfg"] if request.kind == "darknet" else paths["keras"],
            weights=paths.get("weights"),
            classes=list(classes) if isinstance(classes, tuple) else classes,
            anchors=request.anchors or None,
            anchor_masks=request.anchor_masks or None,
            input_size=request.input_size,
            letterbox=request.letterbox,
            trust_model_code=False,
        )
        explainer = Explainer(detector.replace(name=request.label))
        # One forward pass now, so that a model that cannot run fails here, readably.
        explainer.forward(np.full((64, 64, 3), 128, np.uint8))
    return explainer


# -- photos ---------------------------------------------------------------------------


@st.cache_data(show_spinner=False)
def samples() -> dict[str, bytes]:
    """Sample photos, name -> bytes: the default model's package's, then the app's own
    (``assets/samples``, public domain / CC0, see its LICENSE.md)."""
    photos = {name: path.read_bytes() for name, path in sample_images().items()}
    for path in sorted((ASSETS / "samples").glob("*.jpg")):
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
    scale = DISPLAY_MAX_SIDE / max(original)
    if scale < 1:
        size = (round(original[1] * scale), round(original[0] * scale))
        image = cv2.resize(image, size, interpolation=cv2.INTER_AREA)
    return image, original


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


def _explain_many(explainer: Explainer, image, targets, method, scales, layers, norm, progress):
    """``explain_many`` in chunks of :data:`EXPLAIN_CHUNK`, each compacted at once.

    ``progress`` is passed on when the library's ``explain_many`` takes it (slow
    methods such as D-RISE report masks done of all masks).
    """
    fwd = explainer.forward(image)
    kwargs = {}
    if progress is not None and "progress" in inspect.signature(explainer.explain_many).parameters:
        kwargs["progress"] = progress
    out: list[Explanation] = []
    chunk = len(targets) if _shares_masks(method) else EXPLAIN_CHUNK
    for start in range(0, len(targets), max(1, chunk)):
        part = explainer.explain_many(
            fwd,
            targets[start : start + chunk],
            method=method,
            scales=list(scales),
            layer=dict(layers) or None,
            norm=norm,
            **kwargs,
        )
        out.extend(e.compact() for e in part)
    return out


def _shares_masks(method: str) -> bool:
    """Whether a method works from masked images (D-RISE: all targets share the masks,
    so they are explained in one call, not in chunks)."""
    from yolocam_core.cams import get_method

    return bool(getattr(get_method(method), "black_box", False))


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
) -> Explanation:
    """One target's explanation, compact (grid maps only: a few kB per entry).

    With ``batch``, a detection among the first :data:`MAX_BATCH` comes from
    :func:`explain_detections`, which explains them all at once, so that switching
    between them is instant.
    """
    detections = detect(model_name, key, _image, score, iou, max_detections)
    if batch and target.kind == "detection" and target.index < MAX_BATCH:
        every = explain_detections(
            model_name,
            key,
            _image,
            score,
            iou,
            max_detections,
            method,
            scales,
            norm,
            layers,
            _progress,
        )
        return every[target.index]
    explainer = get_explainer(model_name)
    built = target.build(detections)
    with heavy("explaining"):
        (result,) = _explain_many(
            explainer, _image, [built], method, scales, layers, norm, _progress
        )
    return result


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
) -> list[Explanation]:
    """The first :data:`MAX_BATCH` detections explained from one forward pass, compact
    (``st.cache_data`` copies its value on every hit: a few kB each)."""
    detections = detect(model_name, key, _image, score, iou, max_detections)
    count = min(len(detections), MAX_BATCH)
    targets = [TargetSpec("detection", k).build(detections) for k in range(count)]
    explainer = get_explainer(model_name)  # outside the slot: loading takes its own
    with heavy("explaining the detections"):
        return _explain_many(explainer, _image, targets, method, scales, layers, norm, _progress)


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
    )
    return get_explainer(model_name).with_heatmaps(compact)
