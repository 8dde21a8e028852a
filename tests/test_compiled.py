"""trivec.compiled.kernel: cached where numba can write its cache, compiled per process where it cannot."""

from __future__ import annotations

import numpy as np
import pytest
from numba.core import caching

from trivec.compiled import kernel


def _total(values: np.ndarray) -> float:
    out = 0.0
    for v in values:
        out += v
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
