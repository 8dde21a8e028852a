"""Segment store: segments of at most `max_segment_rows` rows (writing, merging, compacting, the setting)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from tests.conftest import TINY_M3
from tests.retrieval.conftest import MAX_LENGTH, subset
from trivec import Embedder, EncodeResult
from trivec.cli import app
from trivec.errors import InputError
from trivec.retrieval import Document, EmbeddedIndex, Index
from trivec.retrieval.corpus import Chunk
from trivec.retrieval.segment_sizes import merge_groups, segment_cuts, smallest_to_merge


def make(path: Path, tiny: Embedder, **options: object) -> EmbeddedIndex:
    index = Index.create(path, tiny, max_length=MAX_LENGTH, **options)
    assert isinstance(index, EmbeddedIndex)
    return index


def chunks_of(*doc_ids: str) -> list[Chunk]:
    return [Chunk(id=f"{d}#{i}", doc_id=d, text="", title=None, position=i) for i, d in enumerate(doc_ids)]


def rows_per_segment(index: EmbeddedIndex) -> list[int]:
    return [seg.rows for seg in index.store.segments]


def test_segment_cuts_begin_a_segment_at_the_first_document_that_does_not_fit() -> None:
    one_chunk = chunks_of(*"abcdefg")
    assert segment_cuts(one_chunk, 0, 3, None) == [3, 6]
    assert segment_cuts(one_chunk, 2, 3, None) == [1, 4]
    assert segment_cuts(one_chunk, 3, 3, None) == [0, 3, 6]
    assert segment_cuts(one_chunk, 0, 100, None) == []
    # a document's chunks stay together: b's three would pass 3 after a's two, c would pass 3 after b
    assert segment_cuts(chunks_of("a", "a", "b", "b", "b", "c"), 0, 3, None) == [2, 5]
    assert segment_cuts(chunks_of("a", "a", "b", "b", "b", "c"), 0, 4, None) == [2]
    # a document longer than the limit fills a segment of its own
    assert segment_cuts(chunks_of("a", "b", "b", "b", "b", "b", "c"), 0, 3, None) == [1, 6]
    # continued from the previous batch: stays in that segment, even past the limit
    assert segment_cuts(chunks_of("a", "a", "b"), 3, 3, "a") == [2]
    assert segment_cuts(chunks_of("a", "a", "b"), 3, 3, "z") == [0]


def test_merge_groups_pack_neighbours_under_the_limit() -> None:
    assert merge_groups([5, 5, 5, 1], None) == [[0, 1, 2, 3]]
    assert merge_groups([5, 5, 5, 1], 10) == [[0, 1], [2, 3]]
    assert merge_groups([12, 3, 3, 9], 10) == [[0], [1, 2], [3]]


def test_capped_build_writes_segments_of_at_most_the_limit_and_searches_them_all(
    tmp_path: Path, tiny: Embedder, small_docs: list[Document], small_encoded: EncodeResult
) -> None:
    batches = [
        (small_docs[i : i + 20], subset(small_encoded, list(range(i, i + 20)))) for i in range(0, 60, 20)
    ]
    capped = make(tmp_path / "capped", tiny, max_segment_rows=16)
    whole = make(tmp_path / "whole", tiny)
    generation = capped.generation
    assert capped.add_encoded_batches(batches) == 60 and whole.add_encoded_batches(batches) == 60
    assert rows_per_segment(capped) == [16, 16, 16, 12] and rows_per_segment(whole) == [60]
    assert capped.generation == generation + 1  # still one commit
    assert len(capped) == 60 and capped.info()["documents"] == 60
    queries = subset(small_encoded, [3, 17, 42, 59])
    for mode in ("dense", "sparse", "colbert", "hybrid"):
        got = capped.search_vectors(queries, top_k=10, mode=mode)
        want = whole.search_vectors(queries, top_k=10, mode=mode)
        for a, b in zip(got, want, strict=True):  # exact search: the same hits, the same scores
            assert [h.doc_id for h in a] == [h.doc_id for h in b]
            np.testing.assert_allclose([h.score for h in a], [h.score for h in b], rtol=1e-5)
    capped.close()
    reopened = Index.open(tmp_path / "capped")
    assert reopened.settings.max_segment_rows == 16 and reopened.info()["settings"]["max_segment_rows"] == 16
    assert reopened.get(small_docs[33].id)[0].doc_id == small_docs[33].id


def test_merges_and_compaction_stay_under_the_limit(
    tmp_path: Path, tiny: Embedder, small_docs: list[Document], small_encoded: EncodeResult
) -> None:
    index = make(tmp_path / "ix", tiny, max_segments=2, max_segment_rows=25)
    for start in range(0, 50, 10):
        index.add_encoded(
            small_docs[start : start + 10], subset(small_encoded, list(range(start, start + 10)))
        )
        assert max(rows_per_segment(index)) <= 25
    # the two smallest fit together once (10 + 10), never three; more than max_segments is kept
    assert sorted(rows_per_segment(index)) == [10, 20, 20] and len(index) == 50
    assert rows_per_segment(index) == [20, 20, 10]
    index.delete([d.id for d in small_docs[0:15]])
    index.compact()
    assert rows_per_segment(index) == [25, 10] and len(index) == 35  # neighbours packed, deleted rows gone
    assert len(list((tmp_path / "ix" / "segments").iterdir())) == 2
    hits = index.search_vectors(subset(small_encoded, [42]), top_k=1)
    assert hits[0][0].doc_id == small_docs[42].id


def test_chunks_of_a_document_stay_in_one_segment(
    tmp_path: Path, tiny: Embedder, small_docs: list[Document]
) -> None:
    index = make(tmp_path / "ix", tiny, chunk_tokens=24, chunk_overlap=4, max_segment_rows=5)
    index.add(small_docs[:6])
    rows = rows_per_segment(index)
    assert len(rows) > 1 and sum(rows) == index.num_chunks
    for seg in index.store.segments:
        docs = {seg.chunk(r).doc_id for r in range(seg.rows)}
        assert seg.rows <= 5 or len(docs) == 1  # only a document longer than the limit passes it
    for doc in small_docs[:6]:
        located = index.store.snapshot.locate()[doc.id]
        assert len({seg for seg, _ in located}) == 1


def test_the_setting_is_checked_once_and_shown(
    tmp_path: Path, tiny: Embedder, small_docs: list[Document]
) -> None:
    for bad in (0, -3, 2.5, True):
        with pytest.raises(InputError, match="max_segment_rows must be a positive integer"):
            make(tmp_path / f"bad{bad}", tiny, max_segment_rows=bad)
    corpus = tmp_path / "corpus.jsonl"
    corpus.write_text(
        "".join(json.dumps({"id": d.id, "text": d.text}) + "\n" for d in small_docs[:7]), "utf-8"
    )
    ix = str(tmp_path / "ix")
    runner = CliRunner()
    build = [
        "index",
        "build",
        "--model",
        str(TINY_M3),
        "--corpus",
        str(corpus),
        "--index",
        ix,
        "--max-length",
    ]
    refused = runner.invoke(app, [*build, "64", "--max-segment-rows", "0", "-q"])
    assert refused.exit_code == 2 and "--max-segment-rows must be a positive integer, got 0" in refused.output
    assert runner.invoke(app, [*build, "64", "--max-segment-rows", "3", "-q"]).exit_code == 0
    info = runner.invoke(app, ["index", "info", "--index", ix])
    assert info.exit_code == 0 and "segments   3 (generation 1), at most 3 rows each" in info.stdout


def test_smallest_to_merge_takes_the_smallest_down_to_the_limit_and_under_the_cap() -> None:
    assert smallest_to_merge([9, 1, 5, 2], max_segments=3, cap=None) == [1, 3]
    assert smallest_to_merge([9, 1, 5, 2], max_segments=2, cap=None) == [1, 2, 3]
    assert smallest_to_merge([9, 1, 5, 2], max_segments=2, cap=4) == [1, 3]  # 1 + 2 fit, + 5 does not
    assert smallest_to_merge([9, 6, 5, 7], max_segments=3, cap=10) == []  # no two fit together
