"""Writing a segment: its files appended row batch by row batch, then the inverted index, the dense codes
(`dense_quantization`), the optional ANN graph and the checksums when it is finished (the layout is
described in `trivec.retrieval.segment`).

Every file is fsync'd before its size and checksum go into the record that the manifest commits, so a
segment the manifest references is whole on disk; one a writer left unfinished is never referenced.
"""

from __future__ import annotations

import importlib
import json
import os
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import IO, Any

import numpy as np

from trivec import heap
from trivec.errors import TrivecError
from trivec.inference.sparse import SparseVector
from trivec.io import fsync_dir
from trivec.progress import Step
from trivec.retrieval import dense_codes
from trivec.retrieval.colbert import FITTED, ColbertCodec
from trivec.retrieval.corpus import Chunk
from trivec.retrieval.integrity import write_checksums


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
        colbert_full_dim: int | None,
        dense_quantization: str = "none",
    ) -> None:
        """`colbert_codec`: the index's (None: no ColBERT rows); one whose residual codes still wait for their
        codebook stores float16 rows instead (`staged`, recorded with the segment); `colbert_full_dim`: the
        model's ColBERT dimensions."""
        directory.mkdir(parents=True, exist_ok=False)
        self.directory = directory
        self.rows = 0
        self.ids = _StringColumn(directory, "ids")
        self.doc_ids = _StringColumn(directory, "doc_ids")
        self.docs = _StringColumn(directory, "docs")
        self.dense_dim = dense_dim
        self.dense = _Appender(directory / "dense.f32", np.dtype(np.float32)) if dense_dim else None
        self.quantization = dense_quantization if dense_dim else "none"
        self.has_sparse = has_sparse
        # one flat array of term ids, weights and per-row lengths per appended batch, not two small arrays
        # per row: held until `finish` writes the postings, so their size is the writer's (≈ 480 bytes per
        # document at 60 terms, where per-row arrays and their objects took ≈ 750 and kept the heap fragmented)
        self._sparse_ids: list[np.ndarray] = []
        self._sparse_vals: list[np.ndarray] = []
        self._sparse_lengths: list[np.ndarray] = []
        self.staged = colbert_codec is not None and colbert_codec.staged
        self.codec = colbert_codec.staging() if colbert_codec is not None and self.staged else colbert_codec
        self.colbert_rows = [0]
        self.colbert_dim: int | None = None
        if self.codec is not None:
            self.colbert_dim = self.codec.code_width(self.codec.stored_dim(colbert_full_dim or 0))
            self.colbert = _Appender(directory / "colbert.codes", self.codec.storage_dtype)
            self.scales = (
                _Appender(directory / "colbert.scale", np.dtype(np.float32))
                if self.codec.has_scales
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
        """Append rows; ColBERT vectors come raw (`colbert`, encoded here) or already encoded (`colbert_codes`:
        the codec's, or — for residual codes — float16 rows as staged before the codebook, coded here)."""
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
            self._sparse_lengths.append(np.fromiter((len(v) for v in sparse), dtype=np.int64, count=n))
            self._sparse_ids.append(
                np.concatenate([v.indices for v in sparse]).astype(np.int32, copy=False)
                if n
                else np.zeros(0, np.int32)
            )
            self._sparse_vals.append(
                np.concatenate([v.values for v in sparse]).astype(np.float32, copy=False)
                if n
                else np.zeros(0, np.float32)
            )
        if self.codec is not None:
            codec = self.codec
            pairs = colbert_codes if colbert_codes is not None else [codec.encode(r) for r in colbert or []]
            if colbert_codes and codec.dtype in FITTED and colbert_codes[0][0].dtype == np.float16:
                # float16 rows staged before the codebook was fitted: coded now
                pairs = [codec.code(rows) for rows, _ in colbert_codes]
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
            if self.quantization != "none":
                self._write_dense_codes(arrays)
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
        record = {
            "name": self.directory.name,
            "rows": self.rows,
            "arrays": arrays,
            "files": files,
            "ann": ann_record,
            "checksums": checksums,
        }
        if self.quantization != "none":
            record["dense_quantization"] = self.quantization
        if self.staged:
            record["colbert_staged"] = True
        return record

    def _write_dense_codes(self, arrays: dict[str, dict[str, Any]]) -> None:
        """`dense.codes` (and int8's `dense.scale`) from the float32 rows just written, whose per-dimension
        ranges are known only now: read back from the file a chunk at a time."""
        kind, dim = self.quantization, int(self.dense_dim or 0)
        vectors = (
            np.memmap(self.directory / "dense.f32", dtype=np.float32, mode="r", shape=(self.rows, dim))
            if self.rows
            else np.zeros((0, dim), np.float32)
        )
        scale = dense_codes.fit(kind, vectors)
        codes = _Appender(self.directory / dense_codes.CODES, np.dtype(np.uint8))
        try:
            for start in range(0, self.rows, dense_codes.CHUNK_ROWS):
                codes.write(dense_codes.encode(kind, vectors[start : start + dense_codes.CHUNK_ROWS], scale))
        finally:
            codes.close()
        arrays[dense_codes.CODES] = {
            "dtype": "uint8",
            "shape": [self.rows, dense_codes.code_width(kind, dim)],
        }
        if scale is not None:
            out = _Appender(self.directory / dense_codes.SCALE, np.dtype(np.float32))
            out.write(scale)
            out.close()
            arrays[dense_codes.SCALE] = {"dtype": "float32", "shape": list(scale.shape)}
        del vectors

    def _write_postings(self, arrays: dict[str, dict[str, Any]]) -> None:
        """The inverted index (`sparse.terms`, `sparse.ptr`, `sparse.docs`, `sparse.vals`: rows ascending
        within a term) from the appended batches. Each input is let go as soon as it is used and the freed
        heap given back, so that the graph built next does not sit on top of it (docs/scale.md)."""
        lengths = np.concatenate(self._sparse_lengths) if self._sparse_lengths else np.zeros(0, np.int64)
        terms = np.concatenate(self._sparse_ids) if self._sparse_ids else np.zeros(0, np.int32)
        self._sparse_ids, self._sparse_lengths = [], []
        if terms.size and int(terms.min()) < 0:
            raise TrivecError(f"sparse term ids must be >= 0, got {int(terms.min())}")
        order = np.argsort(terms, kind="stable")  # rows stay ascending within a term
        counts = np.bincount(terms) if terms.size else np.zeros(0, np.int64)
        del terms
        unique = np.flatnonzero(counts).astype(np.int32)
        ptr = np.concatenate([[0], np.cumsum(counts[unique])]).astype(np.int64)
        self._write_array(arrays, "sparse.terms", unique)
        self._write_array(arrays, "sparse.ptr", ptr)
        self._write_array(
            arrays, "sparse.docs", np.repeat(np.arange(self.rows, dtype=np.int32), lengths)[order]
        )
        del lengths
        values = np.concatenate(self._sparse_vals) if self._sparse_vals else np.zeros(0, np.float32)
        self._sparse_vals = []
        self._write_array(arrays, "sparse.vals", values[order])
        del values, order
        heap.trim()

    def _write_array(self, arrays: dict[str, dict[str, Any]], name: str, values: np.ndarray) -> None:
        out = _Appender(self.directory / name, values.dtype)
        out.write(values)
        out.close()
        arrays[name] = {"dtype": values.dtype.name, "shape": [int(values.shape[0])]}

    def abort(self) -> None:
        """Remove a segment that will not be committed."""
        import shutil

        for appender in [getattr(self, "dense", None), getattr(self, "colbert", None)]:
            if appender is not None and not appender.handle.closed:
                appender.handle.close()
        shutil.rmtree(self.directory, ignore_errors=True)


ANN_CHUNK_BYTES = 96 << 20  # float32 rows handed to faiss per add: 65,536 rows at 384 dimensions


def build_ann(directory: Path, rows: int, dim: int, ann: dict[str, Any]) -> dict[str, Any]:
    """A faiss graph / IVF over the segment's dense vectors, saved as `dense.faiss`.

    The vectors are read from `dense.f32` a chunk at a time (`ANN_CHUNK_BYTES`) and added chunk by chunk, so
    the float32 rows are never all in memory beside the graph and its own copy of them (1.5 GB at 1M × 384).
    IVF: the same index as one add. HNSW: faiss inserts the points of each add call by level (highest first,
    shuffled), so the graph is not byte for byte the one a single add builds; searches at a high ef find the
    same neighbours (tested), and recall at the default ef was measured up to 1M (docs/scale.md)."""
    faiss: Any = importlib.import_module("faiss")

    kind = ann["kind"]
    with Step(f"building the {kind.upper()} graph of {rows:,} vectors"):
        return _build_ann(directory, rows, dim, ann, faiss)


def _chunks(path: Path, rows: int, dim: int) -> Iterator[np.ndarray]:
    """The float32 rows of `path`, `ANN_CHUNK_BYTES` at a time, read into one buffer (plain reads: the file's
    pages stay page cache, not this process's mapped memory)."""
    step = max(1, ANN_CHUNK_BYTES // (4 * dim))
    buffer = np.empty((min(step, rows), dim), dtype=np.float32)
    with path.open("rb") as handle:
        for start in range(0, rows, step):
            part = buffer[: min(step, rows - start)]
            view = part.data.cast("B")
            if handle.readinto(view) != view.nbytes:
                raise TrivecError(f"{path} is shorter than its {rows:,} rows of {dim} float32 values")
            yield part


def _build_ann(directory: Path, rows: int, dim: int, ann: dict[str, Any], faiss: Any) -> dict[str, Any]:
    path = directory / "dense.f32"
    kind = ann["kind"]
    if kind == "hnsw":
        m = int(ann.get("m", 32))
        if ann.get("storage", "float32") == "float16":
            # the graph's own copy of the vectors in fp16: half the bytes walked; hits are re-scored from dense.f32
            index = faiss.IndexHNSWSQ(dim, faiss.ScalarQuantizer.QT_fp16, m, faiss.METRIC_INNER_PRODUCT)
            index.train(np.zeros((1, dim), np.float32))  # fp16 needs no training; faiss asks for a call
        else:
            index = faiss.IndexHNSWFlat(dim, m, faiss.METRIC_INNER_PRODUCT)
        index.hnsw.efConstruction = int(ann.get("ef_construction", 80))
        for part in _chunks(path, rows, dim):
            index.add(part)
    elif kind == "ivf":
        nlist = int(ann.get("nlist") or max(1, min(4096, int(4 * np.sqrt(rows)))))
        quantizer = faiss.IndexFlatIP(dim)
        index = faiss.IndexIVFFlat(quantizer, dim, nlist, faiss.METRIC_INNER_PRODUCT)
        vectors = np.memmap(path, dtype=np.float32, mode="r", shape=(rows, dim))
        index.train(vectors)  # k-means samples its training points from the map
        del vectors
        for part in _chunks(path, rows, dim):
            index.add(part)
        ann = {**ann, "nlist": nlist}
    else:
        raise TrivecError(f"unknown ANN kind {kind!r}")
    out = directory / "dense.faiss"
    faiss.write_index(index, str(out))
    with out.open("rb+") as handle:
        os.fsync(handle.fileno())
    return {**ann, "file": "dense.faiss"}
