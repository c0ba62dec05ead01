"""yolocam web app: `streamlit run app.py`.

This file draws the shared sidebar once and hands over to the chosen page.
"""

from __future__ import annotations

import streamlit as st

from yolocam_app.sidebar import sidebar_ui

st.set_page_config(page_title="yolocam · why did the detector fire?", page_icon="🔥", layout="wide")

pages = st.navigation(
    [
        st.Page("pages/explore.py", title="Explore", icon="🔎", default=True),
        st.Page("pages/compare.py", title="Compare methods", icon="🧪"),
        st.Page("pages/model.py", title="Model", icon="🧠"),
    ]
)
st.session_state["settings"] = sidebar_ui()
pages.run()
