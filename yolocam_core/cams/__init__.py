"""CAM methods: one module per method over :class:`CamMethod`, and their registry.

Example:
    >>> from yolocam_core.cams import get_method, method_names
    >>> method_names()
    ['seed', 'gradcam', 'gradcam++', 'hirescam', 'layercam', 'eigencam', 'odam']
    >>> method_names(black_box=True)[-1]
    'drise'
    >>> get_method("gradcam++").title
    'Grad-CAM++'
    >>> get_method(DRise(masks=500, seed=1)).masks  # a configured instance passes through
    500
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

from yolocam_core.cams.base import ANSWERS, CamMethod
from yolocam_core.cams.drise import DRise
from yolocam_core.cams.eigencam import EigenCAM
from yolocam_core.cams.gradcam import GradCAM
from yolocam_core.cams.gradcampp import GradCAMPlusPlus
from yolocam_core.cams.hirescam import HiResCAM
from yolocam_core.cams.layercam import LayerCAM
from yolocam_core.cams.odam import ODAM
from yolocam_core.cams.seed import SeedCAM

if TYPE_CHECKING:
    from yolocam_core.detector import Detector

#: Every method by its registry key, in the order menus list them.
METHODS: dict[str, type[CamMethod]] = {
    cls.name: cls
    for cls in (SeedCAM, GradCAM, GradCAMPlusPlus, HiResCAM, LayerCAM, EigenCAM, ODAM, DRise)
}


def method_names(black_box: bool = False) -> list[str]:
    """Registry keys, in menu order: seed, gradcam, gradcam++, hirescam, layercam,
    eigencam, odam; with ``black_box=True`` also drise (one forward per mask: slow,
    so front ends offer it on purpose, not in "all")."""
    return [name for name, cls in METHODS.items() if black_box or not cls.black_box]


def is_black_box(method: str | CamMethod) -> bool:
    """Whether a method (a name or an instance) works from masked images, one forward
    pass per mask (D-RISE): seconds, not milliseconds; it reads no layer, and every
    target of an image comes from the same masks."""
    if isinstance(method, str):
        method = get_method(method)
    return bool(getattr(method, "black_box", False))


def check_kind(method: str | CamMethod, kind: str, attribute: str = "score") -> None:
    """Refuse ``method`` for targets of ``kind`` (``"class"`` or ``"seed"``), with the
    method's own reason, before any image is read: for these kinds the answer does not
    depend on the image or the class. A detection target is checked once it is built
    (by the explainer), since it needs a detection; ``"detection"`` passes here.

    Raises:
        YolocamError: the method cannot explain such a target (the message says what to
            use instead).
    """
    if kind == "detection":
        return
    from yolocam_core.targets import TargetSpec  # imports TensorFlow

    stand_in = TargetSpec(kind, 0 if kind == "class" else -1, attribute).build(())
    get_method(method).check_target(stand_in)


#: The method each target kind is explained with when none is named, chosen by
#: measurement (README, "Faithfulness"): ODAM for one detection (instance-specific; best
#: pointing, instance and deletion scores and agreement with D-RISE on the evaluation
#: set), Grad-CAM for a class (every instance of it), the article's for its own target.
DEFAULT_METHODS: dict[str, str] = {"detection": "odam", "class": "gradcam", "seed": "seed"}


def default_method(target_kinds: Iterable[str]) -> str:
    """The method for targets of these kinds when none is named: the kind's default
    (:data:`DEFAULT_METHODS`) when they are all of one kind, else ``"gradcam"``."""
    kinds = set(target_kinds)
    if len(kinds) == 1:
        return DEFAULT_METHODS.get(kinds.pop(), "gradcam")
    return "gradcam"


def get_method(name: str | CamMethod) -> CamMethod:
    """The method registered as ``name`` (a new instance with default options), or
    ``name`` itself when it is already a configured method instance, e.g.
    ``DRise(masks=500, seed=1)``.

    Args:
        name: a registry key, exactly as :func:`method_names` spells it, or a
            :class:`CamMethod` instance.

    Returns:
        The method instance (stateless; safe to share across threads).

    Raises:
        ValueError: ``name`` is not a registered method; the message lists the valid
            names.
    """
    if isinstance(name, CamMethod):
        return name
    try:
        cls = METHODS[name]
    except (KeyError, TypeError):
        raise ValueError(
            f"unknown CAM method {name!r}; choose one of: {', '.join(METHODS)}"
        ) from None
    return cls()


def method_layers(detector: Detector, scale: int) -> list[str]:
    """Every layer a registered method explains at by default for head ``scale``
    (the explainer's forward pass captures them)."""
    names: list[str] = []
    for cls in METHODS.values():
        if cls.black_box:
            continue
        try:
            layers = cls().layers(detector, scale)
        except Exception:
            continue
        names += [n for n in layers if n not in names]
    return names


__all__ = [
    "ANSWERS",
    "DEFAULT_METHODS",
    "METHODS",
    "ODAM",
    "CamMethod",
    "DRise",
    "EigenCAM",
    "GradCAM",
    "GradCAMPlusPlus",
    "HiResCAM",
    "LayerCAM",
    "SeedCAM",
    "check_kind",
    "default_method",
    "get_method",
    "is_black_box",
    "method_layers",
    "method_names",
]
