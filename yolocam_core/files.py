"""Files a user names: read inputs safely, check output folders before the work.

Only regular files are read. A named pipe (FIFO), a socket or a device would block
``open()`` or ``read()`` forever or never end, so they are refused from their
``stat`` before they are opened, and opened without blocking in case the file was
swapped in between. Every problem is one readable sentence: a symbolic-link loop is
called one, not "no such file".
"""

from __future__ import annotations

import errno
import os
import stat
import tempfile
from pathlib import Path

from yolocam_core.errors import ImageError, OutputError

#: Largest input file read, in bytes (a 64-megapixel RGBA 16-bit TIFF is 512 MiB).
MAX_FILE_BYTES = 512 * 1024 * 1024

_KINDS = (
    (stat.S_ISFIFO, "a named pipe (FIFO)"),
    (stat.S_ISSOCK, "a socket"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
)


def safe_name(text: str) -> str:
    """``text`` with anything but letters, digits and ``-_+.`` replaced by ``_``."""
    return "".join(c if c.isalnum() or c in "-_+." else "_" for c in text)


def shown(path: str | os.PathLike) -> str:
    """A path as text that can always be printed and written as UTF-8: a file name that
    is not valid UTF-8 keeps its other characters, its bad bytes become ``\\xNN``."""
    return os.fsencode(path).decode("utf-8", "backslashreplace")


def os_problem(exc: OSError, path: str | os.PathLike) -> str:
    """What an ``OSError`` on ``path`` means, in words (without the path)."""
    code = exc.errno
    if code == errno.ELOOP:
        return "a symbolic-link loop (the link leads back to itself); point it at a file"
    if code == errno.ENOENT:
        if os.path.islink(path):
            return f"a symbolic link to a missing file ({shown(os.readlink(path))})"
        return "no such file"
    if code == errno.ENOTDIR:
        return f"{shown(_file_in_the_way(Path(path)))} is a file, not a folder"
    if code in (errno.EACCES, errno.EPERM):
        return "permission denied"
    if code == errno.ENAMETOOLONG:
        return "the name is too long"
    return (exc.strerror or str(exc)).lower()


def _file_in_the_way(path: Path) -> Path:
    """The first ancestor of ``path`` that exists and is not a folder (ENOTDIR)."""
    for parent in reversed(path.parents):
        if parent.exists() and not parent.is_dir():
            return parent
    return path


def file_problem(path: str | os.PathLike, what: str = "an image file") -> str | None:
    """Why ``path`` cannot be read as an input file, or None if it is a regular file.

    Looks only at the file's ``stat`` (follows symbolic links): opens nothing.

    Args:
        path: the file.
        what: what the file should be, for the folder case ("is a folder, not <what>").
    """
    try:
        mode = os.stat(path).st_mode
    except OSError as exc:
        return os_problem(exc, path)
    return mode_problem(mode, what)


def mode_problem(mode: int, what: str = "an image file") -> str | None:
    """Why a file of this ``st_mode`` cannot be read, or None for a regular file."""
    if stat.S_ISREG(mode):
        return None
    if stat.S_ISDIR(mode):
        return f"is a folder, not {what}"
    for test, kind in _KINDS:
        if test(mode):
            return f"is {kind}, not a regular file; refused (reading it could wait forever)"
    return "is not a regular file; refused"


def check_input_file(path: str | os.PathLike) -> str:
    """``path`` as shown in messages, if it names a regular file (only its ``stat`` is
    read).

    Raises:
        ImageError: an empty path, a missing file or not a regular file; the message
            starts with the path and says which.
    """
    name = shown(path)
    if not name:
        raise ImageError("an empty path (''): name an image file")
    problem = file_problem(path)
    if problem is not None:
        raise ImageError(f"{name}: {problem}")
    return name


def read_regular_file(path: str | os.PathLike, max_bytes: int = MAX_FILE_BYTES) -> bytes:
    """The bytes of a regular file of at most ``max_bytes``.

    Raises:
        ImageError: missing, not a regular file, unreadable or too large; the message
            starts with the path and says which.
    """
    name = check_input_file(path)
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0)
    try:
        fd = os.open(path, flags)
    except OSError as exc:
        raise ImageError(f"{name}: cannot read file ({os_problem(exc, path)})") from None
    with os.fdopen(fd, "rb") as handle:
        info = os.fstat(handle.fileno())
        problem = mode_problem(info.st_mode)  # swapped since the stat above
        if problem is not None:
            raise ImageError(f"{name}: {problem}")
        if info.st_size > max_bytes:
            raise ImageError(
                f"{name}: {info.st_size:,} bytes is more than the {max_bytes:,} allowed; "
                "downscale or recompress the image first"
            )
        try:
            data = handle.read(max_bytes + 1)
        except OSError as exc:
            raise ImageError(f"{name}: cannot read file ({os_problem(exc, path)})") from None
    if len(data) > max_bytes:  # grew while read
        raise ImageError(f"{name}: more than the {max_bytes:,} bytes allowed")
    return data


def ensure_output_folder(path: str | os.PathLike, option: str = "--out") -> Path:
    """Create the output folder if needed and check that files can be written in it.

    Called before any costly work, so that a bad ``--out`` fails in a second, not after
    all the computation.

    Raises:
        OutputError: ``path`` is a file, lies under a file, or is not writable.
    """
    folder = Path(path)
    name = shown(folder)
    if not str(path):
        raise OutputError(f"{option} is empty; name a folder")
    if folder.exists() and not folder.is_dir():
        raise OutputError(f"{option} {name}: is a file, not a folder; name a folder")
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputError(
            f"{option} {name}: cannot create the folder ({os_problem(exc, folder)})"
        ) from None
    why = _write_problem(folder)
    if why:
        raise OutputError(
            f"{option} {name}: cannot write in this folder ({why}); name a folder you can write to"
        )
    return folder


def _write_problem(folder: Path, file: Path | None = None) -> str | None:
    """Why a file cannot be written in ``folder`` (a test write), or into the existing
    ``file``, in a few lower-case words; None when it can."""
    try:
        with tempfile.TemporaryFile(dir=folder, prefix=".yolocam-write-test-"):
            pass
        if file is not None and file.exists() and not os.access(file, os.W_OK):
            raise PermissionError(errno.EACCES, "permission denied")
    except OSError as exc:
        why = "permission denied" if exc.errno in (errno.EACCES, errno.EPERM) else exc.strerror
        return (why or str(exc)).lower()
    return None


def check_output_file(path: str | os.PathLike, option: str = "--output") -> Path:
    """Check that the file ``path`` can be written (its folder exists and is writable;
    the file itself, if it exists, is not a folder and is writable), before any costly
    work.

    Raises:
        OutputError: ``path`` is empty, a folder, in no folder, or cannot be written.
    """
    output = Path(path)
    name = shown(output)
    if not str(path):
        raise OutputError(f"{option} is empty; name a file")
    if output.is_dir():
        raise OutputError(f"{option} {name}: is a folder; name a file, e.g. report.html")
    if not output.parent.is_dir():
        raise OutputError(f"{option} {name}: no folder {shown(output.parent)}")
    why = _write_problem(output.parent, output)
    if why:
        raise OutputError(
            f"{option} {name}: cannot write it ({why}); name a file in a folder you can write to"
        )
    return output
