"""The one sidebar every page shares, drawn by the entrypoint (``app.py``).

Drawn once per run by the entrypoint, before the page runs, its widgets keep their
state across pages (an uploaded photo stays in its uploader); the pages read what it
chose with :func:`current`.
"""

from __future__ import annotations

from dataclasses import dataclass

import streamlit as st

from yolocam_app import first_view, resources
from yolocam_app.state import choice, keyed
from yolocam_core.detector import DEFAULT_MAX_DETECTIONS
from yolocam_core.errors import YolocamError
from yolocam_core.models import DEFAULT_MODEL, ZOO
from yolocam_core.render import COLORMAPS

UPLOAD_TYPES = ["jpg", "jpeg", "png", "webp", "bmp", "tif", "tiff"]
NORM_LABELS = {
    "auto": "Auto: shared (per map for the whole head output and box coordinates)",
    "shared": "Shared across scales",
    "per-map": "Per map (as the article)",
}
NORM_HELP = (
    "Shared: one colour scale for every scale's map, so a scale whose score is small "
    "looks faint: colours compare between scales. Per map: each map stretched to its "
    "own range, as the article did (a weak scale then looks as confident as a strong "
    "one; it is marked 'weak'). Auto, the default, is shared for a detection's or a "
    "class's score or objectness, and per map for the whole head output (its score has "
    "no sign) and for a box coordinate (a position, not a strength)."
)
#: Page files, their titles, icons and URL paths. The folder is not called pages/:
#: Streamlit would run a page file from there on its own, without the entrypoint
#: (and the sidebar), on a session's first request to its URL.
PAGES = (
    ("app_pages/explore.py", "Explore", ":material/search:", "explore"),
    ("app_pages/compare_methods.py", "Compare methods", ":material/grid_view:", "Compare_methods"),
    ("app_pages/model.py", "Model", ":material/account_tree:", "Model"),
    ("app_pages/faithfulness.py", "Faithfulness", ":material/query_stats:", "Faithfulness"),
)
# Initial values of the sidebar's widgets (set once per session).
DEFAULTS = {
    "source": "Sample photo",
    "score": 0.25,
    "iou": 0.45,
    "max_detections": DEFAULT_MAX_DETECTIONS,
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
    colormap: str
    opacity: float
    norm: str
    max_detections: int = DEFAULT_MAX_DETECTIONS


def navigation():
    """The page chosen (``st.navigation``; the sidebar draws its own links) and whether
    it is Explore (the page returned is one of those given; run bare, as a spawned
    process that imports ``app.py`` as its main module does, it is a stand-in)."""
    pages = [
        st.Page(path, title=title, icon=icon, url_path=url, default=k == 0)
        for k, (path, title, icon, url) in enumerate(PAGES)
    ]
    page = st.navigation(pages, position="hidden")
    return page, page is pages[0]


def setup() -> Settings:
    """The entrypoint's part of every run: page config, logo, styles and the sidebar.

    The result is kept for the page of this run (:func:`current`)."""
    st.set_page_config(
        page_title="yolocam · why did the detector fire?",
        page_icon=str(resources.ASSETS / "favicon.png"),
        layout="wide",
    )
    st.logo(str(resources.ASSETS / "logo.svg"), size="large")
    st.html(resources.styles())
    pending = st.session_state.pop("model_pending", None)
    if pending is not None:  # a model just loaded under "Your model" becomes the model
        st.session_state["model"] = pending
    for key, value in DEFAULTS.items():
        st.session_state.setdefault(key, value)
    settings = sidebar_ui()
    st.session_state["_settings"] = settings
    return settings


def current() -> Settings:
    """What the sidebar chose in this run (pages call this)."""
    settings = st.session_state.get("_settings")
    if settings is None:  # a page run on its own (tests): draw the sidebar here
        settings = setup()
    return settings


def _source_changed() -> None:
    """Leaving "Upload": its uploader is not drawn while a sample is shown, so coming
    back gets a new, empty one (a new key). Otherwise the browser may show the old file
    in the uploader again without sending it, and the page and the uploader disagree."""
    if st.session_state.get("source") != "Upload":
        st.session_state["upload_generation"] = st.session_state.get("upload_generation", 0) + 1


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
    """Draw the shared sidebar (navigation included) and return its values. In a first
    view (:mod:`yolocam_app.first_view`) only the page links are drawn; the values are
    those the widgets will show."""
    bar = st.sidebar
    for path, title, icon, _ in PAGES:
        bar.page_link(path, label=title, icon=icon)
    if first_view.active():
        bar.caption("Settings appear once the heatmaps are drawn…")
    _check_model(bar)
    labels = _model_labels()  # bound now: format_func may run outside the script
    model_name = choice(
        bar.selectbox,
        "Model",
        list(labels),
        key="model",
        default=DEFAULT_MODEL,
        format_func=labels.get,
        help=f"{ZOO[DEFAULT_MODEL].description}. Load your own under 'Your model' at the "
        "bottom of this sidebar.",
    )
    source = keyed(
        bar.radio,
        "Image",
        ["Sample photo", "Upload"],
        horizontal=True,
        key="source",
        on_change=_source_changed,
    )
    if source == "Sample photo":
        photos = resources.samples()
        name = choice(bar.selectbox, "Sample", list(photos), key="sample")
        data: bytes | None = photos[name]
    elif first_view.active():  # never in a new session's first run; no widget there
        name, data = "", None
    else:
        upload = bar.file_uploader(
            "Photo (JPEG, PNG, WebP, BMP or TIFF)",
            type=UPLOAD_TYPES,
            key=f"upload@{st.session_state.get('upload_generation', 0)}",
            max_upload_size=resources.widget_limit_mb("image"),
        )
        # The photo in use is exactly the one in the uploader: nothing else is kept.
        name, data = "", None
        if upload is not None:
            try:
                resources.check_upload_size("image", upload.name, upload.size)
                name, data = upload.name, upload.getvalue()
            except YolocamError as exc:
                bar.error(f"Cannot use this photo: {exc}.")
    if not first_view.active():
        bar.subheader("Detection")
    score = keyed(
        bar.slider, "Score threshold", min_value=0.05, max_value=0.95, step=0.05, key="score"
    )
    iou = keyed(bar.slider, "NMS IoU threshold", min_value=0.1, max_value=0.9, step=0.05, key="iou")
    max_detections = keyed(
        bar.number_input,
        "Max detections",
        min_value=1,
        max_value=resources.MAX_DETECTIONS_LIMIT,
        step=50,
        key="max_detections",
        help="At most this many detections are kept, the highest-scoring (as mainstream "
        "detectors do, default 300). A model that finds more says so above the photo.",
    )
    if not first_view.active():
        bar.subheader("Explanation")
    norm = choice(
        bar.radio,
        "Normalisation",
        list(NORM_LABELS),
        key="norm",
        default="auto",
        format_func=NORM_LABELS.get,
        help=NORM_HELP,
    )
    colormap = keyed(bar.selectbox, "Colour map", options=list(COLORMAPS), key="colormap")
    opacity = keyed(
        bar.slider, "Heatmap opacity", min_value=0.0, max_value=1.0, step=0.05, key="opacity"
    )
    if not first_view.active():
        your_model_ui(bar)
    return Settings(
        model_name,
        name,
        data,
        score,
        iou,
        colormap,
        opacity,
        norm,
        int(max_detections),
    )


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
    # Its widgets are drawn only while it is open (a lighter first page).
    section = bar.expander("Your model", key="byo_open", on_change="rerun")
    with section:
        if not section.open:
            st.caption("Load a Darknet or Keras model of your own.")
            return
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
        st.button("Load this model", key="byo_load", type="primary", on_click=_request_load)
        if st.session_state.pop(_LOAD_REQUESTED, False):
            _load_your_model(kind, files, classes, names_file)


#: Set by the "Load this model" button's callback, read (once) by the next run.
_LOAD_REQUESTED = "byo_load_requested"


def _request_load() -> None:
    """Record the click in session state. A button's own value is a trigger that
    Streamlit resets when a script run finishes, and a click that lands while the
    previous run is finishing can be wiped with it (the likely reason the flood browser
    test lost this click on about one fresh clone in three). The callback runs when the
    click's rerun starts, so the request stays until a run reads it."""
    st.session_state[_LOAD_REQUESTED] = True


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
        options = {
            "classes": None if classes_value == "auto" else classes_value,
            "anchors": str(state.get("byo_anchors", "")).strip() or None,
            "anchor_masks": (str(state.get("byo_masks", "")).strip() or None)
            if kind == "keras"
            else None,
            "input_size": None if size == "model" else int(size),
            "letterbox": LETTERBOX_VALUES[state.get("byo_letterbox", "model")],
        }
        uploads = {role: (upload.name, upload.getvalue()) for role, upload in files.items()}
        digest = resources.upload_digest(uploads, options)
        spec = resources.upload_spec(digest, uploads, **options)
        blobs = {role: data for role, (_, data) in uploads.items()}
        explainer = resources.uploaded_explainer(digest, spec, blobs)
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
