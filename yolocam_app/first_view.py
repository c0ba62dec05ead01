"""A new session's Explore page in three steps: the heatmaps, then the controls, then
the part below the heatmaps (detections table, interactive view, downloads).

Where a new session's time goes (2-core AMD EPYC, warm server, a Performance timeline
of the page): the script's run takes about 0.09 s, the rest is the browser. A
Streamlit page with one picture shows it after 1.0–1.6 s (with the host's load); with
the app's 14 widgets (sidebar and controls) after 1.5–2.4 s, wherever in the page the
picture comes: the browser fetches, parses and lays out every widget's code before it
paints anything of the run. So:

1. A session's first run on Explore (a *first view*) draws no widget: every choice
   takes the value its widget will show (:func:`yolocam_app.state.choice` and
   :func:`~yolocam_app.state.keyed` draw nothing while :func:`active`), the sidebar
   holds its page links, the page its heatmaps. A tiny fragment rerunning every
   :data:`INTERVAL_S` (a timer in the browser, started once the browser has the
   heatmaps; no code to fetch) asks for a whole run.
2. That run draws everything but the part below the heatmaps, and a tiny component
   that, two animation frames after the browser painted it, reruns the page's
   fragment (:func:`below_the_heatmaps`).
3. That fragment run draws the rest.

Every other page, and every later run, draws its controls at once; a session whose
first page was another one gets step 3 (one round trip) on its first Explore run.
"""

from __future__ import annotations

import streamlit as st

#: Session flag: the part below the heatmaps is drawn in every run from the next on.
#: Set during step 2, so that any later run draws it even if the browser's signal
#: never comes (tests set it before the first run: AppTest runs no timer and no
#: JavaScript, and they start with the whole page).
KEY = "page_drawn"
#: Session flag: set at the start of a session's first whole run (a first view can only
#: be that run).
_STARTED = "@first_view_started"
#: Session key: whether the whole run in progress is a first view (later fragment runs
#: read the value of the last whole run).
_ACTIVE = "@first_view"
#: Set by the timer fragment's first call, so that only its timer's runs ask for step 2.
_ARMED = "@first_view_armed"
#: Seconds from the browser's receiving the first view to its asking for step 2 (0.1 s
#: sometimes fired before the heatmaps were painted, which were then drawn with step 2).
INTERVAL_S = 0.3
#: Height of the Explore page's row of controls (one detection, a laptop's width): a
#: first view keeps this room for them, so that there the heatmaps do not move when they
#: come (other widths stack the columns; then they move by the difference).
CONTROLS_HEIGHT_PX = 152

JS = """
export default function (component) {
  const { setTriggerValue } = component;
  requestAnimationFrame(() => requestAnimationFrame(() => setTriggerValue("drawn", true)));
}
"""

_COMPONENT = None


def begin(explore: bool) -> None:
    """At the top of every whole run: decide whether it is a first view (a session's
    first run, on the Explore page: ``explore``)."""
    first = explore and not st.session_state.get(_STARTED) and not st.session_state.get(KEY)
    st.session_state[_STARTED] = True
    st.session_state[_ACTIVE] = first


def active() -> bool:
    """Whether this run is a first view (step 1: no widget is drawn)."""
    return bool(st.session_state.get(_ACTIVE, False))


def finish() -> None:
    """At the end of every whole run, also one stopped early: in a first view, the
    fragment whose timer asks for step 2. Nothing otherwise."""
    if active():
        st.session_state.pop(_ARMED, None)
        _signal()


@st.fragment(run_every=INTERVAL_S)
def _signal() -> None:
    """Called once in a first view (it arms itself); its first timer run asks for a
    whole run, which no longer draws it (the browser then stops its timer)."""
    if st.session_state.pop(_ARMED, False):
        st.rerun(scope="app")
    st.session_state[_ARMED] = True


def _component():
    global _COMPONENT
    if _COMPONENT is None:
        _COMPONENT = st.components.v2.component("yolocam_page_drawn", js=JS)
    return _COMPONENT


def below_the_heatmaps() -> bool:
    """Whether this run draws the part below the heatmaps: not in a first view, nor in
    the run after it (step 2), which instead draws the signal that reruns the
    fragment once the browser has painted the page. Call it inside the fragment,
    after the heatmaps."""
    if active():
        return False
    if st.session_state.get(KEY):
        return True
    st.session_state[KEY] = True
    _component()(key="page_drawn_signal", data={}, on_drawn_change=lambda: None)
    return False
