"""CAM methods: one module per method over :class:`CamMethod`, and their registry.

Example:
    >>> from yolocam_core.cams import get_method, method_names
    >>> method_names()
    ['seed', 'gradcam', 'gradcam++', 'hirescam', 'layercam', 'eigencam']
    >>> get_method("gradcam++").title
    'Grad-CAM++'
"""

from __future__ import annotations

from yolocam_core.cams.base import CamMethod
from yolocam_core.cams.eigencam import EigenCAM
from yolocam_core.cams.gradcam import GradCAM
from yolocam_core.cams.gradcampp import GradCAMPlusPlus
from yolocam_core.cams.hirescam import HiResCAM
from yolocam_core.cams.layercam import LayerCAM
from yolocam_core.cams.seed import SeedCAM

#: Every method by its registry key, in the order menus list them.
METHODS: dict[str, type[CamMethod]] = {
    cls.name: cls for cls in (SeedCAM, GradCAM, GradCAMPlusPlus, HiResCAM, LayerCAM, EigenCAM)
}


def method_names() -> list[str]:
    """Registry keys, in menu order: seed, gradcam, gradcam++, hirescam, layercam, eigencam."""
    return list(METHODS)


def get_method(name: str) -> CamMethod:
    """A new instance of the method registered as ``name``.

    Args:
        name: a registry key, exactly as :func:`method_names` spells it.

    Returns:
        The method instance (stateless; safe to share across threads).

    Raises:
        ValueError: ``name`` is not a registered method; the message lists the valid
            names.
    """
    try:
        cls = METHODS[name]
    except (KeyError, TypeError):
        raise ValueError(
            f"unknown CAM method {name!r}; choose one of: {', '.join(METHODS)}"
        ) from None
    return cls()


__all__ = [
    "METHODS",
    "CamMethod",
    "EigenCAM",
    "GradCAM",
    "GradCAMPlusPlus",
    "HiResCAM",
    "LayerCAM",
    "SeedCAM",
    "get_method",
    "method_names",
]
