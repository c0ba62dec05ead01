#!/usr/bin/env bash
# Which method answers "why this box?": pointing game, instance rate, deletion and
# insertion against a random map, the model-randomisation check and agreement with
# D-RISE, per method, on the multi-instance evaluation photos (fetched first).
# Extra arguments go to bench/eval_methods.py, e.g. --masks 500.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh dev
bash scripts/fetch-evalset.sh
mapfile -t photos <.cache/evalset/photos.txt
exec .venv/bin/python bench/eval_methods.py "${photos[@]}" --methods gradcam,hirescam,odam,drise "$@"
