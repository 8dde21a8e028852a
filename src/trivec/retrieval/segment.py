"""Immutable segments of the embedded index: flat binary files, written once, memory-mapped to read.

A segment directory holds, for `n` rows (chunks):
  ids.bin/.off, doc_ids.bin/.off, docs.bin/.off   UTF-8 strings / JSON per row + int64 offsets [n+1]
  dense.f32                                        float32 [n, D]
  sparse.terms/.ptr/.docs/.vals                    inverted index: sorted term ids, int64 postings offsets,
                                                   int32 row ids, float32 weights (rows ascending per term)
  colbert.codes/.scale/.off                        token vectors (fp16 / fp32 / int8 + per-row scale), offsets
  dense.faiss                                      optional HNSW / IVF graph over dense.f32
The manifest (not the segment) records shapes, dtypes and byte sizes, so a reader never trusts a file the
manifest does not vouch for, and a segment left by a crashed writer is simply not referenced.
"""

from __future__ import annotations

import ctypes
import functools
import importlib
import json
import mmap
import os
from collections.abc import Sequence
from pathlib import Path
from typing import IO, Any

import numpy as np

from trivec.errors import TrivecError
from trivec.inference.sparse import SparseVector
from trivec.io import fsync_dir
from trivec.progress import Step
from trivec.retrieval.colbert import ColbertCodec
from trivec.retrieval.corpus import Chunk
from trivec.retrieval.integrity import (
    CHECK_AT_OPEN,
    BlockCheck,
    CorruptIndexError,
    check_offsets,
    check_sorted,
    read_checksums,
    write_checksums,
)
from trivec.retrieval.sparse_scorer import Postings


class _Appender:
    """A binary file that arrays are appended to; fsync'd on close."""

    def __init__(self, path: Path, dtype: np.dtype) -> None:
        self.path = path
        self.dtype = np.dtype(dtype)
        self.handle: IO[bytes] = path.open("wb")
        self.count = 0

    def write(self, values: np.ndarray) -> None:
        data = np.ascontiguousarray(values, dtype=self.dtype)
        self.handle.write(data.tobytes())
        self.count += int(data.shape[0]) if data.ndim else 1

    def close(self) -> None:
        self.handle.flush()
        os.fsync(self.handle.fileno())
        self.handle.close()


class _StringColumn:
    """UTF-8 strings appended to `<name>.bin` with int64 offsets in `<name>.off`."""

    def __init__(self, directory: Path, name: str) -> None:
        self.data = _Appender(directory / f"{name}.bin", np.dtype(np.uint8))
        self.offsets = [0]
        self.directory, self.name = directory, name

    def write(self, texts: Sequence[str]) -> None:
        for text in texts:
            raw = np.frombuffer(text.encode("utf-8"), dtype=np.uint8)
            self.data.write(raw)
            self.offsets.append(self.offsets[-1] + raw.shape[0])

    def close(self) -> None:
        self.data.close()
        off = _Appender(self.directory / f"{self.name}.off", np.dtype(np.int64))
        off.write(np.asarray(self.offsets, dtype=np.int64))
        off.close()


class SegmentWriter:
    """Write one segment row batch by row batch; `finish` builds the inverted index and returns its record."""

    def __init__(
        self,
        directory: Path,
        dense_dim: int | None,
        has_sparse: bool,
        colbert_codec: ColbertCodec | None,
        colbert_dim: int | None,
    ) -> None:
        directory.mkdir(parents=True, exist_ok=False)
        self.directory = directory
        self.rows = 0
        self.ids = _StringColumn(directory, "ids")
        self.doc_ids = _StringColumn(directory, "doc_ids")
        self.docs = _StringColumn(directory, "docs")
        self.dense_dim = dense_dim
        self.dense = _Appender(directory / "dense.f32", np.dtype(np.float32)) if dense_dim else None
        self.has_sparse = has_sparse
        self._sparse_ids: list[np.ndarray] = []
        self._sparse_vals: list[np.ndarray] = []
        self.codec = colbert_codec
        self.colbert_dim = colbert_dim
        self.colbert_rows = [0]
        if colbert_codec is not None:
            self.colbert = _Appender(directory / "colbert.codes", colbert_codec.storage_dtype)
            self.scales = (
                _Appender(directory / "colbert.scale", np.dtype(np.float32))
                if colbert_codec.has_scales
                else None
            )

    def append(
        self,
        chunks: Sequence[Chunk],
        dense: np.ndarray | None,
        sparse: Sequence[SparseVector] | None,
        colbert: Sequence[np.ndarray] | None,
        colbert_codes: Sequence[tuple[np.ndarray, np.ndarray | None]] | None = None,
    ) -> None:
        """Append rows; ColBERT vectors come raw (`colbert`, encoded here) or already encoded (`colbert_codes`)."""
        n = len(chunks)
        self.ids.write([c.id for c in chunks])
        self.doc_ids.write([c.doc_id for c in chunks])
        self.docs.write(
            [
                json.dumps(
                    {"title": c.title, "text": c.text, "metadata": c.metadata, "position": c.position},
                    ensure_ascii=False,
                )
                for c in chunks
            ]
        )
        if self.dense is not None:
            assert dense is not None and dense.shape == (n, self.dense_dim)
            self.dense.write(dense)
        if self.has_sparse:
            assert sparse is not None and len(sparse) == n
            self._sparse_ids.extend(v.indices for v in sparse)
            self._sparse_vals.extend(v.values for v in sparse)
        if self.codec is not None:
            codec = self.codec
            pairs = colbert_codes if colbert_codes is not None else [codec.encode(r) for r in colbert or []]
            assert len(pairs) == n, "one ColBERT matrix per row"
            for codes, scale in pairs:
                self.colbert.write(codes.reshape(-1, self.colbert_dim or codes.shape[-1]))
                if self.scales is not None and scale is not None:
                    self.scales.write(scale)
                self.colbert_rows.append(self.colbert_rows[-1] + int(codes.shape[0]))
        self.rows += n

    def finish(self, ann: dict[str, Any] | None = None) -> dict[str, Any]:
        """Close every file (fsync'd), build the inverted index and the optional ANN graph; the record."""
        for column in (self.ids, self.doc_ids, self.docs):
            column.close()
        arrays: dict[str, dict[str, Any]] = {}
        if self.dense is not None:
            self.dense.close()
            arrays["dense.f32"] = {"dtype": "float32", "shape": [self.rows, self.dense_dim]}
        if self.has_sparse:
            self._write_postings(arrays)
        if self.codec is not None:
            self.colbert.close()
            total, dtype = self.colbert_rows[-1], self.codec.storage_dtype.name  # packed codes: bytes
            arrays["colbert.codes"] = {"dtype": dtype, "shape": [total, self.colbert_dim]}
            if self.scales is not None:
                self.scales.close()
                arrays["colbert.scale"] = {"dtype": "float32", "shape": [total]}
            off = _Appender(self.directory / "colbert.off", np.dtype(np.int64))
            off.write(np.asarray(self.colbert_rows, dtype=np.int64))
            off.close()
            arrays["colbert.off"] = {"dtype": "int64", "shape": [self.rows + 1]}
        for name in ("ids", "doc_ids", "docs"):
            arrays[f"{name}.off"] = {"dtype": "int64", "shape": [self.rows + 1]}
            size = (self.directory / f"{name}.bin").stat().st_size
            arrays[f"{name}.bin"] = {"dtype": "uint8", "shape": [size]}
        ann_record = None
        if ann is not None and self.dense is not None and self.rows > 0:
            ann_record = build_ann(self.directory, self.rows, int(self.dense_dim or 0), ann)
        files = {name: (self.directory / name).stat().st_size for name in arrays}
        if ann_record is not None:
            files[ann_record["file"]] = (self.directory / ann_record["file"]).stat().st_size
        checksums = write_checksums(self.directory, files)  # of the bytes on disk, after every file is closed
        fsync_dir(self.directory)
        return {
            "name": self.directory.name,
            "rows": self.rows,
            "arrays": arrays,
            "files": files,
            "ann": ann_record,
            "checksums": checksums,
        }

    def _write_postings(self, arrays: dict[str, dict[str, Any]]) -> None:
        lengths = np.fromiter((len(x) for x in self._sparse_ids), dtype=np.int64, count=len(self._sparse_ids))
        terms_flat = (
            np.concatenate(self._sparse_ids).astype(np.int32) if lengths.sum() else np.zeros(0, np.int32)
        )
        vals_flat = (
            np.concatenate(self._sparse_vals).astype(np.float32) if lengths.sum() else np.zeros(0, np.float32)
        )
        rows = np.repeat(np.arange(self.rows, dtype=np.int32), lengths)
        order = np.argsort(terms_flat, kind="stable")  # rows stay ascending within a term
        terms_sorted = terms_flat[order]
        unique, starts = np.unique(terms_sorted, return_index=True)
        ptr = np.append(starts, terms_sorted.shape[0]).astype(np.int64)
        for name, values, dtype in (
            ("sparse.terms", unique, np.int32),
            ("sparse.ptr", ptr, np.int64),
            ("sparse.docs", rows[order], np.int32),
            ("sparse.vals", vals_flat[order], np.float32),
        ):
            out = _Appender(self.directory / name, np.dtype(dtype))
            out.write(values)
            out.close()
            arrays[name] = {"dtype": np.dtype(dtype).name, "shape": [int(np.asarray(values).shape[0])]}
        self._sparse_ids, self._sparse_vals = [], []

    def abort(self) -> None:
        """Remove a segment that will not be committed."""
        import shutil

        for appender in [getattr(self, "dense", None), getattr(self, "colbert", None)]:
            if appender is not None and not appender.handle.closed:
                appender.handle.close()
        shutil.rmtree(self.directory, ignore_errors=True)


def build_ann(directory: Path, rows: int, dim: int, ann: dict[str, Any]) -> dict[str, Any]:
    """A faiss graph / IVF over the segment's dense vectors, saved as `dense.faiss`."""
    faiss: Any = importlib.import_module("faiss")

    vectors = np.fromfile(directory / "dense.f32", dtype=np.float32).reshape(rows, dim)
    kind = ann["kind"]
    with Step(f"building the {kind.upper()} graph of {rows:,} vectors"):
        return _build_ann(directory, vectors, rows, dim, ann, faiss)


def _build_ann(
    directory: Path, vectors: np.ndarray, rows: int, dim: int, ann: dict[str, Any], faiss: Any
) -> dict[str, Any]:
    kind = ann["kind"]
    if kind == "hnsw":
        m = int(ann.get("m", 32))
        if ann.get("storage", "float32") == "float16":
            # the graph's own copy of the vectors in fp16: half the bytes walked; hits are re-scored from dense.f32
            index = faiss.IndexHNSWSQ(dim, faiss.ScalarQuantizer.QT_fp16, m, faiss.METRIC_INNER_PRODUCT)
            index.train(vectors[:1])
        else:
            index = faiss.IndexHNSWFlat(dim, m, faiss.METRIC_INNER_PRODUCT)
        index.hnsw.efConstruction = int(ann.get("ef_construction", 80))
        index.add(vectors)
    elif kind == "ivf":
        nlist = int(ann.get("nlist") or max(1, min(4096, int(4 * np.sqrt(rows)))))
        quantizer = faiss.IndexFlatIP(dim)
        index = faiss.IndexIVFFlat(quantizer, dim, nlist, faiss.METRIC_INNER_PRODUCT)
        index.train(vectors)
        index.add(vectors)
        ann = {**ann, "nlist": nlist}
    else:
        raise TrivecError(f"unknown ANN kind {kind!r}")
    path = directory / "dense.faiss"
    faiss.write_index(index, str(path))
    with path.open("rb+") as handle:
        os.fsync(handle.fileno())
    return {**ann, "file": "dense.faiss"}


def _map(path: Path, dtype: str, shape: Sequence[int]) -> np.ndarray:
    """A read-only memory map seen as a plain ndarray: the map stays alive as the view's base, and indexing
    skips `np.memmap`'s per-slice subclass bookkeeping (microseconds that add up over thousands of reads)."""
    if int(np.prod(shape)) == 0:
        return np.zeros(tuple(shape), dtype=np.dtype(dtype))
    return np.memmap(path, dtype=np.dtype(dtype), mode="r", shape=tuple(shape)).view(np.ndarray)


MADV_POPULATE_READ = getattr(mmap, "MADV_POPULATE_READ", 22)  # Linux ≥ 5.14; Python 3.11 lacks the name
PREFAULTED = ("colbert.codes", "colbert.scale", "colbert.off", "dense.f32")  # read at random rows per query


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
            if self._ann_bytes is not None:
                ann = self.ann()
                if int(ann.ntotal) != self.rows:
                    problems.append(
                        f"{self.directory / 'dense.faiss'} holds {ann.ntotal} vectors, not {self.rows}"
                    )
        except CorruptIndexError as exc:
            problems.append(str(exc))
        return problems

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
