"""What one search reads: the segments of one commit and which of their rows are deleted.

An index object builds a new `Snapshot` whenever its state changes (a commit, a refresh that picks up
another process's commit) and swaps it in with one assignment. A search takes the snapshot once, at its
start, and reads only it — so threads searching one index object while another thread commits or
refreshes it each see one consistent commit instead of segment lists changing under them. (Segment files
of an older commit stay mapped, and therefore readable, while a snapshot holds them.)
"""

from __future__ import annotations

import importlib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from trivec.retrieval.colbert import ColbertCodec
from trivec.retrieval.segment import Segment


@dataclass
class Snapshot:
    """Segments, their global row offsets, per segment the live mask / deleted rows (None: none), and the
    ColBERT codec their codes were written with (one snapshot, so a search never pairs segments coded with a
    fitted codebook with the codec of before it)."""

    segments: list[Segment]
    bases: np.ndarray  # int64 [S + 1]: global row of each segment's first row, then the total
    live: list[np.ndarray | None]
    dead: list[np.ndarray | None]
    codec: ColbertCodec
    _selectors: list[Any] = field(default_factory=list)  # faiss bitmaps of the live rows, built on first use
    _locate: dict[str, list[tuple[int, int]]] | None = None

    @classmethod
    def build(
        cls, segments: list[Segment], deleted: Mapping[str, np.ndarray], codec: ColbertCodec
    ) -> Snapshot:
        live: list[np.ndarray | None] = []
        dead: list[np.ndarray | None] = []
        for seg in segments:
            rows = deleted.get(seg.name)
            if rows is not None and rows.size:
                mask = np.ones(seg.rows, dtype=bool)
                mask[rows] = False
                live.append(mask)
                dead.append(np.asarray(rows, dtype=np.int64))
            else:
                live.append(None)
                dead.append(None)
        bases = np.cumsum([0] + [s.rows for s in segments]).astype(np.int64)
        return cls(list(segments), bases, live, dead, codec, [None] * len(segments))

    @property
    def rows(self) -> int:
        return int(self.bases[-1])

    def where(self, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(segment index, local row) of global `rows`."""
        seg = np.searchsorted(self.bases, rows, side="right") - 1
        return seg, rows - self.bases[seg]

    def by_segment(self, rows: np.ndarray) -> Iterator[tuple[int, np.ndarray, np.ndarray]]:
        """For each segment that global `rows` touch: (segment index, mask over `rows`, its local rows)."""
        segs, local = self.where(rows)
        for s in np.unique(segs).tolist():
            pick = segs == s
            yield s, pick, local[pick]

    def selector(self, i: int) -> Any:
        """A faiss selector of segment `i`'s live rows (None when none is deleted). Two threads may both
        build it the first time; either result is the same."""
        live = self.live[i]
        if live is None:
            return None
        if self._selectors[i] is None:
            faiss = importlib.import_module("faiss")

            bits = np.packbits(live, bitorder="little")
            selector = faiss.IDSelectorBitmap(live.shape[0], faiss.swig_ptr(bits))
            selector.bits_ref = bits  # keep the bitmap alive with the selector
            self._selectors[i] = selector
        return self._selectors[i]

    def locate(self) -> dict[str, list[tuple[int, int]]]:
        """doc id → live (segment, row) pairs (built on first use)."""
        if self._locate is None:
            out: dict[str, list[tuple[int, int]]] = {}
            for i, seg in enumerate(self.segments):
                live = self.live[i]
                for row, doc_id in enumerate(seg.doc_ids()):
                    if live is None or live[row]:
                        out.setdefault(doc_id, []).append((i, row))
            self._locate = out
        return self._locate
