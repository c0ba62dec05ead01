"""The one sidebar every page shares: ``page_setup()`` starts every page."""

from __future__ import annotations

from dataclasses import dataclass

import streamlit as st

from yolocam_app import resources
from yolocam_core.cams import get_method, method_names
from yolocam_core.render import COLORMAPS
from yolocam_core.zoo import DEFAULT_MODEL, ZOO

UPLOAD_TYPES = ["jpg", "jpeg", "png", "webp", "bmp"]
NORM_LABELS = {"per-map": "Per map (as the article)", "shared": "Shared across scales"}
PAGES = (
    ("app.py", "Explore", ":material/search:"),
    ("pages/1_Compare_methods.py", "Compare methods", ":material/grid_view:"),
    ("pages/2_Model.py", "Model", ":material/account_tree:"),
)
# Sidebar widgets' initial values. They live in the session state under the widget's
# key and are re-assigned on every page: Streamlit forgets the state of widgets that
# a page does not draw, and every page is its own script.
DEFAULTS = {
    "model": DEFAULT_MODEL,
    "source": "Sample photo",
    "score": 0.25,
    "iou": 0.45,
    "method": "gradcam",
    "norm": "per-map",
    "colormap": "jet",
    "opacity": 0.5,
}


@dataclass(frozen=True)
class Settings:
    """What the sidebar chose."""

    model_name: str
    image_name: str
    image_bytes: bytes | None  # None: an upload was asked for but none given yet
    score: float
    iou: float
    method: str
    colormap: str
    opacity: float
    norm: str


def page_setup() -> Settings:
    """Every page starts with this: page config, then the shared sidebar."""
    st.set_page_config(
        page_title="yolocam · why did the detector fire?", page_icon="🔥", layout="wide"
    )
    for key, value in DEFAULTS.items():
        st.session_state[key] = st.session_state.get(key, value)
    if "sample" in st.session_state:
        st.session_state["sample"] = st.session_state["sample"]
    return sidebar_ui()


def _remember_upload() -> None:
    upload = st.session_state.get("upload")
    st.session_state["uploaded"] = (upload.name, upload.getvalue()) if upload else None


def sidebar_ui() -> Settings:
    """Draw the shared sidebar (navigation included) and return its values."""
    bar = st.sidebar
    bar.header("yolocam")
    for path, label, icon in PAGES:
        bar.page_link(path, label=label, icon=icon)
    model_name = bar.selectbox("Model", list(ZOO), help=ZOO[DEFAULT_MODEL].description, key="model")
    source = bar.radio("Image", ["Sample photo", "Upload"], horizontal=True, key="source")
    if source == "Sample photo":
        photos = resources.samples()
        name = bar.selectbox("Sample", list(photos), key="sample")
        data: bytes | None = photos[name]
    else:
        bar.file_uploader(
            "Photo (JPEG, PNG, WebP or BMP)",
            type=UPLOAD_TYPES,
            key="upload",
            on_change=_remember_upload,
        )
        # Kept in the session so that it survives a change of page.
        name, data = st.session_state.get("uploaded") or ("", None)
    bar.subheader("Detection")
    score = bar.slider("Score threshold", 0.05, 0.95, step=0.05, key="score")
    iou = bar.slider("NMS IoU threshold", 0.1, 0.9, step=0.05, key="iou")
    bar.subheader("Explanation")
    method = bar.selectbox(
        "CAM method",
        method_names(),
        format_func=lambda m: get_method(m).title,
        key="method",
        help="seed = the article's guided Grad-CAM; eigencam needs no gradients.",
    )
    norm = bar.radio(
        "Normalisation",
        list(NORM_LABELS),
        format_func=NORM_LABELS.get,
        key="norm",
        help="Per map stretches each scale to [0, 1]; shared keeps scales comparable.",
    )
    colormap = bar.selectbox("Colour map", list(COLORMAPS), key="colormap")
    opacity = bar.slider("Heatmap opacity", 0.0, 1.0, step=0.05, key="opacity")
    return Settings(model_name, name, data, score, iou, method, colormap, opacity, norm)
