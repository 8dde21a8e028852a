#!/usr/bin/env bash
# README command 1: set up, then run the main job (encode and score real texts with the offline default model).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
. .venv/bin/activate
python examples/quickstart.py "$@"
