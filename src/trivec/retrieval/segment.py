"""Immutable segments of the embedded index: flat binary files, written once, memory-mapped to read.

A segment directory holds, for `n` rows (chunks):
  ids.bin/.off, doc_ids.bin/.off, docs.bin/.off   UTF-8 strings / JSON per row + int64 offsets [n+1]
  dense.f32                                        float32 [n, D]
  dense.codes/.scale                               optional int8 / binary codes of dense.f32 for the flat first
                                                   stage, int8's per-dimension lo and step (dense_codes.py)
  sparse.terms/.ptr/.docs/.vals                    inverted index: sorted term ids, int64 postings offsets,
                                                   int32 row ids, float32 weights (rows ascending per term)
  colbert.codes/.scale/.off                        token vectors (fp16 / fp32 / int8 / int4 / binary + per-row
                                                   scale, or residual codes), int64 offsets [n+1]; fp16 in a
                                                   segment written while residual codes waited for their
                                                   codebook (its record's `colbert_staged`)
  dense.faiss                                      optional HNSW / IVF graph over dense.f32
The manifest (not the segment) records shapes, dtypes and byte sizes, so a reader never trusts a file the
manifest does not vouch for, and a segment left by a crashed writer is simply not referenced. This module
reads segments (`Segment`); `trivec.retrieval.segment_writer` writes them.
"""

from __future__ import annotations

import ctypes
import functools
import importlib
import json
import mmap
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from trivec.inference.sparse import SparseVector
from trivec.retrieval import dense_codes
from trivec.retrieval.corpus import Chunk
from trivec.retrieval.integrity import (
    CHECK_AT_OPEN,
    BlockCheck,
    CorruptIndexError,
    check_offsets,
    check_sorted,
    read_checksums,
)
from trivec.retrieval.sparse_scorer import Postings


def _map(path: Path, dtype: str, shape: Sequence[int]) -> np.ndarray:
    """A read-only memory map seen as a plain ndarray: the map stays alive as the view's base, and indexing
    skips `np.memmap`'s per-slice subclass bookkeeping (microseconds that add up over thousands of reads)."""
    if int(np.prod(shape)) == 0:
        return np.zeros(tuple(shape), dtype=np.dtype(dtype))
    return np.memmap(path, dtype=np.dtype(dtype), mode="r", shape=tuple(shape)).view(np.ndarray)


MADV_POPULATE_READ = getattr(mmap, "MADV_POPULATE_READ", 22)  # Linux ≥ 5.14; Python 3.11 lacks the name
# read at random rows per query (dense.codes: scanned whole by every query)
PREFAULTED = ("colbert.codes", "colbert.scale", "colbert.off", "dense.f32", "dense.codes", "dense.scale")


def prefault(array: np.ndarray) -> None:
    """Fill the process's page tables for a mapped array now: a re-rank reads a few hundred random rows, and
    on a fresh map each of them costs a page fault (≈2 ms per query at 100k documents). Pages come from the
    page cache, or from disk when not cached. madvise runs through ctypes, which lets go of the GIL, so a
    background prefault does not hold up searches."""
    if array.size == 0:
        return
    start = array.ctypes.data
    aligned = start - start % mmap.PAGESIZE
    length = array.nbytes + (start - aligned)
    libc = _libc()
    if libc is not None:
        done = libc.madvise(ctypes.c_void_p(aligned), ctypes.c_size_t(length), MADV_POPULATE_READ)
        if done == 0:
            return
    flat = array.reshape(-1).view(np.uint8)  # older kernel: touch one byte per page instead
    int(flat[:: mmap.PAGESIZE].max(initial=0))


@functools.lru_cache(maxsize=1)
def _libc() -> Any:
    try:
        return ctypes.CDLL(None, use_errno=True)
    except OSError:
        return None


class Segment:
    """A read-only, memory-mapped segment whose bytes are checked against their checksums before use (see
    `trivec.retrieval.integrity`)."""

    def __init__(self, directory: Path, record: dict[str, Any]) -> None:
        self.directory = directory
        self.name = record["name"]
        self.rows = int(record["rows"])
        self.record = record
        self.damage: str | None = None  # set when a background check finds a damaged block
        for name, size in record["files"].items():
            path = directory / name
            try:
                actual = path.stat().st_size
            except FileNotFoundError:
                raise CorruptIndexError(f"{path} is missing (the manifest lists it)") from None
            if actual != size:
                raise CorruptIndexError(
                    f"{path} has {actual} bytes, the manifest says {size}: the file is damaged"
                )
        arrays = record["arrays"]
        try:
            self.arrays = {
                name: _map(directory / name, spec["dtype"], spec["shape"]) for name, spec in arrays.items()
            }
        except FileNotFoundError as exc:
            raise CorruptIndexError(f"{exc.filename} is missing (the manifest lists it)") from None
        self.dense: np.ndarray | None = self.arrays.get("dense.f32")
        self.has_sparse = "sparse.terms" in arrays
        self.has_colbert = "colbert.codes" in arrays
        # float16 rows written before the index's residual codebook was fitted (`ColbertCodec.staging`)
        self.colbert_staged = bool(record.get("colbert_staged"))
        # "int8" / "binary" when the flat first stage scans codes (dense.codes) instead of dense.f32
        self.quantization: str | None = (
            record.get("dense_quantization") if dense_codes.CODES in arrays else None
        )
        try:
            self._ann_bytes = (
                _map(directory / record["ann"]["file"], "uint8", [record["files"][record["ann"]["file"]]])
                if record.get("ann")
                else None
            )
        except FileNotFoundError as exc:
            raise CorruptIndexError(f"{exc.filename} is missing (the manifest lists it)") from None
        self.checks: dict[str, BlockCheck] = {}
        if record.get("checksums"):
            hashes = read_checksums(directory, record["checksums"], record["files"])
            for name in record["files"]:
                data = self.arrays.get(name, self._ann_bytes)
                assert data is not None
                self.checks[name] = BlockCheck(directory / name, data, hashes[name])
            for name, check in self.checks.items():  # the small files and the term table whole, now
                if int(record["files"][name]) <= CHECK_AT_OPEN or name in ("sparse.terms", "sparse.ptr"):
                    check.all()
        self._check_structure(everything=not self.checks)
        self.postings = (
            Postings(
                terms=self.arrays["sparse.terms"],
                ptr=self.arrays["sparse.ptr"],
                docs=self.arrays["sparse.docs"],
                vals=self.arrays["sparse.vals"],
                rows=self.rows,
                check=self._check_postings if self.checks else None,
            )
            if self.has_sparse
            else None
        )
        self._ann: Any = None
        self.prefaulted = False

    # ------------------------------------------------------------------ checks
    def _small(self, name: str) -> bool:
        return int(self.record["files"].get(name, 0)) <= CHECK_AT_OPEN

    def _check_structure(self, everything: bool) -> None:
        """Offsets rise from 0 to their data's end and term ids ascend — for the files checked whole at open
        (all of them in a segment written before checksums, where this is the only check)."""
        pairs = [(f"{c}.off", self.arrays[f"{c}.bin"].shape[0]) for c in ("ids", "doc_ids", "docs")]
        if self.has_colbert:
            pairs.append(("colbert.off", self.arrays["colbert.codes"].shape[0]))
        if self.has_sparse:
            pairs.append(("sparse.ptr", self.arrays["sparse.docs"].shape[0]))
        for name, total in pairs:
            if everything or self._small(name) or name == "sparse.ptr":
                check_offsets(self.directory / name, np.asarray(self.arrays[name]), int(total))
        if self.has_sparse:
            check_sorted(self.directory / "sparse.terms", np.asarray(self.arrays["sparse.terms"]))
        if self.has_sparse and everything:
            docs = np.asarray(self.arrays["sparse.docs"])
            if docs.size and (int(docs.min()) < 0 or int(docs.max()) >= self.rows):
                raise CorruptIndexError(
                    f"{self.directory / 'sparse.docs'}: row numbers outside the segment: the file is damaged"
                )

    def _check(self, name: str, starts: np.ndarray, ends: np.ndarray) -> None:
        check = self.checks.get(name)
        if check is not None and not check.complete:
            check.ranges(starts, ends)

    def _check_rows(self, name: str, rows: np.ndarray) -> None:
        """Check the blocks of rows `rows` of a fixed-width array (dense vectors, offsets: rows and rows + 1)."""
        check = self.checks.get(name)
        if check is not None and not check.complete:
            row_bytes = int(self.arrays[name].strides[0]) if self.arrays[name].ndim else 1
            check.rows(rows, row_bytes)

    def _unchecked(self, *names: str) -> bool:
        """Whether any of these files still has blocks to check (False once all are checked whole: then a
        search pays one attribute read per file)."""
        return any(name in self.checks and not self.checks[name].complete for name in names)

    def _check_postings(self, slots: np.ndarray) -> None:
        """Before the compiled scorer reads them: the postings of the query's terms."""
        if not self._unchecked("sparse.docs", "sparse.vals"):
            return
        ptr = self.arrays["sparse.ptr"]  # checked whole when the segment opened
        starts, ends = ptr[slots].astype(np.int64), ptr[slots + 1].astype(np.int64)
        self._check("sparse.docs", starts * 4, ends * 4)
        self._check("sparse.vals", starts * 4, ends * 4)

    def check_all(self) -> None:
        """Hash every block of every file not checked yet (raises `CorruptIndexError` at the first bad one)."""
        for check in self.checks.values():
            check.all()

    @property
    def checked(self) -> bool:
        """Whether every file has been checked whole (or the segment has no checksums to check)."""
        return all(check.complete for check in self.checks.values())

    def verify(self) -> list[str]:
        """Everything about this segment that can be checked, as a list of problems (empty: intact)."""
        problems: list[str] = []
        for check in self.checks.values():
            try:
                check.all()
            except CorruptIndexError as exc:
                problems.append(str(exc))
        try:
            self._check_structure(everything=True)
            for column in ("ids", "doc_ids", "docs"):
                data = bytes(self.arrays[f"{column}.bin"])
                try:
                    data.decode("utf-8")
                except UnicodeDecodeError:
                    problems.append(
                        f"{self.directory / (column + '.bin')}: not UTF-8 text: the file is damaged"
                    )
            for row in range(self.rows):
                self.chunk(row)
            if self.quantization is not None and not problems:
                problems.extend(self._verify_codes())
            if self._ann_bytes is not None:
                ann = self.ann()
                if int(ann.ntotal) != self.rows:
                    problems.append(
                        f"{self.directory / 'dense.faiss'} holds {ann.ntotal} vectors, not {self.rows}"
                    )
        except CorruptIndexError as exc:
            problems.append(str(exc))
        return problems

    def _verify_codes(self) -> list[str]:
        """The dense codes must be what encoding dense.f32 gives (after both matched their checksums)."""
        kind, dense = self.quantization, self.dense
        assert kind is not None and dense is not None
        scale = dense_codes.fit(kind, dense)
        stored_scale = self.arrays.get(dense_codes.SCALE)
        if scale is not None and (stored_scale is None or not np.array_equal(stored_scale, scale)):
            return [f"{self.directory / dense_codes.SCALE} does not hold dense.f32's per-dimension ranges"]
        codes = self.arrays[dense_codes.CODES]
        for start in range(0, self.rows, dense_codes.CHUNK_ROWS):
            stop = min(self.rows, start + dense_codes.CHUNK_ROWS)
            if not np.array_equal(codes[start:stop], dense_codes.encode(kind, dense[start:stop], scale)):
                return [
                    f"{self.directory / dense_codes.CODES}: rows {start:,}–{stop:,} are not the codes of dense.f32"
                ]
        return []

    # ------------------------------------------------------------------ strings
    def _string(self, column: str, row: int) -> str:
        checking = self._unchecked(f"{column}.off", f"{column}.bin")
        if checking:
            self._check_rows(f"{column}.off", np.array([row, row + 1]))
        begin, end = self.arrays[f"{column}.off"][row : row + 2].tolist()
        data = self.arrays[f"{column}.bin"]
        if not 0 <= begin <= end <= data.shape[0]:
            raise CorruptIndexError(
                f"{self.directory / (column + '.off')}: row {row} points outside {column}.bin"
            )
        if checking:
            self._check(f"{column}.bin", np.array([begin]), np.array([end]))
        try:
            return str(data.data[begin:end], "utf-8")
        except UnicodeDecodeError:
            raise CorruptIndexError(
                f"{self.directory / (column + '.bin')}: row {row} is not UTF-8 text: the file is damaged"
            ) from None

    def _strings(self, column: str) -> list[str]:
        for name in (f"{column}.off", f"{column}.bin"):
            if name in self.checks:
                self.checks[name].all()
        off = np.asarray(self.arrays[f"{column}.off"])
        data = bytes(self.arrays[f"{column}.bin"])
        try:
            return [data[off[i] : off[i + 1]].decode("utf-8") for i in range(self.rows)]
        except UnicodeDecodeError:
            raise CorruptIndexError(
                f"{self.directory / (column + '.bin')}: not UTF-8 text: the file is damaged"
            ) from None

    def chunk_id(self, row: int) -> str:
        return self._string("ids", row)

    def doc_id(self, row: int) -> str:
        return self._string("doc_ids", row)

    def doc_ids(self) -> list[str]:
        return self._strings("doc_ids")

    def chunk(self, row: int) -> Chunk:
        try:
            data = json.loads(self._string("docs", row))
            return Chunk(
                self.chunk_id(row),
                self.doc_id(row),
                data["text"],
                data["title"],
                data["metadata"],
                data["position"],
            )
        except (ValueError, KeyError, TypeError) as exc:
            raise CorruptIndexError(
                f"{self.directory / 'docs.bin'}: row {row} is not a stored document ({exc}): the file is damaged"
            ) from None

    # ------------------------------------------------------------------ vectors
    def dense_rows(self, rows: np.ndarray) -> np.ndarray:
        """The dense vectors of `rows` (checked first)."""
        assert self.dense is not None
        self._check_rows("dense.f32", rows)
        return self.dense[rows]

    def dense_all(self) -> np.ndarray:
        """Every dense vector (checked first)."""
        assert self.dense is not None
        if "dense.f32" in self.checks:
            self.checks["dense.f32"].all()
        return self.dense

    def dense_code_scores(self, queries: np.ndarray) -> np.ndarray:
        """`[n, Q]` approximate scores of every row by its dense codes (the codes checked whole first)."""
        assert self.quantization is not None
        for name in (dense_codes.CODES, dense_codes.SCALE):
            if name in self.checks:
                self.checks[name].all()
        return dense_codes.approximate_scores(
            self.quantization, self.arrays[dense_codes.CODES], self.arrays.get(dense_codes.SCALE), queries
        )

    def sparse_vectors(self, rows: np.ndarray) -> list[SparseVector]:
        """Per-row lexical weights rebuilt from the inverted index (for merging segments)."""
        for name in ("sparse.terms", "sparse.ptr", "sparse.docs", "sparse.vals"):
            if name in self.checks:
                self.checks[name].all()
        terms, ptr = np.asarray(self.arrays["sparse.terms"]), np.asarray(self.arrays["sparse.ptr"])
        docs, vals = np.asarray(self.arrays["sparse.docs"]), np.asarray(self.arrays["sparse.vals"])
        term_of = np.repeat(terms, np.diff(ptr))
        order = np.lexsort((term_of, docs))
        docs_sorted = docs[order]
        starts = np.searchsorted(docs_sorted, rows, side="left")
        ends = np.searchsorted(docs_sorted, rows, side="right")
        return [
            SparseVector(term_of[order][s:e].astype(np.int32), vals[order][s:e].astype(np.float32))
            for s, e in zip(starts.tolist(), ends.tolist(), strict=True)
        ]

    def colbert_tokens(self, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """`(token rows [ΣT], T per row)`: where the stored token vectors of `rows` are, back to back (their
        blocks checked)."""
        off = self.arrays["colbert.off"]
        rows = np.asarray(rows, dtype=np.int64)
        checking = self._unchecked("colbert.off", "colbert.codes", "colbert.scale")
        if checking:
            self._check_rows("colbert.off", np.concatenate([rows, rows + 1]))
        starts = off[rows]
        lengths = off[rows + 1] - starts
        if checking:
            self._check_rows_span("colbert.codes", starts, starts + lengths)
            self._check_rows_span("colbert.scale", starts, starts + lengths)
        # each row's tokens are contiguous: token t of the block is stored row starts[i] + (t - first[i])
        first = np.cumsum(lengths) - lengths
        return np.repeat(starts - first, lengths) + np.arange(int(lengths.sum()), dtype=np.int64), lengths

    def colbert_codes(self, row: int) -> tuple[np.ndarray, np.ndarray | None]:
        off = self.arrays["colbert.off"]
        self._check_rows("colbert.off", np.array([row, row + 1]))
        start, end = int(off[row]), int(off[row + 1])
        self._check_rows_span("colbert.codes", np.array([start]), np.array([end]))
        self._check_rows_span("colbert.scale", np.array([start]), np.array([end]))
        scales = self.arrays.get("colbert.scale")
        return self.arrays["colbert.codes"][start:end], (scales[start:end] if scales is not None else None)

    def _check_rows_span(self, name: str, starts: np.ndarray, ends: np.ndarray) -> None:
        """Check rows `[starts[i], ends[i])` of a fixed-width array."""
        check = self.checks.get(name)
        if check is not None and not check.complete:
            row_bytes = int(self.arrays[name].strides[0])
            check.ranges(np.asarray(starts, np.int64) * row_bytes, np.asarray(ends, np.int64) * row_bytes)

    def ann(self) -> Any:
        """The faiss index over this segment's dense vectors (deserialised on first use), or None."""
        if self._ann_bytes is None:
            return None
        if self._ann is None:
            if "dense.faiss" in self.checks:
                self.checks["dense.faiss"].all()
            faiss = importlib.import_module("faiss")
            self._ann = faiss.deserialize_index(np.asarray(self._ann_bytes))
        return self._ann

    def prefault(self) -> None:
        """Map the pages of the files read at random rows (ColBERT vectors, dense vectors) into memory."""
        for name in PREFAULTED:
            array = self.arrays.get(name)
            if array is not None and array.size:
                prefault(array)

    def random_access_bytes(self) -> int:
        return sum(int(self.record["files"].get(name, 0)) for name in PREFAULTED)

    def nbytes(self) -> dict[str, int]:
        return {name: int(size) for name, size in self.record["files"].items()}
