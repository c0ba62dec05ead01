"""The input folder's images and the output folder's layout and markers."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

from yolocam_core.batch.settings import (
    DONE_MARKER,
    IMAGE_EXTENSIONS,
    IMAGES_SUBDIR,
    ImageItem,
)
from yolocam_core.errors import YolocamError
from yolocam_core.files import safe_name


def list_images(input_dir: str | Path, exclude: str | Path | None = None) -> list[ImageItem]:
    """Image files under ``input_dir`` (recursively), sorted by relative path.

    Files are chosen by extension (:data:`IMAGE_EXTENSIONS`, any case), so a text file
    named ``.jpg`` is listed (and will fail, recorded); hidden files and folders and
    anything under ``exclude`` (the output folder) are skipped.

    Raises:
        YolocamError: the folder does not exist, is not a folder or holds no images.
    """
    root = Path(input_dir)
    if not root.exists():
        raise YolocamError(f"{root}: no such folder")
    if not root.is_dir():
        raise YolocamError(f"{root}: not a folder; `yolocam batch` takes a folder of images")
    excluded = Path(exclude).resolve() if exclude is not None else None
    items = []
    for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
        here = Path(dirpath)
        dirnames[:] = sorted(
            d
            for d in dirnames
            if not d.startswith(".") and (excluded is None or (here / d).resolve() != excluded)
        )
        for name in filenames:
            if name.startswith(".") or not name.lower().endswith(IMAGE_EXTENSIONS):
                continue
            path = here / name
            items.append(ImageItem(str(path), path.relative_to(root).as_posix()))
    items.sort(key=lambda item: item.rel)
    if not items:
        raise YolocamError(
            f"{root}: no image files found (looked for {', '.join(IMAGE_EXTENSIONS)})"
        )
    return items


def image_dir(out_dir: str | Path, rel: str) -> Path:
    """The output folder of one image: a readable name plus a hash of its relative path
    (so ``a/b.jpg`` and ``a_b.jpg`` never collide)."""
    readable = safe_name(rel.replace("/", "__"))[:80]
    digest = hashlib.sha1(os.fsencode(rel)).hexdigest()[:8]
    return Path(out_dir) / IMAGES_SUBDIR / f"{readable}-{digest}"


def write_json_atomic(path: Path, data: Any, indent: int | None = None) -> None:
    """Write JSON to a temporary file in the same folder, fsync it, rename it into place."""
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    with open(tmp, "w", encoding="utf-8") as handle:
        json.dump(data, handle, ensure_ascii=False, indent=indent)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, path)


def read_marker(folder: Path, fingerprint: str, source: dict | None) -> dict | None:
    """The image's ``done.json`` if it is valid for these settings and this source file."""
    try:
        marker = json.loads((folder / DONE_MARKER).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if (
        not isinstance(marker, dict)
        or marker.get("fingerprint") != fingerprint
        or source is None
        or marker.get("source") != source
        or not isinstance(marker.get("rows"), list)
    ):
        return None
    return marker
