"""Keep Streamlit's garbage collection after every script run cheap: freeze the
long-lived heap once the model is in memory.

After every script run, fragment reruns included, Streamlit collects garbage twice:
``gc.collect(2)`` (its ``runner.postScriptGC`` option) and, because Keras is imported,
``keras.backend.clear_session()``, which collects again. With TensorFlow, Keras and a
model in memory a full collection walks about 400,000 objects: 0.17 s each on the
reference machine, 0.34 s per run, holding the GIL. The browser asks for the new
overlays just then, so their requests waited behind it.

:func:`freeze_after_first_model_run` moves every object alive at the end of the first
whole run that used a model (modules, the model and its compiled functions) into the
interpreter's permanent generation (:func:`gc.freeze`), which collections skip: both
then take about a millisecond. Those objects stay alive for the process's life anyway;
objects made later (sessions, results, uploaded models) are collected as before.
"""

from __future__ import annotations

import gc
import logging
import threading

_log = logging.getLogger(__name__)
_lock = threading.Lock()
_model_loaded = False
_frozen = False


def model_loaded() -> None:
    """Note that a model is now in memory (called where models are built)."""
    global _model_loaded
    _model_loaded = True


def freeze_after_first_model_run() -> int:
    """At the end of a whole script run: the first time a model has been loaded,
    collect once and freeze every object then alive; otherwise nothing.

    Returns:
        How many objects were frozen (0 when nothing was done).
    """
    global _frozen
    with _lock:
        if _frozen or not _model_loaded:
            return 0
        _frozen = True
        gc.collect()
        gc.freeze()
    count = gc.get_freeze_count()
    _log.info("froze %d long-lived objects: collections after each run skip them", count)
    return count
