"""One decorator for trivec's numba kernels (the search hot path: sparse scoring, MaxSim maxima).

Kernels run without the GIL, so they overlap with faiss and torch work on other threads, and are cached on
disk where numba finds a writable place (beside the source, else the user's cache directory; first compile
≈ 2 s, a cached load ≈ 0.5 s). Where neither is writable — a read-only install with a read-only home, as in
some containers — numba refuses `cache=True` at import time; the kernel is then compiled once per process
instead of trivec failing to import.

numba itself (with llvmlite ≈ 50 MiB resident) is imported when a kernel is first called, not when the
modules that define kernels are: an index build, which runs none, does not carry it (docs/scale.md).
"""

from __future__ import annotations

import sys
import threading
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, Literal, TypeVar, cast

import numpy as np

F = TypeVar("F", bound=Callable[..., Any])


_COMPILING = threading.RLock()  # one kernel made at a time (a search's warm-up thread and its first query)


class _Kernel:
    """A kernel made into a numba dispatcher on first use (a call, or any dispatcher attribute). Kernels that
    its function calls are made first and put in its module's namespace in their place, so that numba, which
    reads them from there while it compiles, sees dispatchers."""

    def __init__(self, fn: Callable[..., Any], inline: Literal["never", "always"], fastmath: bool) -> None:
        self._fn = fn
        self._inline = inline
        self._fastmath = fastmath
        self._dispatcher: Any = None

    def dispatcher(self) -> Any:
        """The numba dispatcher, made (or loaded from numba's cache) the first time it is asked for."""
        if self._dispatcher is not None:
            return self._dispatcher
        with _COMPILING:
            if self._dispatcher is None:
                import numba

                namespace = self._fn.__globals__
                for name in self._fn.__code__.co_names:
                    called = namespace.get(name)
                    if isinstance(called, _Kernel):
                        namespace[name] = called.dispatcher()
                fn, inline, fastmath = self._fn, self._inline, self._fastmath
                try:
                    self._dispatcher = numba.njit(
                        fn, nogil=True, cache=True, inline=inline, fastmath=fastmath
                    )
                except RuntimeError as exc:
                    if "cannot cache" not in str(exc):
                        raise
                    self._dispatcher = numba.njit(fn, nogil=True, inline=inline, fastmath=fastmath)
        return self._dispatcher

    def __call__(self, *args: Any) -> Any:
        return self.dispatcher()(*args)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.dispatcher(), name)


def kernel(*, inline: Literal["never", "always"] = "never", fastmath: bool = False) -> Callable[[F], F]:
    """`numba.njit(nogil=True, cache=True)`, without the cache when there is nowhere to write it, compiled
    (and numba imported) at the first call. `fastmath`: float sums may be reassociated (vectorised) — for
    approximate scores only, never for the exact ones a search returns."""

    def wrap(fn: F) -> F:
        return cast(F, _Kernel(fn, inline, fastmath))  # called like the Python function it compiles

    return wrap


@contextmanager
def one_thread() -> Iterator[None]:
    """Run torch's and faiss's OpenMP work of the calling thread on that thread alone, for the block.

    A search re-ranks a few hundred candidates: on two threads a matmul takes 0.22 ms on an idle machine,
    but every OpenMP region waits at its barrier for the thread the scheduler gave to someone else — with
    one other CPU-bound process running, 24 ms (one thread: 0.41 ms either way). A server encodes on the
    same cores while it searches. OpenMP's thread count is per calling thread, so the encoder thread and
    the caller's later work keep theirs: the previous counts are restored when the block ends."""
    import torch

    faiss: Any = sys.modules.get("faiss")  # only if the search has loaded it
    previous = torch.get_num_threads()
    previous_faiss = faiss.omp_get_max_threads() if faiss is not None else None
    if previous != 1:
        torch.set_num_threads(1)
    if previous_faiss not in (None, 1):
        faiss.omp_set_num_threads(1)
    try:
        yield
    finally:
        if previous != 1:
            torch.set_num_threads(previous)
        if previous_faiss not in (None, 1):
            faiss.omp_set_num_threads(previous_faiss)


def rows_times(rows: np.ndarray, queries: np.ndarray) -> np.ndarray:
    """`rows @ queries.T` in float32 by torch (MKL), on the calling thread's torch threads (one inside
    `one_thread`). Not numpy's: its OpenBLAS workers keep spinning for a while after each call, burning a
    core that the rest of the search — and a server's encoder — needs. `rows` may be read-only (a memory map):
    torch only reads it."""
    import torch

    left = np.asarray(rows)
    if left.dtype != np.float32:
        left = left.astype(np.float32)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # "the given NumPy array is not writable"
        tensor = torch.from_numpy(np.ascontiguousarray(left))
    right = torch.from_numpy(np.ascontiguousarray(np.asarray(queries, dtype=np.float32).T))
    return np.asarray((tensor @ right).numpy())
