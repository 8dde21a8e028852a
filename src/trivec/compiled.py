"""One decorator for trivec's numba kernels (the search hot path: sparse scoring, MaxSim maxima).

Kernels run without the GIL, so they overlap with faiss and torch work on other threads, and are cached on
disk where numba finds a writable place (beside the source, else the user's cache directory; first compile
≈ 2 s, a cached load ≈ 0.5 s). Where neither is writable — a read-only install with a read-only home, as in
some containers — numba refuses `cache=True` at import time; the kernel is then compiled once per process
instead of trivec failing to import.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Literal, TypeVar, cast

import numba

F = TypeVar("F", bound=Callable[..., Any])


def kernel(*, inline: Literal["never", "always"] = "never") -> Callable[[F], F]:
    """`numba.njit(nogil=True, cache=True)`, without the cache when there is nowhere to write it."""

    def wrap(fn: F) -> F:
        try:
            compiled = numba.njit(fn, nogil=True, cache=True, inline=inline)
        except RuntimeError as exc:
            if "cannot cache" not in str(exc):
                raise
            compiled = numba.njit(fn, nogil=True, inline=inline)
        return cast(F, compiled)  # called like the Python function it compiles

    return wrap
