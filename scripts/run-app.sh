#!/usr/bin/env bash
# Set up (first run only) and launch the web app on the default model.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh app
exec .venv/bin/streamlit run app.py "$@"
