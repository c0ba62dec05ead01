"""Model files given by path: which kind a path is, and the checks every file passes
before it is read (missing, a folder, a special file, a symbolic-link loop).

A ``--model`` value is a named model (see :mod:`yolocam_core.models.zoo`) or a path:
a Darknet ``.cfg`` (with its ``.weights``) or a Keras ``.keras`` / ``.h5`` file.
"""

from __future__ import annotations

import errno
import os
from pathlib import Path

from yolocam_core.errors import ModelFileError, ModelNotFoundError, YolocamError
from yolocam_core.files import mode_problem, os_problem, shown

DARKNET_SUFFIXES = (".cfg",)
KERAS_SUFFIXES = (".keras", ".h5", ".hdf5")
MODEL_SUFFIXES = DARKNET_SUFFIXES + KERAS_SUFFIXES


def looks_like_path(name: str | os.PathLike) -> bool:
    """Whether ``--model`` names a file rather than a named model."""
    text = os.fspath(name)
    return (
        Path(text).suffix.lower() in (*MODEL_SUFFIXES, ".weights")
        or os.sep in text
        or "/" in text
        or Path(text).is_file()
        or Path(text).is_symlink()
    )


def check_regular_file(path: str | os.PathLike, role: str = "model file") -> int:
    """Check that ``path`` is a regular file (after symbolic links) and return its size.

    Nothing is opened: a named pipe would block a read forever, a device never ends.
    The problems are those of :func:`yolocam_core.files.file_problem`, said of a model file.

    Args:
        path: the file.
        role: what the file is for, used in messages (``"model file"``,
            ``"weights file"``, ``"class names file"``, …).

    Returns:
        The file's size in bytes.

    Raises:
        ModelNotFoundError: the path does not exist (or is a dangling link).
        ModelFileError: a folder, a special file, a symbolic-link loop, or not readable.
    """
    try:
        info = os.stat(path)
    except OSError as exc:
        error = ModelNotFoundError if exc.errno in (errno.ENOENT, errno.ENOTDIR) else ModelFileError
        raise error(f"{role} {shown(path)}: {os_problem(exc, path)}") from None
    problem = mode_problem(info.st_mode, "a file")
    if problem is not None:
        raise ModelFileError(f"{role} {shown(path)}: {problem}")
    if not os.access(path, os.R_OK):
        raise ModelFileError(f"cannot read {role} {shown(path)}: permission denied")
    return info.st_size


def read_small_file(
    path: str | os.PathLike,
    role: str,
    limit: int,
    hint: str = "",
    error: type[YolocamError] = ModelFileError,
) -> bytes:
    """The bytes of a small file (a cfg, a names file), at most ``limit`` of them.

    The size is checked before reading and the read is capped (the file may grow).

    Args:
        path: the file.
        role: what it is, for messages (``"cfg file"``).
        limit: the most bytes it may have.
        hint: said after the size when it is too large.
        error: the error class raised for a file that is too large or unreadable.

    Raises:
        ModelNotFoundError, ModelFileError: see :func:`check_regular_file`.
        error: larger than ``limit`` or unreadable.
    """
    path = Path(path)
    size = check_regular_file(path, role)
    try:
        with open(path, "rb") as handle:
            data = handle.read(limit + 1)
    except OSError as exc:
        raise error(f"cannot read {role} {path}: {exc.strerror or exc}") from None
    if max(size, len(data)) > limit:
        raise error(
            f"{role} {path.name} is {max(size, len(data)):,} bytes; it must be under "
            f"{limit:,} bytes{hint}"
        )
    return data


def check_model_path(path: str | os.PathLike) -> Path:
    """A model path checked before anything is read: a ``.cfg`` or a Keras file.

    Raises:
        ModelFileError: a ``.weights`` file given as the model (the cfg is needed), a
            SavedModel folder, a special file, a link loop, or an unknown suffix of a
            non-file.
        ModelNotFoundError: the file does not exist.
    """
    path = Path(path)
    if path.suffix.lower() == ".weights":
        raise ModelFileError(
            f"{path.name} is a Darknet weights file: give its .cfg as the model and the "
            "weights with --weights (or put them beside the cfg with the same name)"
        )
    if path.is_dir():
        raise ModelFileError(
            f"{path} is a folder; TensorFlow SavedModel folders are not supported: save the "
            "model as .keras or .h5 (model.save('model.keras'))"
        )
    check_regular_file(path)
    return path
