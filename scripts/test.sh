#!/usr/bin/env bash
# README command 2: set up, then run the linters and the test suite (slow tests are behind `-m slow`).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
. .venv/bin/activate
ruff check src tests benchmarks examples
mypy
lint-imports  # the import layers of pyproject.toml's [tool.importlinter]
python -m pytest -q "$@"
