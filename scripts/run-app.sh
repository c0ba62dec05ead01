#!/usr/bin/env bash
# Set up (first run only) and launch the web app on the default model.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh app
# `streamlit run app.py` with TCP_NODELAY on the server socket (yolocam_app/serve.py).
exec .venv/bin/python -m yolocam_app.serve "$@"
