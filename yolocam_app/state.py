"""Widget state that cannot drift from what the page shows.

Why it drifted: a keyed Streamlit widget is identified by its key alone, so when its
options change between runs (a photo with no detection, then one with some; the
scales of a one-scale view; another model's heads) the browser keeps showing its old
choice or its first option while the script reads another value. And a widget that a
run does not draw (another page, a hidden uploader) loses its state.

The cure, in one place (:func:`choice`): the *choice* lives in session state under a
plain key that no widget owns (so it survives pages, fragments and hidden widgets),
and the widget that shows it is keyed by that key *and the options it shows*. Each run
the remembered choice is checked against today's options (else a fallback is used),
and written into the widget before it is drawn whenever the widget would show
something else. New options therefore mean a new widget that shows exactly the value
the page uses; a user's change is copied back to the choice by the widget's callback;
code may change a choice (a click on a box in the photo) with :func:`prefer`.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from typing import Any

import streamlit as st

from yolocam_app import first_view

_MISSING = object()
#: Session-state key of the count of whole-script runs (see :func:`new_run`).
_RUNS = "@runs"


def new_run() -> None:
    """Count a run of the whole script (call once at its top, not in fragments): the
    clock :func:`widget_key` uses to tell that a widget was left out of a run."""
    st.session_state[_RUNS] = st.session_state.get(_RUNS, 0) + 1


def widget_key(key: str, labels: Sequence[str]) -> str:
    """The key of the widget that shows choice ``key`` with these option labels:
    ``"<key>@<digest of the labels>.<generation>"``.

    The generation grows whenever the labels differ from those of the run before, or
    the widget was left out of a whole run (a page stopped early, e.g. Upload before
    a photo is given; another page), so that a widget that comes back is a widget the
    browser has never seen: a re-mounted widget under an old key can show its first
    option while the page uses another value (seen in a real browser across fragment
    reruns and after an Upload with no photo yet), and a user's next click, or the
    browser's next message, would then adopt that wrong value.
    """
    digest = hashlib.sha1("\x1f".join(labels).encode("utf-8")).hexdigest()[:10]
    last_key = f"{key}@last"
    run = st.session_state.get(_RUNS, 0)
    last_digest, generation, drawn = st.session_state.get(last_key, (digest, 0, run))
    if last_digest != digest or drawn < run - 1:
        generation += 1
    st.session_state[last_key] = (digest, generation, run)
    return f"{key}@{digest}.{generation}"


def remembered(key: str, default: Any = None) -> Any:
    """The remembered choice ``key`` (whatever today's options are)."""
    return st.session_state.get(key, default)


def prefer(key: str, value: Any) -> None:
    """Make ``value`` the choice ``key``; its widget shows it on the next run."""
    st.session_state[key] = value


def _adopt(key: str, wkey: str) -> None:
    """A user changed the widget: its value becomes the choice."""
    st.session_state[key] = st.session_state[wkey]


def _adopt_or_forget(key: str, wkey: str, default: Any) -> None:
    """A user changed the widget: its value becomes the choice, unless it is the
    default, which is then followed again (the choice is forgotten)."""
    if st.session_state[wkey] == default:
        st.session_state.pop(key, None)
    else:
        st.session_state[key] = st.session_state[wkey]


def choice(
    draw: Callable[..., Any],
    label: str,
    options: Sequence[Any],
    *,
    key: str,
    default: Any = _MISSING,
    fallback: Callable[[Sequence[Any]], Any] | None = None,
    format_func: Callable[[Any], str] = str,
    multi: bool = False,
    follow_default: bool = False,
    **kwargs: Any,
) -> Any:
    """Draw a radio / selectbox / multiselect whose value always matches the page.

    Args:
        draw: ``st.radio``, ``st.selectbox``, ``st.multiselect`` (or the same on a
            container, e.g. ``st.sidebar.selectbox``).
        label: the widget's label.
        options: today's options.
        key: where the choice is remembered (shared by every page that uses it).
        default: the choice before any is made; default: ``fallback(options)``.
        fallback: the value when the remembered one is not among the options;
            default: the first option (for ``multi``: ``default`` filtered).
        format_func: option -> label.
        multi: a multiselect (the value is a list).
        follow_default: a user's choice equal to ``default`` is forgotten, so that
            the value keeps following ``default`` when it changes (e.g. the method:
            the target kind's default until the user picks another one).
        **kwargs: passed to ``draw`` (help, horizontal, label_visibility, ...).

    Returns:
        The value the page must use; the widget shows exactly it (in a first view,
        :mod:`yolocam_app.first_view`, no widget is drawn: the value is the one it
        will show).
    """
    options = list(options)
    wanted = st.session_state.get(key, _MISSING)
    if wanted is _MISSING:
        wanted = default
    if multi:
        base = [] if wanted is _MISSING else list(wanted)
        value: Any = [v for v in base if v in options]
        if not value and base and fallback is not None:
            value = list(fallback(options))
    elif wanted is not _MISSING and wanted in options:
        value = wanted
    elif fallback is not None:
        value = fallback(options)
    else:
        value = options[0] if options else None
    if first_view.active():
        return value
    wkey = widget_key(key, [str(format_func(o)) for o in options])
    if st.session_state.get(wkey, _MISSING) != value:
        st.session_state[wkey] = value
    if follow_default and default is not _MISSING:
        adopt, args = _adopt_or_forget, (key, wkey, default)
    else:
        adopt, args = _adopt, (key, wkey)
    return draw(
        label,
        options,
        key=wkey,
        format_func=format_func,
        on_change=adopt,
        args=args,
        **kwargs,
    )


def kept(draw: Callable[..., Any], label: str, *, key: str, default: Any, **kwargs: Any) -> Any:
    """A widget without options (a number input, a toggle) whose value is remembered
    under ``key`` even on runs that do not draw it (e.g. D-RISE's settings, drawn only
    while D-RISE is chosen), and always shown as the value the page uses.

    Args:
        draw: e.g. ``st.number_input`` or ``st.toggle``.
        label: the widget's label.
        key: where the value is remembered.
        default: the value before any is chosen.
        **kwargs: passed to ``draw`` (min_value, max_value, step, help, ...).

    In a first view (:mod:`yolocam_app.first_view`) nothing is drawn; the value is
    returned.
    """
    value = st.session_state.get(key, default)
    if first_view.active():
        return value
    wkey = widget_key(key, ())
    if st.session_state.get(wkey, _MISSING) != value:
        st.session_state[wkey] = value
    return draw(label, key=wkey, on_change=_adopt, args=(key, wkey), **kwargs)


def keyed(draw: Callable[..., Any], *args: Any, key: str, **kwargs: Any) -> Any:
    """``draw(*args, key=key, **kwargs)``, a widget whose initial value is set in session
    state under ``key``; in a first view (:mod:`yolocam_app.first_view`) nothing is
    drawn and that value is returned."""
    if first_view.active():
        return st.session_state[key]
    return draw(*args, key=key, **kwargs)
