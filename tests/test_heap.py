"""The long-lived heap is frozen once a model has served a whole run (yolocam_app.heap),
so that Streamlit's collections after every run skip TensorFlow's objects."""

from __future__ import annotations

import gc
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from yolocam_app import heap

APP = str(Path(__file__).resolve().parents[1] / "app.py")


@pytest.fixture
def fresh(monkeypatch):
    """The module as in a new server process (nothing loaded, nothing frozen)."""
    gc.unfreeze()  # an earlier test may have run the app in this process
    monkeypatch.setattr(heap, "_model_loaded", False)
    monkeypatch.setattr(heap, "_frozen", False)
    return heap


def test_nothing_is_frozen_before_a_model_is_loaded(fresh):
    before = gc.get_freeze_count()
    assert fresh.freeze_after_first_model_run() == 0
    assert gc.get_freeze_count() == before


def test_the_first_run_after_a_model_is_loaded_freezes_once(fresh):
    fresh.model_loaded()
    frozen = fresh.freeze_after_first_model_run()
    assert frozen == gc.get_freeze_count() and frozen > 0
    assert fresh.freeze_after_first_model_run() == 0  # once per process
    assert gc.get_freeze_count() == frozen


def test_the_app_freezes_the_model_after_its_first_run(fresh):
    from yolocam_app import resources

    resources.zoo_explainer.clear()  # loaded again, as in a new server
    at = AppTest.from_file(APP, default_timeout=180)
    at.session_state["page_drawn"] = True  # no JavaScript here: see yolocam_app.first_view
    at.run()
    assert not at.exception, at.exception
    # the default model (TensorFlow, Keras, its compiled functions): far more than
    # the few thousand objects of an interpreter alone
    assert fresh._frozen and gc.get_freeze_count() > 100_000
