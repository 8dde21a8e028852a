"""trivec.compiled.kernel: cached where numba can write its cache, compiled per process where it cannot,
and not before its first call (numba is not imported by the modules that define kernels)."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
from numba.core import caching

from trivec.compiled import kernel


def _total(values: np.ndarray) -> float:
    out = 0.0
    for v in values:
        out += v
    return out


@kernel(inline="always")
def _twice(v: float) -> float:  # pragma: no cover - compiled
    return 2.0 * v


@kernel()
def _total_twice(values: np.ndarray) -> float:  # pragma: no cover - compiled
    out = 0.0
    for v in values:
        out += _twice(v)
    return out


def test_kernel_compiles_and_caches() -> None:
    compiled = kernel()(_total)
    assert compiled(np.arange(5.0)) == 10.0
    assert compiled._cache is not None and type(compiled._cache).__name__ == "FunctionCache"  # type: ignore[attr-defined]


def test_kernel_without_a_writable_cache_location_still_compiles(monkeypatch: pytest.MonkeyPatch) -> None:
    # a read-only install with a read-only home: numba finds no locator and refuses cache=True
    monkeypatch.setattr(caching.CacheImpl, "_locator_classes", [])
    with pytest.raises(RuntimeError, match="cannot cache"):
        import numba

        numba.njit(_total, cache=True)
    compiled = kernel()(_total)
    assert compiled(np.arange(4.0)) == 6.0
    assert type(compiled._cache).__name__ == "NullCache"  # type: ignore[attr-defined]


def test_a_kernel_calling_a_kernel_compiles_both() -> None:
    assert _total_twice(np.arange(4.0)) == 12.0
    assert _twice(1.5) == 3.0  # in its caller's module now the dispatcher itself, still callable from Python


def test_modules_with_kernels_do_not_import_numba_until_one_runs() -> None:
    code = (
        "import sys\n"
        "import trivec.inference.encoder, trivec.retrieval.index, trivec.retrieval.embedded\n"
        "from trivec.retrieval import colbert, dense_codes, sparse_scorer\n"
        "assert 'numba' not in sys.modules, 'numba imported with the modules'\n"
        "sparse_scorer.warm_up()\n"
        "assert 'numba' in sys.modules\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
