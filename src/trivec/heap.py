"""The process heap (glibc's malloc): giving freed memory back to the system.

glibc keeps what a process frees for its later allocations: a heap that grew while something was loading or
encoding stays resident after the memory is freed, in holes between the blocks still in use. `trim` gives the
free pages back (after a load, or an encode pass, whose temporaries are gone; docs/scale.md).
`advise_random` asks that a file mapping's pages be read one at a time as they are touched (no readahead).
All do nothing where the C library is not glibc (musl, macOS, Windows); values computed do not change.
"""

from __future__ import annotations

import ctypes
import functools
import sys
from typing import Any

MADV_RANDOM = 1  # madvise advice (sys/mman.h)


@functools.cache
def _glibc() -> Any:
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(None)
    except OSError:
        return None
    if not all(hasattr(libc, name) for name in ("gnu_get_libc_version", "malloc_trim", "madvise")):
        return None
    libc.malloc_trim.argtypes = [ctypes.c_size_t]
    libc.madvise.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
    return libc


def trim() -> bool:
    """Give the heap's free pages back to the system; True when glibc did (it had some to give)."""
    libc = _glibc()
    return bool(libc is not None and libc.malloc_trim(0))


def advise_random(address: int, length: int) -> bool:
    """Read the pages of the file mapping at `address` (page-aligned, `length` bytes) one at a time when they
    are first touched, without readahead; True when the kernel took the advice."""
    libc = _glibc()
    return bool(libc is not None and libc.madvise(address, length, MADV_RANDOM) == 0)
