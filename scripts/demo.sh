#!/usr/bin/env bash
# README command 1: set up, then run the main job: index a mixed-language corpus (Wikipedia paragraphs and
# Tatoeba sentences in 8 languages from ../shared/data) with the offline default model (m3-small) into an
# embedded index, reopen it and search it across languages.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
. .venv/bin/activate
python examples/search_demo.py "$@"
