#!/usr/bin/env bash
# Set up (first run only) and run the whole test suite: ruff, then pytest.
# Extra arguments go to pytest, e.g. `scripts/test.sh -k darknet`.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh dev
bash scripts/test-deps.sh
.venv/bin/ruff check .
exec .venv/bin/python -m pytest "$@"
