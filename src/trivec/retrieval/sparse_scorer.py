"""Lexical matching over one segment's inverted index, compiled: `Σ_t q_t · d_t` for every row a query term
touches, then its top k.

A query touches ≈ 10⁵ postings at 100k documents. The loops run in numba with the GIL released, so the
sparse stage runs truly beside the dense graph walk, and they add into pooled scratch buffers reused
from query to query: allocating (and page-faulting) a fresh score array per query beside another thread
cost more than the sums themselves. Two strategies, same results:

* many postings (≥ rows / 4): add blindly, find the top k in one sequential scan of all rows, clear the
  buffer with one fill;
* few postings: also record each row's first touch, rank and clear only the touched rows — a rare-term
  query over a million rows costs what its postings cost.

Sums are float64 and taken term by term in query order (the order `np.bincount` over the concatenated
postings uses), so scores do not depend on the strategy.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np

from trivec.compiled import kernel
from trivec.inference.sparse import SparseVector

SCAN_FRACTION = 0.25  # postings ≥ this share of the rows: scan every row instead of tracking touched ones


@kernel()
def _accumulate(  # pragma: no cover - compiled
    ptr: np.ndarray,
    docs: np.ndarray,
    vals: np.ndarray,
    slots: np.ndarray,
    weights: np.ndarray,
    acc: np.ndarray,
    track: bool,
    seen: np.ndarray,
    touched: np.ndarray,
) -> int:
    """Add `weights[i] · vals` over the postings of term slot `slots[i]`; with `track`, also write each
    row's first touch into `touched` and return how many rows (else 0). `track` is the same for the whole
    call, so the branch costs nothing measurable."""
    n = 0
    for i in range(slots.shape[0]):
        w = weights[i]
        for j in range(ptr[slots[i]], ptr[slots[i] + 1]):
            d = docs[j]
            if track and seen[d] == 0:
                seen[d] = 1
                touched[n] = d
                n += 1
            acc[d] += vals[j] * w
    return n


@kernel(inline="always")
def _offer(heap: np.ndarray, size: int, v: float) -> int:  # pragma: no cover - compiled
    """Keep the `len(heap)` largest values seen in a min-heap; returns the new size."""
    k = heap.shape[0]
    if size < k:
        j = size  # sift up
        while j > 0:
            parent = (j - 1) // 2
            if heap[parent] <= v:
                break
            heap[j] = heap[parent]
            j = parent
        heap[j] = v
        return size + 1
    if v > heap[0]:
        j = 0  # replace the root, sift down
        while True:
            child = 2 * j + 1
            if child >= k:
                break
            if child + 1 < k and heap[child + 1] < heap[child]:
                child += 1
            if heap[child] >= v:
                break
            heap[j] = heap[child]
            j = child
        heap[j] = v
    return size


BLOCK = 64  # rows whose maximum is checked before any of them is offered to the heap


@kernel()
def _best_rows(acc: np.ndarray, k: int, out: np.ndarray) -> int:  # pragma: no cover - compiled
    """Rows with a positive score ≥ the k-th largest positive score (all positive rows when fewer than k),
    written to `out` in row order; returns how many.

    Blocks of rows go through a (vectorised) maximum first: once the heap is full, few blocks hold a value
    above its root, so most rows cost one comparison. The root lives in a local (`floor`), not re-read
    from the heap per row (that alone was 5× slower)."""
    heap = np.empty(k, dtype=np.float64)
    size = 0
    n = acc.shape[0]
    floor = 0.0  # a row must beat this to enter: 0 until the heap is full, then its root
    for start in range(0, n, BLOCK):
        stop = min(n, start + BLOCK)
        top = 0.0
        for d in range(start, stop):
            top = max(top, acc[d])
        if top <= floor:
            continue
        for d in range(start, stop):
            if acc[d] > floor:
                size = _offer(heap, size, acc[d])
                if size == k:
                    floor = heap[0]
    m = 0
    for start in range(0, n, BLOCK):
        stop = min(n, start + BLOCK)
        top = 0.0
        for d in range(start, stop):
            top = max(top, acc[d])
        if top <= 0.0 or top < floor:
            continue
        for d in range(start, stop):
            if acc[d] > 0.0 and acc[d] >= floor:
                out[m] = d
                m += 1
    return m


@kernel()
def _best_touched(acc: np.ndarray, touched: np.ndarray, k: int, out: np.ndarray) -> int:  # pragma: no cover
    """`_best_rows` over the touched rows only (in touch order)."""
    heap = np.empty(k, dtype=np.float64)
    size = 0
    floor = 0.0
    for i in range(touched.shape[0]):
        v = acc[touched[i]]
        if v > floor:
            size = _offer(heap, size, v)
            if size == k:
                floor = heap[0]
    m = 0
    for i in range(touched.shape[0]):
        d = touched[i]
        if acc[d] > 0.0 and acc[d] >= floor:
            out[m] = d
            m += 1
    return m


@kernel()
def _clear_touched(acc: np.ndarray, seen: np.ndarray, touched: np.ndarray) -> None:  # pragma: no cover
    for i in range(touched.shape[0]):
        acc[touched[i]] = 0.0
        seen[touched[i]] = 0


@dataclass(frozen=True)
class Postings:
    """One segment's inverted index: sorted term ids, offsets into the (row, value) postings."""

    terms: np.ndarray  # int32 [T], ascending
    ptr: np.ndarray  # int64 [T + 1]
    docs: np.ndarray  # int32 [P], rows ascending within a term
    vals: np.ndarray  # float32 [P]
    rows: int
    check: Callable[[np.ndarray], None] | None = (
        None  # checks the postings of term slots before they are read
    )


class _Scratch:
    """Buffers for one segment, used by one search at a time: scores and seen flags (all zero between
    queries), the touched rows, the rows that make the top k. 17 bytes per row."""

    def __init__(self, rows: int) -> None:
        self.acc = np.zeros(rows, dtype=np.float64)
        self.seen = np.zeros(rows, dtype=np.uint8)
        self.touched = np.zeros(rows, dtype=np.int32)
        self.best = np.zeros(rows, dtype=np.int32)


class SparseScores:
    """Lexical matching scores of one query over one segment (rows never touched score 0). Valid inside
    `SparseScorer.scores(...)`'s `with` block only: the buffers go back to the pool afterwards."""

    def __init__(self, scratch: _Scratch, touched: np.ndarray | None) -> None:
        self._acc = scratch.acc
        self._best = scratch.best
        self._touched = touched  # None: every row was scanned

    def top(self, k: int) -> tuple[np.ndarray, np.ndarray]:
        """`(rows, scores)` of the `k` best rows with a positive score, best first (ties: lower row first)."""
        # at most every candidate row: the heap is k long, and a caller may ask for "everything" (k = 10¹⁰)
        k = min(k, self._acc.shape[0] if self._touched is None else self._touched.shape[0])
        if k <= 0:
            return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.float64)
        if self._touched is None:
            found = _best_rows(self._acc, k, self._best)
        else:
            found = _best_touched(self._acc, self._touched, k, self._best)
        rows = self._best[:found].astype(np.int64)
        values = self._acc[rows]
        order = np.lexsort((rows, -values))[:k]
        return rows[order], values[order]

    def at(self, rows: np.ndarray) -> np.ndarray:
        """Scores of the given rows (float64)."""
        return self._acc[rows]


class SparseScorer:
    """Scratch buffers for lexical matching over segments (see the module docstring), shared by every thread
    that searches: a free list per segment, so memory follows the number of searches running at once, not
    the number of threads that ever searched (a server's pool has dozens), and buffers of merged-away
    segments go for every thread at once."""

    def __init__(self, max_idle: int | None = None) -> None:
        self._lock = threading.Lock()
        self._free: dict[str, list[_Scratch]] = {}
        self._current: set[str] | None = None  # the segments in use (None: not told yet, keep all)
        self._max_idle = max_idle if max_idle is not None else max(2, os.cpu_count() or 1)

    def _take(self, key: str, rows: int) -> _Scratch:
        with self._lock:
            free = self._free.get(key)
            while free:
                scratch = free.pop()
                if scratch.acc.shape[0] == rows:
                    return scratch
        return _Scratch(rows)

    def _give_back(self, key: str, scratch: _Scratch) -> None:
        with self._lock:
            if self._current is not None and key not in self._current:
                return  # its segment was merged away while this search still read it
            free = self._free.setdefault(key, [])
            if len(free) < self._max_idle:  # beyond that, a burst's extra buffers are let go
                free.append(scratch)

    @contextmanager
    def scores(
        self, key: str, postings: Postings, query: SparseVector, dead: np.ndarray | None = None
    ) -> Iterator[SparseScores]:
        """Score every row of one segment (`key` names it) for `query`; `dead` rows (deleted) score 0."""
        scratch = self._take(key, postings.rows)
        touched: np.ndarray | None = scratch.touched[:0]
        try:
            slots, weights = _matching_terms(postings.terms, query)
            if slots.shape[0] and postings.check is not None:
                postings.check(slots)
            if slots.shape[0]:
                total = int((postings.ptr[slots + 1] - postings.ptr[slots]).sum())
                track = total < SCAN_FRACTION * postings.rows
                n = _accumulate(
                    postings.ptr,
                    postings.docs,
                    postings.vals,
                    slots,
                    weights,
                    scratch.acc,
                    track,
                    scratch.seen,
                    scratch.touched,
                )
                touched = scratch.touched[:n] if track else None
                if dead is not None and dead.size:  # deleted rows stay marked touched (cleared below)
                    scratch.acc[dead] = 0.0
            yield SparseScores(scratch, touched)
        finally:
            if touched is None:
                scratch.acc.fill(0.0)
            else:
                _clear_touched(scratch.acc, scratch.seen, touched)
            self._give_back(key, scratch)

    def prune(self, keys: set[str]) -> None:
        """The segments now in use are `keys`: drop the buffers of any other (merged away), now and when a
        search still reading one gives its buffer back."""
        with self._lock:
            self._current = set(keys)
            for key in [k for k in self._free if k not in keys]:
                del self._free[key]

    def idle_buffers(self) -> dict[str, int]:
        """How many idle buffers each segment holds (for tests and diagnostics)."""
        with self._lock:
            return {key: len(free) for key, free in self._free.items()}


def _matching_terms(terms: np.ndarray, query: SparseVector) -> tuple[np.ndarray, np.ndarray]:
    """`(slots, weights)`: positions in `terms` of the query's terms that have postings, with their weights."""
    if len(query) == 0 or terms.shape[0] == 0:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.float64)
    indices = np.asarray(query.indices)
    pos = np.minimum(np.searchsorted(terms, indices), terms.shape[0] - 1)
    match = terms[pos] == indices
    return pos[match].astype(np.int64), np.asarray(query.values, dtype=np.float64)[match]


def warm_up() -> None:
    """Compile (or load from numba's cache) the kernels now rather than on the first query."""
    one = SparseVector(np.array([1], np.int32), np.ones(1, np.float32))
    for rows in (1, 100):  # 1 posting over 1 row: the scan path; over 100 rows: the touched path
        terms, ptr, docs, vals = (
            np.array([1], np.int32),
            np.array([0, 1], np.int64),
            np.array([0], np.int32),
            np.ones(1, np.float32),
        )
        for array in (terms, ptr, docs, vals):
            array.flags.writeable = False  # as the segment's memory maps are: numba compiles per flag
        postings = Postings(terms=terms, ptr=ptr, docs=docs, vals=vals, rows=rows)
        with SparseScorer().scores("warm-up", postings, one) as scores:
            scores.top(1)
