"""Everything the app caches. Models are shared by every session (``cache_resource``,
keyed by a model name); results are cached per image hash and parameters
(``cache_data``). Drawing (colour map, opacity) is never cached here, so changing
it never recomputes gradients."""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass

import cv2
import numpy as np
import streamlit as st

from yolocam_core.detector import Detection
from yolocam_core.errors import YolocamError
from yolocam_core.explainer import Explainer, Explanation
from yolocam_core.images import load_image
from yolocam_core.models import load_detector, sample_images
from yolocam_core.targets import ClassTarget, DetectionTarget, SeedTarget, Target


@dataclass(frozen=True)
class TargetSpec:
    """A hashable description of a target: ("detection", k) / ("class", id) / ("seed",)."""

    kind: str
    index: int = -1

    def build(self, detections: list[Detection]) -> Target:
        if self.kind == "detection":
            return DetectionTarget(detections[self.index])
        if self.kind == "class":
            return ClassTarget(self.index)
        return SeedTarget()


def get_explainer(model_name: str) -> Explainer:
    """One explainer per model for the whole server; read-only and thread-safe.

    ``model_name`` is a zoo name, or ``"upload:<digest>"`` for a model loaded in the
    sidebar's "Your model" section (see :func:`uploaded_explainer`).
    """
    if model_name.startswith(UPLOAD_PREFIX):
        return uploaded_explainer(model_name.removeprefix(UPLOAD_PREFIX))
    return zoo_explainer(model_name)


@st.cache_resource(show_spinner="Loading the model (converted once, then cached on disk)…")
def zoo_explainer(model_name: str) -> Explainer:
    """The explainer of a named (zoo) model."""
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
    from pathlib import Path

    request = _request
    with tempfile.TemporaryDirectory(prefix="yolocam-upload-") as tmp:
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


@st.cache_data(show_spinner=False)
def samples() -> dict[str, bytes]:
    """Sample photos shipped with the default model's package, name -> bytes."""
    return {name: path.read_bytes() for name, path in sample_images().items()}


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


@st.cache_data(max_entries=64, show_spinner=False)
def detect(model_name: str, key: str, _image: np.ndarray, score: float, iou: float):
    explainer = get_explainer(model_name)
    return explainer.detect(explainer.forward(_image), score, iou)


@st.cache_data(max_entries=24, show_spinner=False)
def explain(
    model_name: str,
    key: str,
    _image: np.ndarray,
    score: float,
    iou: float,
    target: TargetSpec,
    method: str,
    scales: tuple[int, ...],
    norm: str,
    layers: tuple[tuple[int, str], ...] = (),
) -> Explanation:
    """One target's explanation. Detections come from :func:`explain_detections`, which
    explains all of them in one pass, so that switching between them is instant."""
    detections = detect(model_name, key, _image, score, iou)
    if target.kind == "detection" and target.index < MAX_BATCH:
        every = explain_detections(
            model_name, key, _image, score, iou, method, scales, norm, layers
        )
        return get_explainer(model_name).with_heatmaps(every[target.index])
    return get_explainer(model_name).explain(
        _image,
        target.build(detections),
        method=method,
        scales=list(scales),
        layer=dict(layers) or None,
        norm=norm,
    )


# Explaining detections in one batch pays off up to this many; more go one by one.
MAX_BATCH = 30


@st.cache_data(max_entries=3, show_spinner=False)
def explain_detections(
    model_name: str,
    key: str,
    _image: np.ndarray,
    score: float,
    iou: float,
    method: str,
    scales: tuple[int, ...],
    norm: str,
    layers: tuple[tuple[int, str], ...] = (),
) -> list[Explanation]:
    """Every detection explained from one forward pass (``Explainer.explain_many``).

    Kept compact (grid maps only, see ``Explanation.compact``): ``st.cache_data`` copies
    its value on every hit, and full-size heatmaps of every detection would be tens of
    MB to copy on each change of target.
    """
    detections = detect(model_name, key, _image, score, iou)
    count = min(len(detections), MAX_BATCH)
    targets = [TargetSpec("detection", k).build(detections) for k in range(count)]
    every = get_explainer(model_name).explain_many(
        _image, targets, method=method, scales=list(scales), layer=dict(layers) or None, norm=norm
    )
    return [explanation.compact() for explanation in every]
