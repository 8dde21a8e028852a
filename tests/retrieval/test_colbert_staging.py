"""Rows staged as float16 while residual codes wait for their codebook: the sample read from the staged files,
where a staged segment ends, segments under `max_segment_rows`, and the manifest's format version."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from trivec.inference.encoder import Embedder, EncodeResult
from trivec.retrieval import Document, Index, IndexSettings, base, manifest, residual, segment_sizes
from trivec.retrieval.manifest import read_manifest
from trivec.retrieval.pooling import pooled_count

from .conftest import MAX_LENGTH, subset

RESIDUAL = {"colbert_dtype": "residual2", "colbert_pool_factor": 2}


def test_the_sample_is_the_seeded_choice_of_the_live_staged_rows(
    tmp_path: Path,
    tiny: Embedder,
    small_docs: list[Document],
    small_encoded: EncodeResult,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """`staged_sample` reads, a few blocks per segment, exactly the rows `sample_rows` picks from the live rows
    of the staged segments in order (deleted documents left out)."""
    index = Index.create(tmp_path / "ix", tiny, max_length=MAX_LENGTH, **RESIDUAL)
    for lo in (0, 20, 40):
        index.add_encoded(small_docs[lo : lo + 20], subset(small_encoded, list(range(lo, lo + 20))))
    index.delete([small_docs[3].id, small_docs[25].id])
    store = index.store  # type: ignore[attr-defined]
    assert all(segment.colbert_staged for segment in store.segments)
    live = [
        np.asarray(segment.colbert_codes(int(r))[0])
        for segment, mask in zip(store.segments, store.snapshot.live, strict=True)
        for r in (np.arange(segment.rows) if mask is None else np.flatnonzero(mask))
    ]
    every = np.concatenate(live)
    assert segment_sizes.staged_tokens(store.segments, store.snapshot.live) == every.shape[0]
    monkeypatch.setattr(residual, "FIT_SAMPLE", every.shape[0] // 3)  # a choice, not all of them
    monkeypatch.setattr(segment_sizes, "COPY_TOKENS", 37)  # several reads per segment
    sample = segment_sizes.staged_sample(store.segments, store.snapshot.live)
    assert sample.dtype == np.float16
    assert np.array_equal(sample, every[residual.sample_rows(every.shape[0])])
    index.close()


def test_a_staged_segment_ends_at_a_documents_first_chunk(
    tmp_path: Path,
    tiny: Embedder,
    small_docs: list[Document],
    fit_at: Callable[[int], None],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Chunked documents whose chunks cross encoding batches: the segment whose rows fill the sample ends at
    a document's first chunk, so every document stays in one segment and is counted once."""
    monkeypatch.setattr(base, "ENCODE_BATCH", 5)
    fit_at(300)
    docs = small_docs[:30]
    index = Index.create(tmp_path / "ix", tiny, max_length=MAX_LENGTH, chunk_tokens=16, **RESIDUAL)
    index.add(docs)
    info = index.info()
    assert info["colbert_residual"]["centroids"] and info["colbert_residual"]["staged_tokens"] == 0
    assert info["chunks"] > 2 * len(docs) and info["documents"] == len(docs)
    located = index.store.snapshot.locate()  # type: ignore[attr-defined]
    assert all(len({segment for segment, _ in rows}) == 1 for rows in located.values())
    index.delete([d.id for d in docs])
    assert index.info()["documents"] == 0
    index.close()


def test_staged_segments_are_coded_one_by_one_under_the_row_cap(
    tmp_path: Path,
    tiny: Embedder,
    small_docs: list[Document],
    small_encoded: EncodeResult,
    fit_at: Callable[[int], None],
) -> None:
    """Coding the staged rows never makes a segment past `max_segment_rows`: three writes of 10 documents stay
    staged, the fourth fills the sample, and each staged segment is coded on its own."""
    parts = [
        (small_docs[i : i + 10], subset(small_encoded, list(range(i, i + 10)))) for i in range(0, 40, 10)
    ]
    floor = IndexSettings().colbert_pool_floor
    tokens = sum(
        pooled_count(rows.shape[0], 2, floor) for _, encoded in parts[:3] for rows in encoded.colbert or []
    )
    fit_at(tokens + 1)
    index = Index.create(tmp_path / "ix", tiny, max_length=MAX_LENGTH, max_segment_rows=15, **RESIDUAL)
    for docs, encoded in parts:
        index.add_encoded(docs, encoded)
        if docs is parts[2][0]:
            assert index.info()["colbert_residual"]["staged_tokens"] == tokens
    body = read_manifest(tmp_path / "ix")
    assert body["residual"] and [record["rows"] for record in body["segments"]] == [10, 10, 10, 10]
    assert not any(record.get("colbert_staged") for record in body["segments"])
    assert index.info()["documents"] == 40
    index.close()


def test_a_staged_index_is_format_version_2(
    tmp_path: Path,
    tiny: Embedder,
    small_docs: list[Document],
    small_encoded: EncodeResult,
    fit_at: Callable[[int], None],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """While a segment stages float16 rows the manifest says version 2, which a reader of version 1 refuses
    (it would decode them as residual codes once a codebook is fitted); once coded, version 1 again."""
    import json

    path = tmp_path / "ix"
    with Index.create(path, tiny, max_length=MAX_LENGTH, **RESIDUAL) as index:
        index.add_encoded(small_docs[:20], subset(small_encoded, list(range(20))))
    assert json.loads((path / manifest.MANIFEST).read_text(encoding="utf-8"))["version"] == 2
    monkeypatch.setattr(manifest, "VERSION", 1)
    with pytest.raises(manifest.NotAnIndexError, match="format version 2; this trivec reads version 1"):
        read_manifest(path)
    monkeypatch.undo()
    fit_at(1)
    with Index.open(path) as index:
        index.add_encoded(small_docs[20:30], subset(small_encoded, list(range(20, 30))))
    assert json.loads((path / manifest.MANIFEST).read_text(encoding="utf-8"))["version"] == 1
