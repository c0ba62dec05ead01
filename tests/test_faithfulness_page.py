"""The Faithfulness page, headless (streamlit.testing.v1.AppTest) on the real model."""

from __future__ import annotations

from pathlib import Path

import pytest
from app_helpers import widget
from streamlit.testing.v1 import AppTest

APP = str(Path(__file__).resolve().parents[1] / "app.py")
PAGE = "app_pages/faithfulness.py"
TIMEOUT = 240  # the first run loads the model and measures two methods × two scales

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def page() -> AppTest:
    at = AppTest.from_file(APP, default_timeout=TIMEOUT)
    at.session_state["page_drawn"] = True  # no JavaScript here: see yolocam_app.first_view
    at.run()
    assert not at.exception, at.exception
    at.switch_page(PAGE)
    # fewer steps keep the test short; the page's default is DEFAULT_STEPS
    at.session_state["faith_steps"] = 8
    at.run()
    assert not at.exception, at.exception
    return at


def charts(at: AppTest) -> list:
    return at.get("plotly_chart")


def test_page_shows_curves_table_and_reading(page):
    assert page.title[0].value == "Faithfulness"
    assert not page.error
    assert len(charts(page)) == 2  # deletion and insertion
    table = page.dataframe[0].value
    assert list(table["method"].unique()) == ["odam", "gradcam"]  # instance, then class
    assert len(table) == 2 * 2  # methods × scales
    assert {"deletion AUC", "random deletion", "insertion AUC", "random insertion"} <= set(
        table.columns
    )
    assert ((table["deletion AUC"] >= 0) & (table["insertion AUC"] <= 1)).all()
    assert (table["scale"].str.endswith("★")).sum() == 2  # one own scale per method
    weak = table["weak"] == "0.21% of top"
    assert list(table["scale"][weak]) == ["26×26", "26×26"]  # marked, per method
    assert (table["weak"][~weak] == "").all()
    text = page.success[0].value
    assert text.startswith("At 13×13 · stride 32") and "random" in text


def test_methods_detection_and_scale_change_the_view(page):
    widget(page, "multiselect", "faith_methods").set_value(["eigencam"]).run()
    assert not page.exception and not page.error
    assert list(page.dataframe[0].value["method"]) == ["eigencam", "eigencam"]
    widget(page, "selectbox", "target_detection:").set_value(3).run()  # bus.jpg's bus
    assert "bus" in page.markdown[-1].value or any("bus" in m.value for m in page.markdown)
    widget(page, "radio", "faith_scale:").set_value(1).run()
    assert page.success[0].value.startswith("At 26×26 · stride 16")
    assert len(charts(page)) == 2
    widget(page, "multiselect", "faith_methods").set_value([]).run()
    assert page.info and "at least one method" in page.info[0].value
    assert charts(page) == []


def test_no_detection_says_what_to_do(page):
    page.sidebar.slider(key="score").set_value(0.95).run()
    widget(page.sidebar, "selectbox", "sample").set_value("zidane.jpg").run()
    assert not page.exception
    assert page.info and "No detection" in page.info[0].value
    page.sidebar.slider(key="score").set_value(0.25).run()
    widget(page, "multiselect", "faith_methods").set_value(["gradcam"]).run()
    # zidane.jpg has 2 detections: the page survives the earlier choice of detection #3
    assert not page.exception and not page.error and not page.info
    assert len(charts(page)) == 2
    assert list(page.dataframe[0].value["method"]) == ["gradcam", "gradcam"]
