"""The search's re-rank stage: a cross-encoder re-scores the first stage's top `rerank_depth` hits."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from tests.conftest import TINY_RERANKER
from tests.retrieval.conftest import MAX_LENGTH
from trivec import Embedder
from trivec.errors import InputError
from trivec.inference.reranker import Reranker
from trivec.retrieval import Document, Index
from trivec.retrieval.rerank import passage_text, rerank_depth, rerank_hits


@pytest.fixture(scope="module")
def reranker() -> Reranker:
    return Reranker.from_pretrained(TINY_RERANKER, device="cpu")


@pytest.fixture(scope="module")
def index(tmp_path_factory: pytest.TempPathFactory, tiny: Embedder, small_docs: list[Document]):
    opened = Index.create(tmp_path_factory.mktemp("rerank") / "ix", tiny, max_length=MAX_LENGTH)
    opened.add(small_docs[:60])
    yield opened
    opened.close()


QUERIES = ["boundary layer transition", "heat transfer in hypersonic flow"]


def test_rerank_reorders_the_first_stage_depth(index, reranker: Reranker) -> None:
    first = index.search(QUERIES, top_k=20)
    reranked = index.search(QUERIES, top_k=5, rerank=reranker, rerank_depth=20)
    for query, base, hits in zip(QUERIES, first, reranked, strict=True):
        assert len(hits) == 5
        # every re-ranked hit comes from the first stage's top 20, scored by the cross-encoder
        assert {h.id for h in hits} <= {h.id for h in base}
        expected = reranker.score([(query, passage_text(h)) for h in base])
        best = np.argsort(-expected, kind="stable")[:5]
        assert [h.id for h in hits] == [base[i].id for i in best]
        for hit in hits:
            assert hit.scores["rerank"] == hit.score
            original = next(b for b in base if b.id == hit.id)
            assert hit.scores["retrieval"] == original.score
        assert [h.score for h in hits] == sorted((h.score for h in hits), reverse=True)


def test_rerank_by_path_loads_once(index) -> None:
    one = index.search(QUERIES[0], top_k=3, rerank=str(TINY_RERANKER), rerank_depth=10)[0]
    again = index.search(QUERIES[0], top_k=3, rerank=TINY_RERANKER, rerank_depth=10)[0]
    assert [h.id for h in one] == [h.id for h in again]
    assert len(index._rerankers) == 1


def test_default_depth_and_bad_depths(index, reranker: Reranker) -> None:
    assert rerank_depth(None, 10) == 100 and rerank_depth(None, 300) == 300
    with pytest.raises(InputError, match="rerank_depth 5 is below top_k 10"):
        index.search(QUERIES, top_k=10, rerank=reranker, rerank_depth=5)
    with pytest.raises(InputError, match="rerank_depth must be a positive integer"):
        index.search(QUERIES, top_k=10, rerank=reranker, rerank_depth=0)
    with pytest.raises(InputError, match="rerank_depth applies with rerank"):
        index.search(QUERIES, top_k=10, rerank_depth=50)


def test_rerank_hits_keeps_lists_apart(index, reranker: Reranker) -> None:
    base = index.search(QUERIES, top_k=4)
    out = rerank_hits(reranker, QUERIES, [base[0], []], top_k=2)
    assert len(out[0]) == 2 and out[1] == []
    with pytest.raises(InputError, match="2 queries but 1 hit lists"):
        rerank_hits(reranker, QUERIES, [base[0]], top_k=2)


def test_not_a_reranker_is_refused(index, tmp_path: Path) -> None:
    from tests.conftest import TINY_M3
    from trivec.errors import CheckpointError

    with pytest.raises(CheckpointError, match="is not a reranker"):
        index.search(QUERIES, top_k=3, rerank=TINY_M3)
