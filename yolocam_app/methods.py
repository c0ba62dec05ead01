"""The CAM methods as the app offers them: labels and help from the registry's metadata
(``answers``, ``note``, ``target_independent``, ``black_box``), which methods a target
accepts (``check_target``) and why the others are not offered, the default method of
a target kind (``cams.default_method``), and D-RISE's options (mask count and seed).

No Streamlit here except :func:`drise_options`, which reads the remembered D-RISE
settings (drawn by :func:`yolocam_app.views.drise_ui`).
"""

from __future__ import annotations

from yolocam_core.cams import DRise, default_method, get_method, is_black_box, method_names
from yolocam_core.cams.base import CamMethod
from yolocam_core.errors import YolocamError
from yolocam_core.targets import Target

#: What each kind of answer means, in menus (``CamMethod.answers``).
ANSWER_PHRASES = {
    "instance": "this one detection (instance)",
    "class": "the class (every instance lights up)",
    "target-independent": "ignores the target",
    "black-box": "black box, slow",
}
#: D-RISE in the app: mask counts offered (a run is one forward pass per mask), and
#: the default (the library's is 1,000; the paper's 5,000).
DRISE_MASKS = tuple(range(100, 2001, 100))
DRISE_DEFAULT_MASKS = 500
DRISE_DEFAULT_SEED = 0
#: Where the D-RISE settings are remembered (shared by every page).
DRISE_MASKS_KEY = "drise_masks"
DRISE_SEED_KEY = "drise_seed"


def all_methods() -> list[str]:
    """Every registered method, the black-box ones (D-RISE) included, in menu order."""
    return method_names(black_box=True)


def title(name: str) -> str:
    """A method's title, e.g. ``"D-RISE"``."""
    return get_method(name).title


def answers_phrase(name: str, kind: str = "detection") -> str:
    """What a method's map answers for a target of ``kind``, in a few words, from its
    ``answers`` (and a "trivially" from its ``note``: HiResCAM and LayerCAM at the head
    input). An instance method of a class score lights every instance; of the whole
    head output, every gradient method explains that sum."""
    method = get_method(name)
    answers = getattr(method, "answers", "")
    if kind == "seed" and answers in ("instance", "class"):
        return "the whole head output"
    if kind == "class" and answers == "instance":
        return "element-wise, of the class score (every instance)"
    lead = (getattr(method, "note", "") or "").split(":", 1)[0].lower()
    if answers == "instance" and "trivially" in lead:
        return "one cell of this detection (instance, trivially)"
    return ANSWER_PHRASES.get(answers, "")


def method_label(name: str, kind: str = "detection") -> str:
    """A method's menu label for a target of ``kind``, e.g. ``"ODAM — this one
    detection (instance)"`` or ``"Eigen-CAM — ignores the target"``."""
    title = get_method(name).title
    phrase = answers_phrase(name, kind)
    return f"{title} — {phrase}" if phrase else title


def method_help(names: list[str] | None = None, kind: str = "detection") -> str:
    """One line per method: its title, key, what it answers (for ``kind``) and its note."""
    lines = []
    for name in all_methods() if names is None else names:
        method = get_method(name)
        note = getattr(method, "note", "") or ""
        phrase = answers_phrase(name, kind)
        what = f" — {phrase}" if phrase else ""
        lines.append(f"- **{method.title}** (`{name}`){what}. {note}".rstrip())
    return "\n".join(lines)


def kind_default(kind: str) -> str:
    """The method a target kind is explained with unless the user chose another
    (``cams.default_method``: a detection -> odam, a class -> gradcam, the whole head
    output -> seed)."""
    return default_method([kind])


def refusal(name: str, target: Target) -> str | None:
    """Why ``name`` cannot explain ``target`` (the library's own message), or None."""
    try:
        get_method(name).check_target(target)
    except YolocamError as exc:
        return str(exc)
    return None


def offered(target: Target, names: list[str] | None = None) -> tuple[list[str], dict[str, str]]:
    """The methods that accept ``target`` and, for the others, why not.

    Returns:
        (offered names in menu order, {refused name: the library's reason}).
    """
    accepted, refused = [], {}
    for name in all_methods() if names is None else names:
        reason = refusal(name, target)
        if reason is None:
            accepted.append(name)
        else:
            refused[name] = reason
    return accepted, refused


def refusal_lines(refused: dict[str, str]) -> list[str]:
    """One line per distinct reason: the methods it concerns and the library's reason
    (which says what to use instead), e.g. ``"**Grad-CAM, ODAM** — these methods
    cannot explain the whole head output: …; use method seed …"``."""
    groups: dict[str, list[str]] = {}
    for name, reason in refused.items():
        groups.setdefault(reason.replace(name, "{m}"), []).append(name)
    lines = []
    for template, names in groups.items():
        titles = ", ".join(get_method(n).title for n in names)
        if len(names) == 1:
            text = template.replace("{m}", get_method(names[0]).title)
        else:
            text = template.replace("{m}", "these methods", 1).replace("{m}", "them")
        lines.append(f"**{titles}** — {text[0].upper()}{text[1:]}")
    return lines


def drise_options() -> tuple[tuple[str, int], ...]:
    """The remembered D-RISE settings as ``(("masks", N), ("seed", S))`` (hashable:
    they are part of the cache keys)."""
    import streamlit as st

    masks = st.session_state.get(DRISE_MASKS_KEY, DRISE_DEFAULT_MASKS)
    seed = st.session_state.get(DRISE_SEED_KEY, DRISE_DEFAULT_SEED)
    if masks not in DRISE_MASKS:  # what the menu shows then (see views.drise_ui)
        masks = DRISE_DEFAULT_MASKS if DRISE_DEFAULT_MASKS in DRISE_MASKS else DRISE_MASKS[0]
    if not isinstance(seed, int) or not 0 <= seed < 2**31:
        seed = DRISE_DEFAULT_SEED
    return (("masks", int(masks)), ("seed", int(seed)))


def options_for(name: str) -> tuple[tuple[str, int], ...]:
    """The options a method is computed with in the app (D-RISE's masks and seed;
    none for the others)."""
    return drise_options() if is_black_box(name) else ()


def instance(name: str, options: tuple[tuple[str, int], ...] = ()) -> CamMethod:
    """The configured method: ``DRise(masks=…, seed=…)`` for D-RISE with options, else
    the registry's instance."""
    if options and name == DRise.name:
        return DRise(**dict(options))
    return get_method(name)
