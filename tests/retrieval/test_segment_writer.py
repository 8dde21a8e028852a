"""The segment writer's bounded-memory steps: postings from per-batch arrays, the ANN graph from `dense.f32`
read a chunk at a time, and a writer that does not read ahead the segment it has just written."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import faiss
import numpy as np
import pytest

from tests.retrieval.conftest import MAX_LENGTH
from trivec import Embedder
from trivec.errors import TrivecError
from trivec.inference.sparse import SparseVector
from trivec.retrieval import Document, Index, segment_writer
from trivec.retrieval.corpus import Chunk
from trivec.retrieval.segment_writer import SegmentWriter

DIM = 32


def corpus(rows: int, seed: int = 0) -> tuple[np.ndarray, list[SparseVector]]:
    rng = np.random.default_rng(seed)
    dense = rng.standard_normal((rows, DIM)).astype(np.float32)
    dense /= np.linalg.norm(dense, axis=1, keepdims=True)
    sparse = []
    for _ in range(rows):
        ids = np.unique(rng.integers(0, 500, int(rng.integers(0, 12))))  # some rows have no term
        sparse.append(SparseVector(ids.astype(np.int32), rng.random(ids.shape[0]).astype(np.float32) + 0.1))
    return dense, sparse


def write(directory: Path, dense: np.ndarray, sparse: list[SparseVector], ann: dict[str, Any] | None) -> dict:
    writer = SegmentWriter(directory, DIM, True, None, None)
    for start in range(0, dense.shape[0], 37):  # uneven batches
        end = min(start + 37, dense.shape[0])
        chunks = [Chunk(id=f"d{i}", doc_id=f"d{i}", text="") for i in range(start, end)]
        writer.append(chunks, dense[start:end], sparse[start:end], None)
    return writer.finish(ann)


def test_postings_hold_every_term_of_every_row_in_row_order(tmp_path: Path) -> None:
    dense, sparse = corpus(300)
    write(tmp_path / "seg", dense, sparse, None)
    terms = np.fromfile(tmp_path / "seg" / "sparse.terms", dtype=np.int32)
    ptr = np.fromfile(tmp_path / "seg" / "sparse.ptr", dtype=np.int64)
    docs = np.fromfile(tmp_path / "seg" / "sparse.docs", dtype=np.int32)
    vals = np.fromfile(tmp_path / "seg" / "sparse.vals", dtype=np.float32)
    expected: dict[int, list[tuple[int, float]]] = {}
    for row, vector in enumerate(sparse):
        for term, value in zip(vector.indices.tolist(), vector.values.tolist(), strict=True):
            expected.setdefault(term, []).append((row, value))
    assert terms.tolist() == sorted(expected)
    assert ptr[0] == 0 and ptr[-1] == docs.shape[0] == sum(len(v) for v in sparse)
    for i, term in enumerate(terms.tolist()):
        rows, values = zip(*expected[term], strict=True)
        assert docs[ptr[i] : ptr[i + 1]].tolist() == list(rows)
        np.testing.assert_array_equal(vals[ptr[i] : ptr[i + 1]], np.asarray(values, dtype=np.float32))


def test_negative_term_ids_are_refused(tmp_path: Path) -> None:
    writer = SegmentWriter(tmp_path / "seg", DIM, True, None, None)
    bad = [SparseVector(np.array([-3, 4], np.int32), np.array([0.5, 0.5], np.float32))]
    writer.append([Chunk(id="a", doc_id="a", text="")], np.ones((1, DIM), np.float32), bad, None)
    with pytest.raises(TrivecError, match="sparse term ids must be >= 0, got -3"):
        writer.finish(None)


def counted_chunks(monkeypatch: pytest.MonkeyPatch, rows_per_chunk: int) -> list[int]:
    """Make build_ann read `rows_per_chunk` rows at a time; the sizes of the chunks it read."""
    monkeypatch.setattr(segment_writer, "ANN_CHUNK_BYTES", rows_per_chunk * 4 * DIM)
    sizes: list[int] = []
    original = segment_writer._chunks

    def chunks(path: Path, rows: int, dim: int) -> Any:
        for part in original(path, rows, dim):
            sizes.append(part.shape[0])
            yield part

    monkeypatch.setattr(segment_writer, "_chunks", chunks)
    return sizes


@pytest.mark.parametrize("storage", ["float16", "float32"])
def test_hnsw_built_in_chunks_finds_the_neighbours_of_one_add(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, storage: str
) -> None:
    dense, sparse = corpus(2000, seed=1)
    ann = {"kind": "hnsw", "m": 16, "ef_construction": 80, "storage": storage}
    write(tmp_path / "whole", dense, sparse, ann)
    sizes = counted_chunks(monkeypatch, 300)
    write(tmp_path / "chunked", dense, sparse, ann)
    assert sizes == [300] * 6 + [200]
    queries = dense[::40] + 0.05 * np.random.default_rng(2).standard_normal((50, DIM)).astype(np.float32)
    found = []
    for name in ("whole", "chunked"):
        index = faiss.read_index(str(tmp_path / name / "dense.faiss"))
        assert index.ntotal == 2000
        index.hnsw.efSearch = 2000  # every node reachable: the exact neighbours of the stored vectors
        found.append(index.search(queries, 10)[1])
    np.testing.assert_array_equal(found[0], found[1])


def test_ivf_built_in_chunks_is_the_index_of_one_add(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    dense, sparse = corpus(1000, seed=3)
    write(tmp_path / "whole", dense, sparse, {"kind": "ivf", "nlist": 8})
    sizes = counted_chunks(monkeypatch, 128)
    write(tmp_path / "chunked", dense, sparse, {"kind": "ivf", "nlist": 8})
    assert len(sizes) == 8
    whole = (tmp_path / "whole" / "dense.faiss").read_bytes()
    assert whole == (tmp_path / "chunked" / "dense.faiss").read_bytes()


def test_a_writer_reads_its_new_segment_ahead_only_when_it_searches(
    tmp_path: Path, tiny: Embedder, small_docs: list[Document]
) -> None:
    path = tmp_path / "ix"
    index = Index.create(path, model=tiny, max_length=MAX_LENGTH)
    index.add(small_docs[:20])
    segments = index.store.segments  # type: ignore[attr-defined]
    assert len(segments) == 1 and not segments[0].prefaulted
    index.search("shock waves", top_k=3)
    assert segments[0].prefaulted and index.wait_checked()
    index.close()
    reopened = Index.open(path)  # opening reads ahead at once, as before
    assert reopened.store.segments[0].prefaulted  # type: ignore[attr-defined]
    reopened.close()
