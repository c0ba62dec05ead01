"""The one sidebar every page shares: ``page_setup()`` starts every page."""

from __future__ import annotations

from dataclasses import dataclass

import streamlit as st

from yolocam_app import resources
from yolocam_core.cams import get_method, method_names
from yolocam_core.errors import YolocamError
from yolocam_core.models import DEFAULT_MODEL, ZOO
from yolocam_core.render import COLORMAPS

UPLOAD_TYPES = ["jpg", "jpeg", "png", "webp", "bmp"]
NORM_LABELS = {"per-map": "Per map (as the article)", "shared": "Shared across scales"}
PAGES = (
    ("app.py", "Explore", ":material/search:"),
    ("pages/1_Compare_methods.py", "Compare methods", ":material/grid_view:"),
    ("pages/2_Model.py", "Model", ":material/account_tree:"),
    ("pages/3_Faithfulness.py", "Faithfulness", ":material/query_stats:"),
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
    # "Your model" (see your_model_ui)
    "byo_kind": "keras",
    "byo_classes": "auto",
    "byo_anchors": "",
    "byo_masks": "",
    "byo_size": "model",
    "byo_letterbox": "model",
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
    pending = st.session_state.pop("model_pending", None)
    if pending is not None:  # a model just loaded under "Your model" becomes the model
        st.session_state["model"] = pending
    for key, value in DEFAULTS.items():
        st.session_state[key] = st.session_state.get(key, value)
    if "sample" in st.session_state:
        st.session_state["sample"] = st.session_state["sample"]
    return sidebar_ui()


def _remember_upload() -> None:
    upload = st.session_state.get("upload")
    st.session_state["upload_error"] = None
    if upload is not None:
        try:
            resources.check_upload_size("image", upload.name, upload.size)
        except YolocamError as exc:
            st.session_state["upload_error"] = f"Cannot use this photo: {exc}."
            upload = None
    st.session_state["uploaded"] = (upload.name, upload.getvalue()) if upload else None


def _model_labels() -> dict[str, str]:
    """Model key -> label shown in the Model box (uploaded models by file name)."""
    uploaded = st.session_state.get("byo_models", {})
    return {**{name: name for name in ZOO}, **{k: f"Your model: {v}" for k, v in uploaded.items()}}


def _check_model(bar) -> None:
    """An uploaded model that is no longer in memory falls back to the default."""
    name = st.session_state.get("model", DEFAULT_MODEL)
    if not name.startswith(resources.UPLOAD_PREFIX):
        return
    try:
        resources.get_explainer(name)
    except YolocamError as exc:
        st.session_state.get("byo_models", {}).pop(name, None)
        st.session_state["model"] = DEFAULT_MODEL
        bar.error(f"{exc}. Using {DEFAULT_MODEL} meanwhile.")


def sidebar_ui() -> Settings:
    """Draw the shared sidebar (navigation included) and return its values."""
    bar = st.sidebar
    bar.header("yolocam")
    for path, label, icon in PAGES:
        bar.page_link(path, label=label, icon=icon)
    _check_model(bar)
    labels = _model_labels()  # bound now: format_func may run outside the script
    model_name = bar.selectbox(
        "Model",
        list(labels),
        format_func=labels.get,
        help=f"{ZOO[DEFAULT_MODEL].description}. Load your own under 'Your model' at the "
        "bottom of this sidebar.",
        key="model",
    )
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
            max_upload_size=resources.widget_limit_mb("image"),
        )
        # Kept in the session so that it survives a change of page.
        name, data = st.session_state.get("uploaded") or ("", None)
        if st.session_state.get("upload_error"):
            bar.error(st.session_state["upload_error"])
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
    your_model_ui(bar)
    return Settings(model_name, name, data, score, iou, method, colormap, opacity, norm)


# -- "Your model" ---------------------------------------------------------------------

BYO_KINDS = {"keras": "Keras (.h5 / .keras)", "darknet": "Darknet (.cfg + .weights)"}
BYO_CLASSES = {
    "auto": "Auto (80: COCO, 20: VOC)",
    "coco": "COCO (80)",
    "voc": "PASCAL VOC (20)",
    "file": "From a file (one name per line)",
}
BYO_SIZES = ["model", 320, 416, 512, 608]
BYO_LETTERBOX = {"model": "Model's default", "on": "Letterbox (keep aspect)", "off": "Stretch"}
LETTERBOX_VALUES = {"model": None, "on": True, "off": False}


def your_model_ui(bar) -> None:
    """The "Your model" expander: upload a model, its class names and anchors, load it.

    A loaded model is converted once per file contents and options, shared by every
    session, and becomes the sidebar's model. Every failure is an ``st.error``. Python
    code in a model file is never run here (no trust option in the app).
    """
    with bar.expander("Your model", expanded=False):
        kind = st.radio(
            "Format", list(BYO_KINDS), format_func=BYO_KINDS.get, key="byo_kind", horizontal=True
        )
        if kind == "darknet":
            files = {
                "cfg": st.file_uploader(
                    "Darknet .cfg",
                    type=["cfg"],
                    key="byo_cfg",
                    max_upload_size=resources.widget_limit_mb("cfg"),
                ),
                "weights": st.file_uploader(
                    "Darknet .weights (up to 300 MB)", type=["weights"], key="byo_weights"
                ),
            }
        else:
            files = {
                "keras": st.file_uploader(
                    "Keras model (up to 300 MB)",
                    type=["h5", "hdf5", "keras"],
                    key="byo_keras",
                    help="Outputs must be the raw YOLO heads (batch, H, W, anchors·(5+classes)). "
                    "Models with Lambda layers or custom code are refused.",
                )
            }
        classes = st.selectbox(
            "Class names", list(BYO_CLASSES), format_func=BYO_CLASSES.get, key="byo_classes"
        )
        names_file = None
        if classes == "file":
            names_file = st.file_uploader(
                "Class names file",
                type=["txt", "names"],
                key="byo_names",
                max_upload_size=resources.widget_limit_mb("names"),
            )
        st.text_input(
            "Anchors (w,h pairs in pixels)",
            key="byo_anchors",
            placeholder="10,13, 16,30, 33,23, …",
            help="Empty: the cfg's, or for Keras models YOLOv3's nine (three heads) or "
            "tiny's six (two heads).",
        )
        if kind == "keras":
            st.text_input(
                "Anchor masks (coarsest head first)",
                key="byo_masks",
                placeholder="6,7,8; 3,4,5; 0,1,2",
                help="Empty: anchors split evenly, the largest to the coarsest head. "
                "'keras-yolo3' for keras-yolo3's tiny model.",
            )
        st.selectbox(
            "Input size",
            BYO_SIZES,
            format_func=lambda v: "Model's own (else 416)" if v == "model" else f"{v}×{v}",
            key="byo_size",
        )
        st.radio("Resize", list(BYO_LETTERBOX), format_func=BYO_LETTERBOX.get, key="byo_letterbox")
        if st.button("Load this model", key="byo_load", type="primary"):
            _load_your_model(kind, files, classes, names_file)


def _load_your_model(kind: str, files: dict, classes: str, names_file) -> None:
    missing = [role for role, upload in files.items() if upload is None]
    if missing:
        what = {"cfg": "a .cfg", "weights": "its .weights", "keras": "a .h5 or .keras file"}
        st.error(f"Upload {' and '.join(what[m] for m in missing)} first.")
        return
    try:
        for role, upload in files.items():
            resources.check_upload_size(role, upload.name, upload.size)
        if classes == "file":
            if names_file is None:
                st.error("Upload the class names file, or choose a preset.")
                return
            resources.check_upload_size("names", names_file.name, names_file.size)
            from yolocam_core.models.classes import names_from_bytes

            classes_value: str | tuple[str, ...] = tuple(
                names_from_bytes(names_file.getvalue(), names_file.name)
            )
        else:
            classes_value = classes
        state = st.session_state
        size = state.get("byo_size", "model")
        request = resources.UploadRequest(
            kind=kind,
            file_names=tuple((role, upload.name) for role, upload in files.items()),
            classes=classes_value,
            anchors=str(state.get("byo_anchors", "")).strip(),
            anchor_masks=str(state.get("byo_masks", "")).strip() if kind == "keras" else "",
            input_size=None if size == "model" else int(size),
            letterbox=LETTERBOX_VALUES[state.get("byo_letterbox", "model")],
        )
        blobs = {role: upload.getvalue() for role, upload in files.items()}
        digest = resources.upload_digest(request, blobs)
        explainer = resources.uploaded_explainer(digest, request, blobs)
    except YolocamError as exc:
        st.error(f"Cannot use this model: {exc}")
        return
    except Exception as exc:  # never a traceback in the browser
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:300]
        st.error(
            f"Cannot use this model: {type(exc).__name__}: {first}. yolocam needs a YOLO model "
            "whose outputs are the raw heads; see the README, 'Your own model'."
        )
        return
    name = resources.UPLOAD_PREFIX + digest
    models = dict(st.session_state.get("byo_models", {}))
    models[name] = explainer.detector.name
    st.session_state["byo_models"] = models
    st.session_state["model_pending"] = name
    st.rerun()
