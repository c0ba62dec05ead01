"""The cache of converted Darknet models, under ``$XDG_CACHE_HOME/yolocam/models``
(else ``~/.cache/yolocam/models``).

One key scheme for every Darknet model, named or given by path:
``<name>-<sha256 of cfg text, weights and options>[:16]-v<converter version>``, so a
named model with options and a cfg file share one conversion path, and a change of
any input, or of the converter's code, gives a new entry (a cache is never stale).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import tempfile
import threading
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from yolocam_core.heads import HeadInfo

if TYPE_CHECKING:
    import keras

    from yolocam_core.detector import Detector
    from yolocam_core.models.darknet import DarknetModel

_PACKAGE = Path(__file__).resolve().parent.parent

#: Identifies the converter: a change to the code that builds or fills converted
#: models (or a bump of the number) gives new cache entries.
CONVERTER_VERSION = (
    "2-"
    + hashlib.sha256(
        b"".join(
            (_PACKAGE / module).read_bytes()
            for module in (
                "models/darknet/cfg.py",
                "models/darknet/sections.py",
                "models/darknet/build.py",
                "models/darknet/weights.py",
                "models/layers.py",
                "heads.py",
            )
        )
    ).hexdigest()[:8]
)

_lock = threading.Lock()


def cache_dir() -> Path:
    """``$XDG_CACHE_HOME/yolocam``, else ``~/.cache/yolocam``."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "yolocam"


def sha256_of(path: str | os.PathLike) -> str:
    """Hex sha256 of a file, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def conversion_key(name: str, cfg_text: str, weights_sha256: str, options: dict[str, Any]) -> str:
    """The cache key of a Darknet conversion.

    Args:
        name: the model's name (a named model's, or the cfg's stem); only readability.
        cfg_text: the cfg file's text, before options are applied.
        weights_sha256: hex sha256 of the weights file.
        options: the parsed options that change the converted model (anchors, input
            size), JSON-serialisable; None values are dropped.

    Returns:
        ``<name>-<16 hex digits>``.
    """
    digest = hashlib.sha256()
    digest.update(cfg_text.encode("utf-8"))
    digest.update(weights_sha256.encode("ascii"))
    canonical = {k: v for k, v in sorted(options.items()) if v is not None}
    digest.update(json.dumps(canonical, sort_keys=True).encode("utf-8"))
    slug = re.sub(r"[^A-Za-z0-9_.-]", "_", name)[:64] or "darknet"
    return f"{slug}-{digest.hexdigest()[:16]}"


def entry_dir(key: str) -> Path:
    """The folder of a cache entry."""
    return cache_dir() / "models" / f"{key}-v{CONVERTER_VERSION}"


def cached_conversion(
    key: str,
    class_names: list[str],
    name: str,
    convert: Callable[[], DarknetModel],
    use_cache: bool = True,
) -> Detector:
    """The converted model cached under ``key``, else ``convert()`` saved there.

    One thread converts at a time; a damaged cache entry is rebuilt; a read-only or
    full cache folder only costs speed.
    """
    from yolocam_core.detector import Detector

    target = entry_dir(key)
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
    import keras

    from yolocam_core.detector import Detector
    from yolocam_core.models.layers import CUSTOM_OBJECTS

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
