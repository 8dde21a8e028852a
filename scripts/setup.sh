#!/usr/bin/env bash
# Create .venv (if missing) and install trivec with its test tools. torch comes first, pinned to the CPU
# wheel 2.13.0 (a plain `torch` requirement would pull a multi-GB CUDA build). Nothing is reinstalled when
# nothing it depends on changed since the last successful run: .venv/.trivec-setup keeps a hash of
# pyproject.toml and this script, and the install is skipped while it matches and trivec and torch are there.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PYTHON" -m venv .venv
fi
. .venv/bin/activate
STAMP=.venv/.trivec-setup
want=$(cat pyproject.toml scripts/setup.sh | .venv/bin/python -c \
  "import hashlib, sys; print(hashlib.sha256(sys.stdin.buffer.read()).hexdigest())")
installed() {  # trivec (this checkout, editable) and torch importable, without importing them
  .venv/bin/python -c "
import importlib.util, pathlib, sys
spec = importlib.util.find_spec('trivec')
here = pathlib.Path('src').resolve()
ok = spec is not None and spec.origin and pathlib.Path(spec.origin).resolve().is_relative_to(here)
sys.exit(0 if ok and importlib.util.find_spec('torch') else 1)" 2>/dev/null
}
if [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$want" ] && installed; then
  exit 0
fi
.venv/bin/python -m pip install -q --upgrade pip 2>/dev/null || true
.venv/bin/python -c "import torch, sys; sys.exit(0 if torch.__version__.startswith('2.13.0') else 1)" 2>/dev/null \
  || .venv/bin/python -m pip install -q "torch==2.13.0"
.venv/bin/python -m pip install -q -e ".[dev]"
echo "$want" > "$STAMP"
