#!/usr/bin/env bash
# Create .venv (if missing) and install trivec with its test tools. torch comes first, pinned to the CPU
# wheel 2.13.0 (a plain `torch` requirement would pull a multi-GB CUDA build).
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PYTHON" -m venv .venv
fi
. .venv/bin/activate
python -m pip install -q --upgrade pip 2>/dev/null || true
python -c "import torch, sys; sys.exit(0 if torch.__version__.startswith('2.13.0') else 1)" 2>/dev/null \
  || python -m pip install -q "torch==2.13.0"
python -m pip install -q -e ".[dev]"
