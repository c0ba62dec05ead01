"""Finding the app's widgets in AppTest.

A choice whose options can change is drawn by a widget keyed ``"<choice>@<digest of
its options>"`` (see ``yolocam_app.state``); these helpers find it by the choice's
name (a prefix for per-image choices such as ``"target_detection:"``)."""

from __future__ import annotations

from streamlit.testing.v1 import AppTest


def widget(at, kind: str, key: str):
    """The one ``kind`` widget ("selectbox", "radio", "multiselect", ...) of ``at`` (an
    AppTest or ``at.sidebar``) for choice ``key``."""
    found = [
        w
        for w in getattr(at, kind)
        if w.key == key
        or (w.key or "").startswith(key + "@")
        or (key.endswith(":") and (w.key or "").startswith(key))
    ]
    assert len(found) == 1, (
        f"{len(found)} {kind} widgets for {key!r}: {[w.key for w in getattr(at, kind)]}"
    )
    return found[0]


def heading(at: AppTest) -> str:
    """The "<method> · <target>" heading above the overlays."""
    return next(h.value for h in at.main.subheader if " · " in h.value)


def overlay_captions(at: AppTest) -> list[str]:
    """Captions of the heatmap overlays (they name the scale's grid and stride)."""
    return [c for img in at.get("image") for c in img.captions if "stride" in c]


def scale_labels(at: AppTest) -> list[str]:
    """The overlays' scale labels, e.g. ["13×13 · stride 32", "26×26 · stride 16"]."""
    return [c.split(" · score")[0] for c in overlay_captions(at)]


def photo_uploader(at: AppTest):
    """The sidebar's photo uploader (keyed ``upload@<generation>``)."""
    (uploader,) = [u for u in at.sidebar.get("file_uploader") if u.key.startswith("upload@")]
    return uploader
