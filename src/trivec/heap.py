"""The process heap (glibc's malloc): giving freed memory back to the system.

glibc keeps what a process frees for its later allocations: a heap that grew while something was loading or
encoding stays resident after the memory is freed, in holes between the blocks still in use. `trim` gives the
free pages back (after a load whose temporaries are gone); `map_large_blocks` serves blocks from a size on
with their own mappings, which go back to the system when they are freed: the torch tensors of an encode
(a batch's activations, its float32 outputs) then do not leave a heap that only grows (docs/scale.md).
`advise_random` asks that a file mapping's pages be read one at a time as they are touched (no readahead).
All do nothing where the C library is not glibc (musl, macOS, Windows); values computed do not change.
"""

from __future__ import annotations

import ctypes
import functools
import os
import sys
from typing import Any

M_MMAP_THRESHOLD = -3  # mallopt parameter (malloc.h)
MADV_RANDOM = 1  # madvise advice (sys/mman.h)
MMAP_THRESHOLD_ENV = "MALLOC_MMAP_THRESHOLD_"  # glibc's own setting of it: the user's choice wins


@functools.cache
def _glibc() -> Any:
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(None)
    except OSError:
        return None
    if not all(hasattr(libc, name) for name in ("gnu_get_libc_version", "malloc_trim", "mallopt")):
        return None
    libc.malloc_trim.argtypes = [ctypes.c_size_t]
    libc.mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    libc.madvise.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
    return libc


def trim() -> bool:
    """Give the heap's free pages back to the system; True when glibc did (it had some to give)."""
    libc = _glibc()
    return bool(libc is not None and libc.malloc_trim(0))


def map_large_blocks(threshold: int) -> bool:
    """Serve allocations of `threshold` bytes or more from their own mappings, returned to the system when
    freed (glibc's default threshold starts at 128 KiB and rises to 32 MiB as big blocks are freed, after
    which they come from the heap). Not when `MALLOC_MMAP_THRESHOLD_` is set; True when set here."""
    libc = _glibc()
    if libc is None or os.environ.get(MMAP_THRESHOLD_ENV):
        return False
    return bool(libc.mallopt(M_MMAP_THRESHOLD, int(threshold)))


def advise_random(address: int, length: int) -> bool:
    """Read the pages of the file mapping at `address` (page-aligned, `length` bytes) one at a time when they
    are first touched, without readahead; True when the kernel took the advice."""
    libc = _glibc()
    return bool(libc is not None and libc.madvise(address, length, MADV_RANDOM) == 0)
