"""The app's method menus: what each target is offered, the default per target kind,
refusals named with the library's reason, the attribute, and D-RISE with its options
and progress (headless, streamlit.testing.v1.AppTest, the real default model)."""

from __future__ import annotations

from pathlib import Path

import pytest
from app_helpers import heading, overlay_captions, widget
from streamlit.testing.v1 import AppTest

from yolocam_app import methods
from yolocam_core.cams import method_names
from yolocam_core.targets import ClassTarget, SeedTarget

APP = str(Path(__file__).resolve().parents[1] / "app.py")


@pytest.fixture
def app() -> AppTest:
    at = AppTest.from_file(APP, default_timeout=240)
    at.session_state["page_drawn"] = True  # no JavaScript here: see yolocam_app.first_view
    at.run()
    assert not at.exception, at.exception
    return at


def test_offered_and_refused_follow_the_library():
    """Pure logic (no Streamlit): the seed target refuses the ReLU-ed gradient
    methods, a class target refuses the instance-only ones, with the library's text."""
    offered, refused = methods.offered(SeedTarget())
    assert "seed" in offered and "gradcam" in refused and "gradcam" not in offered
    assert "use method seed" in refused["gradcam"]
    assert set(offered) | set(refused) == set(method_names(black_box=True))
    lines = methods.refusal_lines(refused)
    assert any("Grad-CAM" in line for line in lines)
    offered_class, _ = methods.offered(ClassTarget(0))
    assert "gradcam" in offered_class
    assert methods.kind_default("detection") == "odam"
    assert methods.kind_default("class") == "gradcam"
    assert methods.kind_default("seed") == "seed"
    assert methods.method_label("odam").startswith("ODAM — this one detection")
    assert "black box" in methods.method_label("drise")


def test_menu_offers_only_what_explains_the_target_and_the_default_follows_the_kind(app):
    method = widget(app, "selectbox", "method")
    assert method.value == "odam" and heading(app).startswith("odam · person")
    assert "drise" in method.options or any("D-RISE" in o for o in method.options)
    widget(app, "radio", "target_kind").set_value("Whole head output (article)").run()
    method = widget(app, "selectbox", "method")
    assert method.value == "seed" and heading(app).startswith("seed · whole head output")
    labels = " ".join(method.options)
    assert "Grad-CAM —" not in labels  # refused for this target: not in the menu ...
    refused = [c.value for c in app.caption if c.value.startswith("Not offered for this target")]
    assert refused and "Grad-CAM" in refused[0] and "seed" in refused[0]  # ... but named
    widget(app, "radio", "target_kind").set_value("A class").run()
    assert widget(app, "selectbox", "method").value == "gradcam"
    assert heading(app).startswith("gradcam · class ")
    # A user's choice is kept across target kinds that offer it ...
    widget(app, "selectbox", "method").set_value("layercam").run()
    widget(app, "radio", "target_kind").set_value("One detection").run()
    assert heading(app).startswith("layercam · ")
    # ... and picking the default again follows the kind's default from then on.
    widget(app, "selectbox", "method").set_value("odam").run()
    widget(app, "radio", "target_kind").set_value("A class").run()
    assert heading(app).startswith("gradcam · class ")
    assert not app.exception and not app.error


def test_attribute_changes_what_is_explained(app):
    widget(app, "selectbox", "target_attribute").set_value("objectness").run()
    assert heading(app).startswith("odam · person") and "objectness" in heading(app)
    notes = " ".join(c.value for c in app.caption)
    assert "objectness" in notes
    widget(app, "selectbox", "target_attribute").set_value("score").run()
    assert "objectness" not in heading(app)
    assert not app.exception and not app.error


def test_drise_on_explore_with_its_options(app, monkeypatch):
    """D-RISE with the remembered mask count (part of the cache key: the caption names
    it), computed on a worker that reports progress to the page's bar."""
    from yolocam_core.explainer import Explainer

    reports = []
    original = Explainer.explain_many

    def explain_many(self, *args, progress=None, **kwargs):
        if progress is not None:

            def spy(done, total):
                reports.append((done, total))
                progress(done, total)

            return original(self, *args, progress=spy, **kwargs)
        return original(self, *args, **kwargs)

    monkeypatch.setattr(Explainer, "explain_many", explain_many)
    app.session_state[methods.DRISE_MASKS_KEY] = 100  # before choosing it: one run
    widget(app, "selectbox", "method").set_value("drise").run()
    assert not app.exception and not app.error, [e.value for e in app.error]
    assert widget(app, "select_slider", methods.DRISE_MASKS_KEY).value == 100
    assert heading(app).startswith("drise · person")
    assert len(overlay_captions(app)) == 2  # a map per head, from the same masks
    captions = " ".join(c.value for c in app.caption)
    assert "D-RISE maps from" in captions and "100 masks" in captions
    assert reports and reports[-1] == (100, 100)
    # Another seed: another map (not the cached one).
    app.session_state[methods.DRISE_SEED_KEY] = 7
    app.run()
    assert "seed 7" in " ".join(c.value for c in app.caption)


def test_drise_is_opt_in_on_compare(app):
    app.session_state[methods.DRISE_MASKS_KEY] = 100
    app.switch_page("app_pages/compare_methods.py").run()
    rows = [m.value for m in app.markdown if m.value.startswith("**D-RISE")]
    assert not rows  # off by default: slow
    widget(app, "toggle", "compare_methods_drise").set_value(True).run()
    assert not app.exception and not app.error, [e.value for e in app.error]
    rows = [m.value for m in app.markdown if m.value.startswith("**D-RISE")]
    assert len(rows) == 1
    panels = [c for i in app.get("image") for c in i.captions if c.startswith("score ")]
    assert len(panels) == 8 * 2  # seven fast methods and D-RISE, two scales each


def test_method_labels_say_what_the_map_answers_for_the_target_kind():
    assert methods.method_label("odam") == "ODAM — this one detection (instance)"
    for_class = methods.method_label("odam", "class")
    assert "this one detection" not in for_class and "every instance" in for_class
    assert methods.method_label("gradcam", "class").endswith("(every instance lights up)")
    assert methods.method_label("seed", "seed").endswith("— the whole head output")
    assert methods.method_label("eigencam", "class").endswith("ignores the target")


def test_an_interrupted_run_stops_its_d_rise_worker(monkeypatch):
    """A widget change stops the script's run at its next element call (here: the
    progress bar raising, as Streamlit's rerun does); the worker computing D-RISE must
    stop at its next report, not finish for nobody while holding the slow slot."""
    import threading
    import time

    from yolocam_app import views

    class RerunError(Exception):
        pass

    class Bar:
        def progress(self, *args, **kwargs):
            raise RerunError

        def empty(self):
            pass

    monkeypatch.setattr(views.st, "progress", lambda *args, **kwargs: Bar())
    monkeypatch.setattr(views, "ORPHAN_GRACE_S", 0.2)
    reported, stopped = [], threading.Event()

    def work(progress):
        try:
            for done in range(1, 2001):
                time.sleep(0.005)  # one batch of masks
                progress(done, 2000)
                reported.append(done)
        finally:
            stopped.set()

    with pytest.raises(RerunError):
        views.with_progress(work, lambda done, total: f"{done} of {total}")
    assert stopped.wait(10)
    assert len(reported) < 2000  # stopped part-way (it would take 10 s to finish)


def test_work_a_new_run_asks_for_again_goes_on_and_is_computed_once(monkeypatch):
    """Choosing another detection (or scale, or colour map) during a D-RISE interrupts
    the run, and the next run asks for the same cached work: it must find it going
    (its worker waits on the cache's lock) instead of restarting it from zero; a run
    asking for other work does not keep it alive."""
    import threading
    import time

    from yolocam_app import views

    class RerunError(Exception):
        pass

    class Bar:
        def __init__(self, interrupt: bool):
            self.interrupt = interrupt
            self.shown = []

        def progress(self, value, text=""):
            if self.interrupt:
                raise RerunError
            self.shown.append(text)

        def empty(self):
            pass

    bars = iter([Bar(True), Bar(False)])
    monkeypatch.setattr(views.st, "progress", lambda *args, **kwargs: next(bars))
    monkeypatch.setattr(views, "ORPHAN_GRACE_S", 0.5)
    lock, cache, computed = threading.Lock(), {}, []

    def cached(progress):  # as st.cache_data: one computation per key, others wait
        with lock:
            if "value" not in cache:
                computed.append(1)
                for done in range(1, 301):  # 3 s: well past the grace period
                    time.sleep(0.01)
                    progress(done, 300)
                cache["value"] = "maps"
            return cache["value"]

    key = ("explain", "model", "image", "drise")
    with pytest.raises(RerunError):
        views.with_progress(cached, lambda done, total: f"{done} of {total}", key=key)
    time.sleep(0.3)  # the next run starts within the grace period
    assert views.with_progress(cached, lambda done, total: f"{done} of {total}", key=key)
    assert computed == [1] and cache["value"] == "maps"
    assert views._JOBS == {}  # nothing left behind

    # Interrupted, and no run asks for the same work again: it stops part-way.
    cache.clear()
    computed.clear()
    bars = iter([Bar(True)])
    finished = threading.Event()

    def watched(progress):
        try:
            return cached(progress)
        finally:
            finished.set()

    with pytest.raises(RerunError):
        views.with_progress(watched, lambda done, total: "", key=key)
    assert finished.wait(10)
    assert computed == [1] and "value" not in cache  # cancelled, nothing cached
    time.sleep(0.1)
    assert views._JOBS == {}


def test_work_nobody_wants_gives_up_its_place_in_the_slot_queue():
    """A cancelled D-RISE still waiting for the server's slow slot must not take it
    (and run a batch) once the slot frees: ``check`` is polled while waiting."""
    from yolocam_app import resources

    calls = []

    def check(done, total):
        calls.append((done, total))
        raise RuntimeError("nobody waits")

    with resources.slow("first"):  # another session's D-RISE holds the slot
        with pytest.raises(RuntimeError, match="nobody waits"):
            with resources.slow("second", check):
                pytest.fail("the slot was taken for work nobody wants")
    assert calls == [(0, 0)]
    with resources.slow("third"):  # every slot was given back
        pass
