"""yolocam web app: `bash scripts/run-app.sh` (or `python -m yolocam_app.serve`, or
`streamlit run app.py`; see yolocam_app/serve.py for the difference).

The entrypoint of every page: page config, the shared sidebar (drawn here, once per
run, so that its widgets keep their state on every page), then the page chosen in
the sidebar (``app_pages/``, see ``yolocam_app.sidebar.PAGES``).
"""

from __future__ import annotations

from yolocam_core.runtime import start_tensorflow

# TensorFlow's native start-up lines (CUDA probing on a machine without a GPU) kept
# out of the server's log; once per process, later reruns return at once.
start_tensorflow()

from yolocam_app import first_view, heap, sidebar, state  # noqa: E402

state.new_run()
page, explore = sidebar.navigation()
# A new session's Explore page: the heatmaps, then the controls, then the rest
# (first_view).
first_view.begin(explore)
try:
    sidebar.setup()
    page.run()
finally:
    first_view.finish()
# Once the default model has served a whole run: Streamlit's collections after every
# run (0.34 s over TensorFlow's objects) skip the long-lived heap from then on.
heap.freeze_after_first_model_run()
