"""Widgets and views shared by the pages. Each ``*_ui`` draws and returns a value."""

from __future__ import annotations

import dataclasses
import functools
import threading
import time
from collections.abc import Sequence

import numpy as np
import streamlit as st

from yolocam_app import first_view, methods, resources
from yolocam_app.sidebar import Settings
from yolocam_app.state import choice, kept, prefer, remembered
from yolocam_core import render
from yolocam_core.errors import YolocamError
from yolocam_core.explainer import Explanation
from yolocam_core.report import data_uri
from yolocam_core.targets import ATTRIBUTE_TITLES, ATTRIBUTES, TargetSpec

#: The app's view copy of the photo (heatmaps are made at its size; the interactive view
#: draws it) has at most this many pixels a side; the grid's pictures are drawn smaller,
#: at :data:`GRID_MAX_SIDE`.
VIEW_MAX_SIDE = 720


class Context:
    """The current image, its detections and the shared explainer, for one run."""

    def __init__(self, settings: Settings):
        self.settings = settings
        self.explainer = resources.get_explainer(settings.model_name)
        self.detector = self.explainer.detector
        self.key = resources.image_key(settings.image_bytes or b"")
        self.image, self.original_size = resources.decode_image(self.key, settings.image_bytes)
        self.detections = resources.detect(
            settings.model_name,
            self.key,
            self.image,
            settings.score,
            settings.iou,
            settings.max_detections,
        )
        self.view, self.view_scale = _view_copy(self.key, self.image)
        self.grid = _grid_copy(self.key, self.view)

    @property
    def detection_key(self) -> str:
        """Where the chosen detection of this image and model is remembered."""
        return f"target_detection:{self.settings.model_name}:{self.key[:12]}"

    def work_key(self, target: TargetSpec, method: str) -> tuple:
        """What a black-box explanation of ``target`` computes (for
        :func:`with_progress`): every detection among the first
        :data:`resources.MAX_BATCH` at every scale at once, so neither the detection
        nor the scales shown are part of it."""
        s = self.settings
        single = target.kind != "detection" or target.index >= resources.MAX_BATCH
        return (
            "explain",
            s.model_name,
            self.key,
            s.score,
            s.iou,
            s.max_detections,
            method,
            s.norm,
            target.attribute,
            methods.options_for(method),
            target if single else None,
        )

    def layers(self, scales: tuple[int, ...]) -> tuple[tuple[int, str], ...]:
        """The expert layers chosen on the Model page for this model, for ``scales``."""
        return chosen_layers(self.settings.model_name, scales)

    def explain(
        self,
        target: TargetSpec,
        method: str,
        scales: tuple[int, ...],
        batch: bool = True,
        progress=None,
        full_size: bool = False,
    ) -> Explanation:
        """The explanation, heatmaps at the page's view size (or the image's size).

        A black-box method (D-RISE) is computed with the remembered D-RISE settings
        (:func:`yolocam_app.methods.options_for`) and reports ``progress``."""
        s = self.settings
        compact = resources.explain_compact(
            s.model_name,
            self.key,
            self.image,
            s.score,
            s.iou,
            s.max_detections,
            target,
            method,
            tuple(scales),
            s.norm,
            self.layers(tuple(scales)),
            batch,
            progress,
            methods.options_for(method),
        )
        if not full_size and self.view_scale < 1:
            box = compact.box_xyxy
            compact = dataclasses.replace(
                compact,
                image_size=self.view.shape[:2],
                box_xyxy=None if box is None else tuple(v * self.view_scale for v in box),
            )
        return self.explainer.with_heatmaps(compact)

    def label(self, k: int) -> str:
        """E.g. ``"#0 person 0.99 · 13×13"``."""
        return f"#{k} {self.detector.describe(self.detections[k])}"


@st.cache_data(max_entries=16, show_spinner=False)
def _view_copy(key: str, _image: np.ndarray) -> tuple[np.ndarray, float]:
    """The image at most :data:`VIEW_MAX_SIDE` a side, and its scale."""
    small = render.shrink(_image, VIEW_MAX_SIDE)
    return small, small.shape[1] / _image.shape[1]


@st.cache_data(max_entries=16, show_spinner=False)
def _grid_copy(key: str, _view: np.ndarray) -> np.ndarray:
    """The view copy at most :data:`GRID_MAX_SIDE` a side: the grid's pictures are
    drawn at this size, not drawn larger and shrunk."""
    return render.shrink(_view, GRID_MAX_SIDE)


def _scaled(box: Sequence[float], sx: float, sy: float) -> tuple[float, ...]:
    """An (x1, y1, x2, y2) box scaled per axis."""
    x1, y1, x2, y2 = box
    return (x1 * sx, y1 * sy, x2 * sx, y2 * sy)


def at_grid_size(ctx: Context, explanation: Explanation) -> Explanation:
    """``explanation`` (heatmaps at the view's size) with its heatmaps, box and image
    size at the grid copy's (:attr:`Context.grid`): (H, W) float maps shrunk by area
    averaging, the box scaled per axis (rounded sides make the two scales differ)."""
    (gh, gw), (vh, vw) = ctx.grid.shape[:2], ctx.view.shape[:2]
    if (gh, gw) == (vh, vw):
        return explanation
    maps = tuple(
        dataclasses.replace(m, heatmap=render.shrink(m.heatmap, GRID_MAX_SIDE))
        for m in explanation.maps
    )
    box = explanation.box_xyxy
    return dataclasses.replace(
        explanation,
        maps=maps,
        image_size=(gh, gw),
        box_xyxy=None if box is None else _scaled(box, gw / vw, gh / vh),
    )


class CancelledError(Exception):
    """Raised in a :func:`with_progress` worker that no run is waiting for any more."""


#: How long work that no run waits for goes on before it stops: a run interrupted by
#: a widget change is followed by a new run that often asks for the same work (another
#: detection or scale of the same D-RISE, another colour map), and must find it going.
ORPHAN_GRACE_S = 3.0


@dataclasses.dataclass
class _Job:
    """Work that runs (of any session) asked for under one key: how many of them wait
    for it, since when none does, and its progress, which each of their bars shows."""

    waiting: int = 0
    workers: int = 0
    orphaned_at: float | None = None
    done: int = 0
    total: int = 0


_JOBS: dict[object, _Job] = {}
_JOBS_LOCK = threading.Lock()


def _join(key: object) -> _Job:
    with _JOBS_LOCK:
        job = _JOBS.setdefault(key, _Job())
        job.waiting += 1
        job.workers += 1
        job.orphaned_at = None
        return job


def _leave(key: object, job: _Job, *, waiting: int = 0, workers: int = 0) -> None:
    with _JOBS_LOCK:
        job.waiting -= waiting
        job.workers -= workers
        if waiting and job.waiting == 0:
            job.orphaned_at = time.monotonic()
        if job.waiting == 0 and job.workers == 0 and _JOBS.get(key) is job:
            del _JOBS[key]


def with_progress(work, describe, key: object = None) -> object:
    """``work(progress)`` on a worker thread while this (the script's) thread draws a
    progress bar from what it reports, ``progress(done, total)``; its result, or its
    exception re-raised here.

    Streamlit calls stay on the script's thread and out of cached functions (whose
    element calls ``st.cache_data`` would replay). ``describe(done, total)`` is the
    bar's text. ``key`` names the work (hashable; what its cache depends on): runs of
    any session asking for the same key share one progress, and a later run's worker
    waits for the earlier one's result through the cache. When no run has waited for
    the key for :data:`ORPHAN_GRACE_S` seconds (every run that asked was interrupted
    by a widget change or a closed session), the worker's next ``progress`` call
    raises :class:`CancelledError`, so the work stops there and frees its slot.
    """
    from streamlit.runtime.scriptrunner import add_script_run_ctx

    key = key if key is not None else object()  # no key: shared with nobody
    job = _join(key)
    state: dict[str, object] = {}

    def progress(done: int, total: int) -> None:
        with _JOBS_LOCK:
            orphaned = job.orphaned_at
            if orphaned is not None and time.monotonic() - orphaned > ORPHAN_GRACE_S:
                raise CancelledError("no run waits for this work any more")
            if total:  # (0, 0): a check while waiting for a slot
                job.done, job.total = done, total

    def run() -> None:
        try:
            state["value"] = work(progress)
        except BaseException as exc:  # re-raised on the script's thread
            state["error"] = exc
        finally:
            _leave(key, job, workers=1)

    worker = add_script_run_ctx(threading.Thread(target=run, daemon=True))
    worker.start()
    try:
        bar = st.progress(0.0, text=describe(job.done, job.total))
        while worker.is_alive():
            worker.join(0.25)
            done, total = job.done, job.total
            bar.progress(min(1.0, done / total) if total else 0.0, text=describe(done, total))
    finally:
        # Also when a widget changed (Streamlit stops this run at its next element
        # call) or the session closed: if no other run takes the work up, it stops at
        # its next report instead of finishing for nobody while holding a slot.
        _leave(key, job, waiting=1)
    bar.empty()
    if "error" in state:
        raise state["error"]
    return state["value"]


def masks_text(title: str, done: int, total: int, what: str = "") -> str:
    """A black-box method's progress, e.g. ``"D-RISE: 120 of 500 masks"``."""
    where = f" ({what})" if what else ""
    if not total:
        return f"{title}{where}: starting (it waits for other heavy work to finish)…"
    return f"{title}{where}: {done:,} of {total:,} masks"


def explain_shown(
    ctx: Context, target: TargetSpec, method: str, scales: tuple[int, ...], batch: bool = True
) -> Explanation:
    """:meth:`Context.explain`, with a progress bar for a black-box method (D-RISE:
    masks done of all masks, from ``explain_many(progress=)``)."""
    if not methods.is_black_box(method):
        return ctx.explain(target, method, scales, batch)
    title = methods.title(method)
    return with_progress(
        lambda progress: ctx.explain(target, method, scales, batch, progress=progress),
        lambda done, total: masks_text(title, done, total),
        key=ctx.work_key(target, method),
    )


def chosen_layers(model_name: str, scales: tuple[int, ...]) -> tuple[tuple[int, str], ...]:
    """(scale, layer) pairs chosen on the Model page for ``model_name``, only for
    ``scales`` (choices are kept per model: layer names differ between models)."""
    chosen = st.session_state.get("layers", {}).get(model_name, {})
    return tuple(sorted((s, layer) for s, layer in chosen.items() if s in scales))


def context_or_stop(settings: Settings) -> Context:
    """The page's context; on bad input an ``st.error`` says why and the page stops."""
    if settings.image_bytes is None:
        st.info("Upload a photo in the sidebar (JPEG, PNG, WebP, BMP or TIFF), or pick a sample.")
        st.stop()
    try:
        return Context(settings)
    except YolocamError as exc:
        detail = str(exc).removeprefix("uploaded file: ")  # the library's name for bytes
        st.error(
            f"Cannot use {settings.image_name}: {detail}. Try another photo, or pick a sample."
        )
        st.stop()
    raise AssertionError("unreachable")


def notes_ui(ctx: Context) -> None:
    """Warnings about this photo and model: detections left out, a photo too small or
    too elongated for the network."""
    note = ctx.detections.note()
    if note:
        st.warning(note[0].upper() + note[1:] + ".", icon=":material/filter_alt:")
    warning = ctx.detector.image_warning(ctx.original_size)
    if warning:
        st.warning(warning, icon=":material/aspect_ratio:")


TARGET_KINDS = ("One detection", "A class", "Whole head output (article)")
#: TargetSpec kind of each choice of :data:`TARGET_KINDS`.
SPEC_KINDS = dict(zip(TARGET_KINDS, ("detection", "class", "seed"), strict=True))


def target_ui(
    ctx: Context, part: str = "both", kind: str | None = None, attribute: bool = False
) -> TargetSpec | str:
    """Choose one detection, one class, or the article's whole-output mode.

    The choice is shared by every page (the detection per image and model).
    ``part="kind"`` draws only the kind (and returns it), ``part="choice"`` only the
    detection or class for a given ``kind``; the default draws both. With
    ``attribute``, a detection target also gets the part of the prediction explained
    (:func:`attribute_ui`).
    """
    if part in ("both", "kind"):
        kinds = list(TARGET_KINDS if ctx.detections else TARGET_KINDS[1:])
        kind = choice(st.radio, "Explain", kinds, key="target_kind", default=TARGET_KINDS[0])
        if part == "kind":
            return kind
    if kind == "One detection":
        k = choice(
            st.selectbox,
            "Detection",
            range(len(ctx.detections)),
            key=ctx.detection_key,
            format_func=ctx.label,
            help="Or click a box's dot on the photo, or a row of the table.",
        )
        return TargetSpec("detection", int(k), attribute_ui() if attribute else "score")
    if kind == "A class":
        names = ctx.detector.class_names
        detected = list(dict.fromkeys(d.class_id for d in ctx.detections))
        order = detected + [c for c in range(len(names)) if c not in detected]
        k = remembered(ctx.detection_key, 0)
        if ctx.detections and 0 <= k < len(ctx.detections):  # the chosen detection's class
            order.insert(0, order.pop(order.index(ctx.detections[k].class_id)))
        c = choice(
            st.selectbox,
            "Class (detected ones first)",
            order,
            key="target_class",
            format_func=lambda i: f"{names[i]}{' (detected)' if i in detected else ''}",
        )
        return TargetSpec("class", int(c))
    st.caption("The article's choice: the sum of the whole raw output of each head.")
    return TargetSpec("seed")


def attribute_ui() -> str:
    """Which part of the detection's prediction is explained (``targets.ATTRIBUTES``:
    its class score, its objectness, or one coordinate of its box)."""
    return choice(
        st.selectbox,
        "Part of the prediction",
        list(ATTRIBUTES),
        key="target_attribute",
        default="score",
        format_func=lambda a: ATTRIBUTE_TITLES.get(a, a),
        help="What the map explains: the detection's class score (objectness × class "
        "probability, the default), its objectness alone (is there an object, whatever "
        "its class), or one coordinate of its decoded box (centre x, y, width, height: "
        "a value in pixels, not a strength).",
    )


def method_ui(ctx: Context, target: TargetSpec, key: str = "method") -> str:
    """The method for ``target``: only those that can explain it are offered (the
    others are named under the menu, with the library's reason and what to use
    instead); by default the target kind's (one detection: ODAM, a class: Grad-CAM,
    the whole head output: the article's), until the user picks another. D-RISE's
    settings are drawn under it while it is chosen (:func:`drise_ui`)."""
    offered, refused = methods.offered(target.build(ctx.detections))
    default = methods.kind_default(target.kind)
    name = choice(
        st.selectbox,
        "Method",
        offered,
        key=key,
        default=default,
        fallback=lambda options: default if default in options else options[0],
        follow_default=True,
        format_func=functools.partial(methods.method_label, kind=target.kind),
        help="What each method's map answers. The default follows the target: ODAM for "
        "one detection, Grad-CAM for a class, the article's for the whole head output.\n\n"
        + methods.method_help(offered, target.kind),
    )
    refused_ui(refused)
    if methods.is_black_box(name):
        drise_ui()
    return name


def methods_ui(
    target,
    key: str,
    default: list[str] | None,
    drise_help: str,
    fallback=None,
) -> tuple[list[str], dict[str, str]]:
    """Several methods for one target (Compare, Faithfulness): a multiselect of the fast
    methods that accept it and an opt-in toggle for the black-box ones (D-RISE: one
    forward pass per mask, seconds to minutes), with its settings while on.

    Args:
        target: the built :class:`~yolocam_core.targets.Target`.
        key: where the choice is remembered (``"<key>_drise"`` for the toggle).
        default: the methods chosen before any choice (None: every fast one).
        drise_help: the toggle's help.
        fallback: see :func:`yolocam_app.state.choice`.

    Returns:
        (the chosen methods, black-box ones last; {refused method: the reason}).
    """
    offered, refused = methods.offered(target)
    fast = [m for m in offered if not methods.is_black_box(m)]
    slow = [m for m in offered if methods.is_black_box(m)]
    chosen = choice(
        st.multiselect,
        "Methods",
        fast,
        key=key,
        default=fast if default is None else [m for m in dict.fromkeys(default) if m in fast],
        fallback=fallback,
        multi=True,
        format_func=methods.title,  # short chips: every one stays visible
        help=methods.method_help(fast, target.kind),
    )
    drise = kept(
        st.toggle,
        "D-RISE too (black box, slow)",
        key=f"{key}_drise",
        default=False,
        disabled=not slow,
        help=drise_help,
    )
    if drise and slow:
        drise_ui()
    return list(chosen) + (slow if drise else []), refused


def refused_ui(refused: dict[str, str]) -> None:
    """A caption naming the methods not offered for this target, and why (with the
    menu: not in a first view, which draws no control)."""
    if refused and not first_view.active():
        st.caption("Not offered for this target:  \n" + "  \n".join(methods.refusal_lines(refused)))


def drise_ui() -> tuple[tuple[str, int], ...]:
    """D-RISE's mask count and seed (remembered for every page; part of the cache key).
    Returns the options as :func:`yolocam_app.methods.drise_options` reads them."""
    choice(
        st.select_slider,
        "D-RISE masks",
        list(methods.DRISE_MASKS),
        key=methods.DRISE_MASKS_KEY,
        default=methods.DRISE_DEFAULT_MASKS,
        fallback=lambda options: methods.drise_options()[0][1],
        format_func=lambda n: f"{n:,}",
        help="One forward pass of the model per mask (the paper used 5,000; more masks, "
        "smoother maps). Every detection of the photo is explained from the same masks.",
    )
    kept(
        st.number_input,
        "D-RISE seed",
        key=methods.DRISE_SEED_KEY,
        default=methods.DRISE_DEFAULT_SEED,
        min_value=0,
        max_value=2**31 - 1,
        step=1,
        help="The random masks are drawn from this seed: the same seed, the same maps.",
    )
    return methods.drise_options()


def choose_detection(ctx: Context, k: int) -> None:
    """Make detection ``k`` the target (a click on the photo or the table)."""
    if 0 <= k < len(ctx.detections):
        prefer(ctx.detection_key, k)
        prefer("target_kind", TARGET_KINDS[0])


def chosen_detection(ctx: Context) -> int | None:
    """The chosen detection's index when the target kind is one detection."""
    if remembered("target_kind", TARGET_KINDS[0]) != TARGET_KINDS[0] or not ctx.detections:
        return None
    k = remembered(ctx.detection_key, 0)
    return k if 0 <= k < len(ctx.detections) else 0


def scales_ui(ctx: Context) -> tuple[int, ...]:
    """All scales side by side, or one."""
    heads = ctx.detector.heads
    mode = choice(
        st.radio, "Scales", ["All side by side", "One"], key="scales_mode", horizontal=False
    )
    if mode == "All side by side":
        return tuple(range(len(heads)))
    one = choice(
        st.selectbox,
        "Scale",
        range(len(heads)),
        key="scales_one",
        format_func=lambda s: heads[s].label,
    )
    return (int(one),)


def explanation_heading(
    explanation: Explanation, about_method: bool = True, custom: Sequence[int] = ()
) -> None:
    """``"<method> · <target>"`` (``"every method · <target>"`` without
    ``about_method``, for a page of several methods) and, under it, what "score"
    means, the normalisation, (``about_method``) what the method's maps are
    (:func:`method_caption`) and which ``custom`` scales use a layer chosen on the
    Model page."""
    method = explanation.method if about_method else "every method"
    st.subheader(f"{method} · {explanation.target}")
    note = explanation.score_note or ""
    st.caption(
        f"{note[0].upper() + note[1:] if note else ''}. "
        f"{render.norm_caption(explanation.norm, explanation).capitalize()}."
        + (
            " ★ marks the scale that predicted the detection."
            if explanation.own_scale is not None
            else ""
        )
    )
    about = method_caption(explanation) if about_method else ""
    if about:
        st.caption(about)
    if custom:
        layers = ", ".join(
            f"{m.label.split(' · ')[0]} at {m.layer}" for m in explanation.maps if m.scale in custom
        )
        st.caption(
            f":orange[**Custom layers**] (Model page): {layers}, not the methods' own. "
            "Choose the defaults there to go back."
        )


def method_caption(explanation: Explanation) -> str:
    """What a method's maps are, when it matters for reading them: a target-independent
    method's warning, a black-box method's inputs (e.g. ``"input (500 masks 16×16
    p=0.5 seed 0)"``)."""
    name = explanation.method
    if render.ignores_target(name):
        return (
            f":orange[**{methods.title(name)} ignores the target**]: the same map for every "
            "box, class and score; it shows what the layer responds to, not why this "
            "target was predicted."
        )
    if methods.is_black_box(name) and explanation.maps:
        return (
            f"{methods.title(name)} maps from {explanation.maps[0].layer}: one per head "
            "(which image regions keep that head finding the detection), at a quarter of "
            "the network input's resolution."
        )
    return ""


def map_caption(
    explanation: Explanation, scale_map, label: bool = True, custom: Sequence[int] = ()
) -> str:
    """A scale's caption, marked when the method ignores the target (see
    :func:`yolocam_core.render.map_caption`) and, for a scale in ``custom``, with the
    layer chosen on the Model page."""
    caption = render.map_caption(explanation, scale_map, label=label)
    if scale_map.scale in custom:
        caption += f" · custom layer {scale_map.layer}"
    return caption


def custom_scales(ctx: Context, explanation: Explanation) -> tuple[int, ...]:
    """The explanation's scales explained at a layer chosen on the Model page."""
    chosen = ctx.layers(tuple(m.scale for m in explanation.maps))
    return tuple(scale for scale, _ in chosen)


#: Wider than this (width / height), the photo and its overlays are stacked, each the
#: page's width, instead of side by side (a 4000×200 photo was a 190×10 sliver there).
STACK_ASPECT = 3.0


def photo_and_overlay_cells(image: np.ndarray, n: int) -> tuple[list, object]:
    """Where the photo and ``n`` overlays go, and the colour bar: one row of columns,
    or for a photo wider than :data:`STACK_ASPECT` one full-width row each."""
    h, w = image.shape[:2]
    if w / max(h, 1) > STACK_ASPECT:
        cells = [st.container() for _ in range(n + 1)]
        return cells, st.columns([1, 6])[0]
    row = st.columns([1] * (n + 1) + [0.35])
    return list(row[:-1]), row[-1]


def display_width(image: np.ndarray, max_height: int = 480) -> int | str:
    """``"stretch"``, or a width in pixels that keeps a tall image under ``max_height``."""
    h, w = image.shape[:2]
    if h / max(w, 1) > 1.6:
        return max(40, int(max_height * w / h))
    return "stretch"


#: JPEG quality of the images the page shows (Streamlit encodes arrays at 100: about
#: 5× the bytes for no visible difference, and more to send and decode per change).
JPEG_QUALITY = 88
#: The photo and the overlays in a page's grid have at most this many pixels a side:
#: about twice the 230–330 CSS pixels of a grid column on a laptop screen, sharp at a
#: device pixel ratio of 2. The interactive view keeps :data:`VIEW_MAX_SIDE` (it zooms).
#: A/B in the real browser (two servers, changes taken in turn, 14 each, 2 cores): a
#: target change took a median 0.161 s (max 0.242) at 560 against 0.194 s (max 0.308)
#: at 720.
GRID_MAX_SIDE = 560


def page_image(image: np.ndarray, max_side: int = GRID_MAX_SIDE) -> str:
    """(H, W, 3) uint8 RGB -> a JPEG ``data:`` URL, for ``st.image``, at most
    ``max_side`` pixels a side (shrunk with area averaging).

    Inline, the picture travels in the page update itself and is drawn with it. Given
    as bytes, Streamlit sends a link and the browser asks the server for the picture
    afterwards, while the rerun is still busy. Timed in the page on 2026-11-30 (two
    cores, click to new overlays loaded): as links 0.45–0.6 s, the picture requests
    waiting 0.15–0.4 s for the server; inline 0.14–0.27 s.
    """
    return data_uri(render.shrink(image, max_side), "jpeg", JPEG_QUALITY)


def overlays_ui(ctx: Context, explanation: Explanation, columns=None, legend=None) -> None:
    """One column per scale: the overlay (weak and own scales marked) captioned with its
    scale, score and share; a colour bar in ``legend``."""
    s = ctx.settings
    grid = at_grid_size(ctx, explanation)
    panels = render.explanation_overlays(ctx.grid, grid, s.colormap, s.opacity)
    columns = columns if columns is not None else st.columns(len(panels))
    width = display_width(ctx.view)
    custom = custom_scales(ctx, explanation)
    for column, panel, m in zip(columns, panels, explanation.maps, strict=True):
        caption = map_caption(explanation, m, custom=custom)
        column.image(page_image(panel), caption=caption, width=width)
    if legend is not None:
        legend.image(
            colorbar_image(s.colormap, explanation.norm),
            width="stretch",
            output_format="PNG",
        )


@st.cache_data(max_entries=8, show_spinner=False)
def colorbar_image(colormap: str, norm: str) -> np.ndarray:
    return render.colorbar(240, colormap, title="shared" if norm == "shared" else "per map")


def detections_table(ctx: Context, chosen: int | None, key: str) -> None:
    """The detections, fully visible; a click on a row explains that detection."""
    if not ctx.detections:
        st.info("No detection at this score threshold: lower it, or explain a class.")
        return
    rows = [
        {
            "#": f"▶ {k}" if k == chosen else str(k),
            "class": d.class_name,
            "score": round(d.score, 3),
            "scale": ctx.detector.heads[d.scale].label.split(" ·")[0],
            "cell": f"{d.cell[0]}, {d.cell[1]}",
            "box (x1, y1, x2, y2)": ", ".join(f"{v:.0f}" for v in d.box_xyxy),
        }
        for k, d in enumerate(ctx.detections)
    ]
    # A new key whenever the choice changes: the table never shows a stale selection.
    table_key = f"{key}:{chosen}:{len(rows)}"
    st.dataframe(
        rows,
        hide_index=True,
        width="stretch",
        height=min(36 * (len(rows) + 1) + 3, 320),
        key=table_key,
        on_select=functools.partial(_table_clicked, ctx, table_key),
        # A click on any cell chooses its row, as does the row's checkbox.
        selection_mode=["single-row", "single-cell"],
        column_config={
            "#": st.column_config.TextColumn("#", width=50),
            "class": st.column_config.TextColumn("class", width="small"),
            "score": st.column_config.NumberColumn("score", width=60, format="%.3f"),
            "scale": st.column_config.TextColumn("scale", width=60),
            "cell": st.column_config.TextColumn("cell", width=60),
            "box (x1, y1, x2, y2)": st.column_config.TextColumn("box (x1, y1, x2, y2)"),
        },
    )


def _table_clicked(ctx: Context, key: str) -> None:
    selection = st.session_state[key].selection
    rows = list(selection.rows) or [row for row, _ in selection.cells]
    if rows:
        choose_detection(ctx, int(rows[0]))


def static_photo(ctx: Context, chosen: int | None, caption: str | None = None, width="stretch"):
    """The photo with its detections (the chosen one highlighted), as an image."""
    (gh, gw), (h, w) = ctx.grid.shape[:2], ctx.image.shape[:2]  # drawn at the grid's size
    boxes = [
        dataclasses.replace(d, box_xyxy=_scaled(d.box_xyxy, gw / w, gh / h)) for d in ctx.detections
    ]
    # Labels about 1/22 of the photo's side: readable where it is drawn small.
    font = max(12, round(max(ctx.grid.shape[:2]) / 22))
    st.image(
        page_image(render.draw_detections(ctx.grid, boxes, highlight=chosen, font_size=font)),
        caption=caption,
        width=width,
    )


def interactive_scale_ui(explanation: Explanation, heads) -> int:
    """The interactive view's scale: it opens on the detection's own scale (else the
    strongest), remembered per target."""
    scales = [m.scale for m in explanation.maps]

    def fallback(options):
        if explanation.own_scale in options:
            return explanation.own_scale
        strongest = max(explanation.maps, key=lambda m: m.relative or 0.0)
        return strongest.scale

    def label(s: int) -> str:
        m = explanation.by_scale(s)
        marks = " ★ own scale" if s == explanation.own_scale else ""
        marks += " · weak" if m.weak else ""
        return heads[s].label + marks

    return choice(
        st.selectbox,
        "Map shown",
        scales,
        key=f"interactive_scale:{explanation.method}:{explanation.target}",
        fallback=fallback,
        default=fallback(scales),
        format_func=label,
    )


def _box_clicked(ctx: Context, key: str) -> None:
    state = st.session_state.get(key)
    k = getattr(state, "clicked", None)
    if k is None and hasattr(state, "get"):
        k = state.get("clicked")
    if isinstance(k, (int, float)) and not isinstance(k, bool):
        choose_detection(ctx, int(k))


def interactive_ui(ctx: Context, explanation: Explanation, chosen: int | None = None) -> None:
    """The interactive view of one scale's heatmap (opens on the own scale), with every
    detection's box: a click on one explains it (:mod:`yolocam_app.heatview`)."""
    from yolocam_app import heatview

    heads = ctx.detector.heads
    scale = interactive_scale_ui(explanation, heads)
    m = explanation.by_scale(scale)
    head = heads[m.scale]
    letterbox = ctx.detector.letterbox_for(ctx.image.shape[:2])
    f = ctx.view_scale

    def to_network(boxes):
        return letterbox.to_network(np.asarray(boxes, float) / f)

    if m.weak:
        st.caption(
            f":orange[**{render.weak_text(m)}**]: this map shows what little this scale adds."
        )
    s = ctx.settings
    boxes = []
    for k, d in enumerate(ctx.detections):
        x1, y1, x2, y2 = (v * f for v in d.box_xyxy)
        r, g, b = render.PALETTE[d.class_id % len(render.PALETTE)]
        boxes.append(
            {
                "x1": x1,
                "y1": y1,
                "x2": x2,
                "y2": y2,
                "label": ctx.label(k),
                "colour": f"#{r:02x}{g:02x}{b:02x}",
                "chosen": k == chosen,
                "dim": chosen is not None and k != chosen,
            }
        )
    if chosen is None and explanation.box_xyxy is not None:  # a target box, not a detection
        x1, y1, x2, y2 = explanation.box_xyxy
        boxes.append({"x1": x1, "y1": y1, "x2": x2, "y2": y2, "label": explanation.target,
                      "colour": "#ffffff", "chosen": True, "dim": False})  # fmt: skip
    heatview.heat_view(
        "heatview",
        data_uri(render.overlay(ctx.view, m.heatmap, s.colormap, s.opacity)),
        ctx.view.shape[:2],
        heatview.heat_grid(m.heatmap, head.grid, to_network, head.stride),
        boxes,
        view_scale=f,
        on_click=functools.partial(_box_clicked, ctx, "heatview"),
        alt=f"{explanation.method} heatmap at {m.label} over the photo",
    )
