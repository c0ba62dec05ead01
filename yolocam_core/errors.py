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


class ModelNotFoundError(YolocamError):
    """A named model, or the package that ships its files, is not available."""
