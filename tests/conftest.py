"""Shared fixtures. Everything is offline: the default model comes from its PyPI
package, the reference cfgs from Debian's `darknet` package (scripts/test-deps.sh)."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
DARKNET_CFG_DIR = ROOT / ".cache" / "darknet" / "usr" / "share" / "darknet" / "cfg"

# Keep the converted-model cache of the tests inside the repo's ignored .cache/, even
# when the user has their own XDG_CACHE_HOME (the tests must not write there). Tests
# that start servers pass their own environment (test_browser: a cold cache).
os.environ["XDG_CACHE_HOME"] = str(ROOT / ".cache" / "xdg")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


@pytest.fixture(autouse=True)
def _main_module_restored():
    """AppTest runs ``app.py`` as ``__main__`` and leaves it in ``sys.modules``; a process
    pool's spawned workers (batch's local engine) would then import ``app.py`` as their
    main module. Each test gets the real one back."""
    main = sys.modules["__main__"]
    yield
    sys.modules["__main__"] = main


@pytest.fixture(scope="session")
def darknet_cfg_dir() -> Path:
    """Folder with Debian's Darknet cfgs (yolov3.cfg, yolov3-tiny.cfg, yolov3-spp.cfg)."""
    if not (DARKNET_CFG_DIR / "yolov3.cfg").is_file():
        pytest.fail(
            f"reference cfgs missing under {DARKNET_CFG_DIR}; run scripts/test-deps.sh",
            pytrace=False,
        )
    return DARKNET_CFG_DIR


@pytest.fixture(scope="session")
def detector():
    """The default model (yolov4-tiny), converted once per cache folder."""
    from yolocam_core import load_detector

    return load_detector("yolov4-tiny")


@pytest.fixture(scope="session")
def samples() -> dict[str, Path]:
    from yolocam_core import sample_images

    return sample_images()


@pytest.fixture(scope="session")
def sample_rgb(samples) -> dict[str, np.ndarray]:
    from yolocam_core import load_image

    return {name: load_image(path) for name, path in samples.items()}


@pytest.fixture(scope="session")
def default_model_files():
    """(cfg, weights, names) of the default model inside its package."""
    from yolocam_core.models.zoo import zoo_files

    files = zoo_files("yolov4-tiny")
    return files.cfg, files.weights, files.names
