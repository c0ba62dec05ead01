"""Keras model files (``.keras`` zips and ``.h5``), read with every size bounded.

Nothing here deserializes or runs anything: the architecture is read as JSON with
``zipfile`` / ``h5py``, and the sizes a file claims are checked against caps *before*
anything is inflated or read (a 1 MB zip can claim a 1 GiB ``config.json``; an
``.h5`` can hold gzip-compressed datasets). Reads are capped again in case a header
lies.
"""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

from yolocam_core.errors import ModelFileError
from yolocam_core.models.files import check_regular_file
from yolocam_core.models.options import MAX_PARAMETERS

HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"
ZIP_SIGNATURE = b"PK\x03\x04"

#: Largest architecture JSON (YOLOv3's is about 0.1 MB).
MAX_CONFIG_BYTES = 16 << 20
#: Largest ``metadata.json`` / other small entry of a ``.keras`` zip.
MAX_SMALL_ENTRY_BYTES = 1 << 20
#: Largest weights (float32 of :data:`~yolocam_core.models.options.MAX_PARAMETERS`
#: plus room for HDF5's own structures) and largest model file.
MAX_WEIGHTS_BYTES = 4 * MAX_PARAMETERS + (64 << 20)
#: Most entries in a ``.keras`` zip (Keras writes three).
MAX_ZIP_ENTRIES = 64
#: Most objects (groups and datasets) in an ``.h5`` file (YOLOv3: about 1,000).
MAX_H5_OBJECTS = 50_000
#: An entry or dataset larger than this must not inflate more than
#: :data:`MAX_INFLATION` times: trained float32 weights barely compress.
INFLATION_CHECK_BYTES = 16 << 20
MAX_INFLATION = 20


def _mib(n: int) -> str:
    return f"{n / 2**20:,.0f} MiB"


def sniff_format(path: Path) -> str:
    """``"h5"`` or ``"keras"`` from the file's first bytes; ModelFileError otherwise."""
    size = check_regular_file(path)
    if size > MAX_WEIGHTS_BYTES:
        raise ModelFileError(
            f"{path.name} is {size / 2**30:.1f} GiB; yolocam loads model files up to "
            f"{_mib(MAX_WEIGHTS_BYTES)}"
        )
    try:
        with open(path, "rb") as handle:
            head = handle.read(8)
    except OSError as exc:
        raise ModelFileError(f"cannot read model file {path}: {exc.strerror}") from None
    if head.startswith(HDF5_SIGNATURE):
        return "h5"
    if head.startswith(ZIP_SIGNATURE):
        return "keras"
    if not head:
        raise ModelFileError(f"{path.name} is empty")
    kind = "an .h5 (HDF5)" if path.suffix.lower() in (".h5", ".hdf5") else "a Keras"
    raise ModelFileError(
        f"{path.name} is not {kind} model file: its first bytes are neither HDF5's nor a "
        ".keras zip's (is it truncated, corrupted, or another format?)"
    )


def check_archive(archive: zipfile.ZipFile, name: str) -> None:
    """Refuse a ``.keras`` zip whose entries are too many, or claim too much when
    inflated, before any entry is read.

    Raises:
        ModelFileError: the entry count or an entry's size beyond the caps above, or an
            entry that would inflate more than :data:`MAX_INFLATION` times.
    """
    entries = archive.infolist()
    if len(entries) > MAX_ZIP_ENTRIES:
        raise ModelFileError(
            f"{name} holds {len(entries):,} files; a .keras model holds a few "
            f"(config.json, metadata.json, model.weights.h5), yolocam reads at most "
            f"{MAX_ZIP_ENTRIES}"
        )
    for entry in entries:
        cap = _entry_cap(entry.filename)
        if entry.file_size > cap:
            raise ModelFileError(
                f"{name}: its entry {entry.filename} inflates to {_mib(entry.file_size)}, "
                f"more than the {_mib(cap)} yolocam allows for it"
            )
        _check_inflation(name, entry.filename, entry.file_size, entry.compress_size)
    total = sum(e.file_size for e in entries)
    if total > MAX_WEIGHTS_BYTES + MAX_CONFIG_BYTES:
        raise ModelFileError(f"{name} inflates to {_mib(total)} in all; too large a model")


def _entry_cap(filename: str) -> int:
    if filename == "config.json":
        return MAX_CONFIG_BYTES
    if filename.endswith(".h5"):
        return MAX_WEIGHTS_BYTES
    return MAX_SMALL_ENTRY_BYTES


def _check_inflation(name: str, what: str, size: int, stored: int) -> None:
    if size > INFLATION_CHECK_BYTES and size > MAX_INFLATION * max(stored, 1):
        raise ModelFileError(
            f"{name}: {what} inflates from {stored:,} to {size:,} bytes "
            f"({size // max(stored, 1):,}×); model weights do not compress like that "
            "(a zip bomb?)"
        )


def read_entry(archive: zipfile.ZipFile, entry: str, cap: int, name: str) -> bytes:
    """An entry's bytes, reading at most ``cap`` (in case its header lies)."""
    with archive.open(entry) as handle:
        data = handle.read(cap + 1)
    if len(data) > cap:
        raise ModelFileError(f"{name}: its {entry} is larger than {_mib(cap)}")
    return data


def check_h5(handle, name: str) -> None:
    """Refuse an open ``h5py.File`` with too many objects, or datasets that are too
    large or too compressed, before any dataset is read (only metadata is)."""
    import h5py

    counted = 0
    total = 0

    def visit(_path, obj):
        nonlocal counted, total
        counted += 1
        if counted > MAX_H5_OBJECTS:
            return True  # stops the walk
        if isinstance(obj, h5py.Dataset):
            nbytes = int(obj.size) * obj.dtype.itemsize
            total += nbytes
            if nbytes > INFLATION_CHECK_BYTES:
                _check_inflation(name, f"dataset {obj.name}", nbytes, obj.id.get_storage_size())
        return None

    handle.visititems(visit)
    if counted > MAX_H5_OBJECTS:
        raise ModelFileError(
            f"{name} holds more than {MAX_H5_OBJECTS:,} HDF5 objects; not a YOLO model file"
        )
    if total > MAX_WEIGHTS_BYTES:
        raise ModelFileError(
            f"{name}: its weights take {_mib(total)}, more than the {_mib(MAX_WEIGHTS_BYTES)} "
            "yolocam loads"
        )


def _check_inner_h5(archive: zipfile.ZipFile, name: str) -> None:
    """:func:`check_h5` on a zip's ``model.weights.h5``: in place when stored (Keras
    stores it), else from a temporary copy (seeking in a deflated entry is slow)."""
    import shutil
    import tempfile

    import h5py

    entry = archive.getinfo("model.weights.h5")
    if entry.compress_type == zipfile.ZIP_STORED:
        with archive.open(entry) as raw, h5py.File(raw, "r") as weights:
            check_h5(weights, name)
        return
    with tempfile.TemporaryFile() as copy:
        with archive.open(entry) as raw:
            shutil.copyfileobj(raw, copy)
        copy.seek(0)
        with h5py.File(copy, "r") as weights:
            check_h5(weights, name)


def _read_keras_config(path: Path) -> str:
    try:
        with zipfile.ZipFile(path) as archive:
            check_archive(archive, path.name)
            if "config.json" not in archive.namelist():
                raise ModelFileError(
                    f"{path.name} is a zip file without config.json: not a Keras .keras model"
                )
            data = read_entry(archive, "config.json", MAX_CONFIG_BYTES, path.name)
            if "model.weights.h5" in archive.namelist():
                _check_inner_h5(archive, f"{path.name} (model.weights.h5)")
    except (zipfile.BadZipFile, EOFError, OSError) as exc:
        raise ModelFileError(
            f"{path.name} is not a readable .keras file (truncated or corrupted zip: "
            f"{str(exc).splitlines()[0] if str(exc) else type(exc).__name__})"
        ) from None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise ModelFileError(f"{path.name}: config.json is not UTF-8 text") from None


def _read_h5_config(path: Path) -> str:
    import h5py

    try:
        with h5py.File(path, "r") as handle:
            check_h5(handle, path.name)
            if "model_config" in handle.attrs:
                stored = handle.attrs.get_id("model_config").get_storage_size()
                if stored > MAX_CONFIG_BYTES:
                    raise ModelFileError(
                        f"{path.name}: its model architecture takes {_mib(stored)}, more "
                        f"than the {_mib(MAX_CONFIG_BYTES)} yolocam reads"
                    )
            raw = handle.attrs.get("model_config")
            # Keras 2 save_weights: layer_names; Keras 3 .weights.h5: layers/, vars/.
            has_weights = len(handle.keys()) > 0 or "layer_names" in handle.attrs
    except OSError as exc:
        raise ModelFileError(
            f"{path.name} is not a readable HDF5 file (truncated or corrupted?): "
            f"{str(exc).splitlines()[0]}"
        ) from None
    if raw is None:
        hint = (
            "it holds only weights (saved with save_weights)"
            if has_weights
            else "it holds no Keras model"
        )
        raise ModelFileError(
            f"{path.name} has no model architecture: {hint}. Save the whole model with "
            "model.save('model.h5') or model.save('model.keras') (keras-YOLOv3-model-set: "
            "yolo.py --dump_model)"
        )
    if isinstance(raw, bytes):
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError:
            raise ModelFileError(f"{path.name}: the model architecture is not UTF-8 text") from None
    if not isinstance(raw, str):
        raise ModelFileError(f"{path.name}: the model architecture is not text")
    return raw


def read_model_config(path: str | Path) -> tuple[str, dict]:
    """(format, architecture JSON) of a ``.keras`` or ``.h5`` file, read with h5py /
    zipfile only: nothing is deserialized and no code runs.

    Raises:
        ModelNotFoundError: the file does not exist.
        ModelFileError: unreadable, corrupted, too large (caps above), an ``.h5`` that
            holds only weights, or an architecture that is not JSON.
    """
    path = Path(path)
    fmt = sniff_format(path)
    text = _read_keras_config(path) if fmt == "keras" else _read_h5_config(path)
    if len(text) > MAX_CONFIG_BYTES:
        raise ModelFileError(f"{path.name}: its model architecture is larger than allowed")
    try:
        config = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ModelFileError(
            f"{path.name}: the model architecture is not valid JSON ({exc})"
        ) from None
    except RecursionError:
        raise ModelFileError(
            f"{path.name}: the model architecture is nested too deeply to be a model"
        ) from None
    if not isinstance(config, dict) or "class_name" not in config:
        raise ModelFileError(f"{path.name}: the model architecture is not a Keras model config")
    return fmt, config
