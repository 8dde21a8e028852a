#!/usr/bin/env bash
# README command 1: set up, then run the main job: index a real corpus (TREC QA sentences from ../shared/data)
# with the offline default model into an embedded index, reopen it and search it.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
. .venv/bin/activate
python examples/search_demo.py "$@"
