"""Exceptions a user can meet. Each message says what was wrong and what to do."""

from __future__ import annotations


class YolocamError(Exception):
    """Base class of every error yolocam raises on purpose."""


class ConfigError(YolocamError):
    """A Darknet cfg file that we cannot parse or do not support."""


class WeightsError(YolocamError):
    """A weights file that does not fit its model."""


class ImageError(YolocamError):
    """A file or byte string that is not a usable image."""


class OutputError(YolocamError):
    """An output folder that cannot be used (a file, under a file, not writable)."""


class ModelNotFoundError(YolocamError):
    """A named model, or the package that ships its files, is not available."""


class ModelFileError(YolocamError):
    """A model file (Keras ``.h5``/``.keras``, class names, anchors) that we cannot use."""


class UnsafeModelError(ModelFileError):
    """A model file that would run Python code when loaded (Lambda layers, custom code).

    Refused unless the caller trusts the file explicitly (``trust_model_code=True``,
    the CLI's ``--trust-model-code``; never possible from the web app).
    """


def for_option(error: Exception, option: str, subject: str = "target") -> YolocamError:
    """``error`` said about the command-line option that caused it.

    A message that starts with ``subject`` (``"target 'box:1': use …"``) starts with
    ``option`` instead (``"--target 'box:1': use …"``); any other gets ``"<option>: "``.
    """
    text = str(error)
    if text.startswith(subject + " "):
        return YolocamError(option + text[len(subject) :])
    return YolocamError(f"{option}: {text}")
