"""A search does its OpenMP work on its own thread (issue #20, defect 6): the ColBERT re-rank's matmul and the
HNSW walk used every core's OpenMP team, and with one other CPU-bound process running each parallel region
waited at its barrier for a descheduled thread — hybrid + ColBERT p50 went from 4.9 to 20 ms, and a server,
which encodes on the same cores while it searches, answered /search at ~10 req/s. The caller's thread counts are
restored afterwards (an `Embedder` on the same thread keeps its threads)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch

from tests.retrieval.conftest import MAX_LENGTH
from trivec import Embedder
from trivec.compiled import one_thread
from trivec.retrieval import Document, Index
from trivec.retrieval import segment_search as search_module
from trivec.retrieval.segment_search import SegmentSearch


@pytest.fixture()
def two_threads() -> Any:
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    yield
    torch.set_num_threads(before)


def test_one_thread_sets_and_restores_the_callers_counts(two_threads: None) -> None:
    import faiss

    faiss.omp_set_num_threads(2)
    with one_thread():
        assert torch.get_num_threads() == 1 and faiss.omp_get_max_threads() == 1
    assert torch.get_num_threads() == 2 and faiss.omp_get_max_threads() == 2


def test_the_rerank_and_the_graph_walk_run_on_one_thread(
    tmp_path: Path,
    tiny: Embedder,
    small_docs: list[Document],
    monkeypatch: pytest.MonkeyPatch,
    two_threads: None,
) -> None:
    import faiss

    with Index.create(tmp_path / "ix", model=tiny, max_length=MAX_LENGTH, dense_index="hnsw") as index:
        index.add(small_docs)
    seen: dict[str, int] = {}
    maxsim_chunked = search_module.maxsim_chunked
    dense_top = SegmentSearch._dense_top_here

    def rerank(*args: Any) -> Any:
        seen["rerank torch"] = torch.get_num_threads()
        return maxsim_chunked(*args)

    def walk(self: SegmentSearch, *args: Any) -> Any:
        seen["walk faiss"], seen["walk torch"] = faiss.omp_get_max_threads(), torch.get_num_threads()
        return dense_top(self, *args)

    monkeypatch.setattr(search_module, "maxsim_chunked", rerank)
    monkeypatch.setattr(SegmentSearch, "_dense_top_here", walk)
    with Index.open(tmp_path / "ix", model=tiny) as index:
        hits = index.search("boundary layer transition", top_k=5)[0]
    assert len(hits) == 5 and set(hits[0].scores) == {"dense", "sparse", "colbert"}
    assert seen == {"rerank torch": 1, "walk faiss": 1, "walk torch": 1}
    assert torch.get_num_threads() == 2  # the caller's thread keeps its count
