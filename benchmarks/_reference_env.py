"""The reference side's own virtual environment: FlagEmbedding 1.4.2 on the same torch and transformers.

FlagEmbedding is never a dependency of trivec. The benchmark creates `benchmarks/.venv-ref` (git-ignored) with
`python -m venv`, installs `torch==2.13.0` first (so nothing pulls another torch), then `FlagEmbedding==1.4.2`
with the transformers version trivec runs on, and runs the reference in a subprocess with that venv's python.
"""

from __future__ import annotations

import json
import subprocess
import sys
import venv
from pathlib import Path

REFERENCE_VENV = Path(__file__).resolve().parent / ".venv-ref"
FLAG_EMBEDDING_VERSION = "1.4.2"
# FlagEmbedding 1.4.2 imports transformers.modeling_attn_mask_utils, which transformers 5.24 removed; 5.23.0 is
# the newest release it imports with (and the one the tiny-m3 reference outputs were produced with). trivec's
# side keeps whatever transformers it runs on; the table prints both versions.
REFERENCE_TRANSFORMERS = "5.23.0"
MARKER = "trivec-benchmark.json"


def _version_key(version: str) -> tuple[int, ...]:
    return tuple(int(part) for part in version.split(".")[:3] if part.isdigit())


def _pins() -> dict[str, str]:
    """The versions the reference must share with trivec's environment (taken from this interpreter)."""
    import tokenizers
    import torch
    import transformers

    return {
        "torch": torch.__version__.split("+")[0],
        "transformers": min(transformers.__version__, REFERENCE_TRANSFORMERS, key=_version_key),
        "tokenizers": tokenizers.__version__,
        "FlagEmbedding": FLAG_EMBEDDING_VERSION,
    }


def reference_python(directory: Path = REFERENCE_VENV, log=print) -> Path:
    """Path to the reference venv's python, creating and filling the venv when missing or outdated."""
    python = directory / "bin" / "python"
    pins = _pins()
    marker = directory / MARKER
    if python.is_file() and marker.is_file():
        try:
            if json.loads(marker.read_text(encoding="utf-8")) == pins:
                return python
        except (OSError, json.JSONDecodeError):
            pass
    log(f"creating the reference environment {directory} (FlagEmbedding {FLAG_EMBEDDING_VERSION}) ...")
    venv.EnvBuilder(with_pip=True, clear=True).create(directory)
    pip = [str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check"]
    torch_pin = f"torch=={pins['torch']}"
    steps = [
        [torch_pin],  # first, so no later step resolves another torch
        [
            f"FlagEmbedding=={pins['FlagEmbedding']}",
            f"transformers=={pins['transformers']}",
            f"tokenizers=={pins['tokenizers']}",
            torch_pin,
        ],
    ]
    for packages in steps:
        result = subprocess.run([*pip, *packages], capture_output=True, text=True)
        if result.returncode != 0:
            sys.stderr.write(result.stdout[-4000:] + result.stderr[-4000:])
            raise SystemExit(f"pip install {' '.join(packages)} failed in {directory}")
    check = subprocess.run(
        [
            str(python),
            "-c",
            "import json, torch, transformers, tokenizers, FlagEmbedding, importlib.metadata as m;"
            "print(json.dumps({'torch': torch.__version__.split('+')[0], 'transformers': transformers.__version__,"
            "'tokenizers': tokenizers.__version__, 'FlagEmbedding': m.version('FlagEmbedding')}))",
        ],
        capture_output=True,
        text=True,
    )
    if check.returncode != 0:
        raise SystemExit(f"the reference environment does not import: {check.stderr[-2000:]}")
    found = json.loads(check.stdout.strip().splitlines()[-1])
    if found != pins:
        raise SystemExit(f"reference environment has {found}, expected {pins}")
    marker.write_text(json.dumps(pins), encoding="utf-8")
    return python
