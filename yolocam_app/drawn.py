"""A session's first Explore page shows its heatmaps first and the part below them
(detections table, interactive view, downloads) one round trip later.

A new session's page reaches the browser before the browser has finished starting,
which then draws it whole: measured with ``bench/bench_serve.py --also`` on a 2-core
Xeon, the first heatmaps took 1.62 s with that part and 1.13 s when it came after the
browser reported the heatmaps drawn; sending it 0.15 or 0.4 s later from the server
did not help (the browser was still starting). So the first run draws the heatmaps
and a tiny component that, once the browser has painted them (two animation
frames), asks for a rerun of the page's fragment, which draws the rest (about 0.4 s
later: the whole page is complete no later than before).
"""

from __future__ import annotations

import streamlit as st

#: Session flag: the part below the heatmaps is drawn in every run from the next on.
#: Set during the first run, so that any rerun draws it even if the browser's signal
#: never comes (tests set it before the first run: AppTest runs no JavaScript).
KEY = "page_drawn"

JS = """
export default function (component) {
  const { setTriggerValue } = component;
  requestAnimationFrame(() => requestAnimationFrame(() => setTriggerValue("drawn", true)));
}
"""

_COMPONENT = None


def _component():
    global _COMPONENT
    if _COMPONENT is None:
        _COMPONENT = st.components.v2.component("yolocam_page_drawn", js=JS)
    return _COMPONENT


def below_the_heatmaps() -> bool:
    """Whether this run draws the part below the heatmaps: False only in a session's
    first run, which instead draws the signal that reruns the fragment once the
    browser has painted the heatmaps. Call it inside the fragment, after them."""
    if st.session_state.get(KEY):
        return True
    st.session_state[KEY] = True
    _component()(key="page_drawn_signal", data={}, on_drawn_change=lambda: None)
    return False
