"""The compiled lexical-matching scorer: both strategies against a bincount over the postings (hypothesis)."""

from __future__ import annotations

import contextlib
import threading
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from trivec.inference.sparse import SparseVector
from trivec.retrieval import sparse_scorer
from trivec.retrieval.sparse_scorer import Postings, SparseScorer

VOCAB = 40


def build_postings(rows: list[dict[int, float]]) -> Postings:
    """An inverted index of `rows` (term → weight per row), as a segment stores it."""
    terms = sorted({t for row in rows for t in row})
    ptr, docs, vals = [0], [], []
    for t in terms:
        for r, row in enumerate(rows):
            if t in row:
                docs.append(r)
                vals.append(row[t])
        ptr.append(len(docs))
    return Postings(
        np.array(terms, np.int32),
        np.array(ptr, np.int64),
        np.array(docs, np.int32),
        np.array(vals, np.float32),
        rows=len(rows),
    )


def bincount_scores(postings: Postings, query: SparseVector) -> np.ndarray:
    """The reference: every matching posting times its query weight, summed per row in query-term order."""
    rows, contrib = [], []
    for t, w in zip(query.indices.tolist(), query.values.tolist(), strict=True):
        hit = np.flatnonzero(postings.terms == t)
        if hit.size:
            b, e = postings.ptr[hit[0]], postings.ptr[hit[0] + 1]
            rows.append(postings.docs[b:e])
            contrib.append(postings.vals[b:e] * np.float64(w))
    if not rows:
        return np.zeros(postings.rows)
    return np.bincount(np.concatenate(rows), np.concatenate(contrib), minlength=postings.rows)


weights = st.floats(0.0625, 3, width=32, allow_subnormal=False)
corpus = st.lists(st.dictionaries(st.integers(0, VOCAB - 1), weights, max_size=8), min_size=1, max_size=60)


@st.composite
def queries(draw: st.DrawFn) -> SparseVector:
    ids = draw(st.lists(st.integers(0, VOCAB + 5), unique=True, max_size=10))  # some terms have no postings
    values = draw(st.lists(weights, min_size=len(ids), max_size=len(ids)))
    return SparseVector(np.array(ids, np.int32), np.array(values, np.float32))


@pytest.fixture(params=[0.0, 1.1], ids=["scan", "touched"])
def strategy(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> None:
    """Force one strategy: a share of 0 scans every row, one above 1 always tracks touched rows."""
    monkeypatch.setattr(sparse_scorer, "SCAN_FRACTION", request.param)


# the fixture only sets a module constant: sharing it across generated inputs is what is meant
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(rows=corpus, query=queries(), k=st.integers(1, 12), data=st.data())
def test_scores_and_top_k_equal_the_bincount_reference(
    strategy: None, rows: list[dict[int, float]], query: SparseVector, k: int, data: st.DataObject
) -> None:
    postings = build_postings(rows)
    dead = np.array(sorted(data.draw(st.sets(st.integers(0, len(rows) - 1), max_size=5))), np.int64)
    expected = bincount_scores(postings, query)
    expected[dead] = 0.0
    scorer = SparseScorer()
    for _ in range(2):  # the second query reuses the buffers: they must have been cleared
        with scorer.scores("seg", postings, query, dead) as scores:
            np.testing.assert_array_equal(scores.at(np.arange(len(rows))), expected)  # bit-identical sums
            top_rows, top_values = scores.top(k)
        positive = np.flatnonzero(expected > 0)
        order = positive[np.lexsort((positive, -expected[positive]))][:k]  # best first, ties: lower row
        np.testing.assert_array_equal(top_rows, order)
        np.testing.assert_array_equal(top_values, expected[order])


def test_buffers_are_cleared_between_different_queries(strategy: None) -> None:
    postings = build_postings([{1: 1.0}, {2: 2.0}, {1: 0.5, 2: 0.5}])
    scorer = SparseScorer()
    with scorer.scores("seg", postings, SparseVector(np.array([1], np.int32), np.ones(1, np.float32))) as s:
        np.testing.assert_array_equal(s.at(np.arange(3)), [1.0, 0.0, 0.5])
    with scorer.scores("seg", postings, SparseVector(np.array([2], np.int32), np.ones(1, np.float32))) as s:
        np.testing.assert_array_equal(s.at(np.arange(3)), [0.0, 2.0, 0.5])
    with scorer.scores("seg", postings, SparseVector(np.zeros(0, np.int32), np.zeros(0, np.float32))) as s:
        np.testing.assert_array_equal(s.at(np.arange(3)), [0.0, 0.0, 0.0])
        assert s.top(5)[0].size == 0


def test_nested_use_of_one_segment_gets_separate_buffers() -> None:
    postings = build_postings([{1: 1.0}, {2: 2.0}])
    scorer = SparseScorer()
    one = SparseVector(np.array([1], np.int32), np.ones(1, np.float32))
    two = SparseVector(np.array([2], np.int32), np.ones(1, np.float32))
    with scorer.scores("seg", postings, one) as first, scorer.scores("seg", postings, two) as second:
        np.testing.assert_array_equal(first.at(np.arange(2)), [1.0, 0.0])
        np.testing.assert_array_equal(second.at(np.arange(2)), [0.0, 2.0])


def test_threads_score_concurrently_without_sharing_buffers() -> None:
    rng = np.random.default_rng(0)
    rows = [
        {int(t): float(rng.uniform(0.1, 1)) for t in rng.choice(VOCAB, 6, replace=False)} for _ in range(500)
    ]
    postings = build_postings(rows)
    scorer = SparseScorer()
    query_list = [
        SparseVector(np.array(sorted(rng.choice(VOCAB, 5, replace=False)), np.int32), np.ones(5, np.float32))
        for _ in range(8)
    ]
    failures: list[int] = []

    def work(i: int) -> None:
        for _ in range(50):
            with scorer.scores("seg", postings, query_list[i]) as s:
                if not np.array_equal(s.at(np.arange(500)), bincount_scores(postings, query_list[i])):
                    failures.append(i)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(len(query_list))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert failures == []


def test_prune_drops_buffers_of_segments_that_are_gone() -> None:
    postings = build_postings([{1: 1.0}])
    scorer = SparseScorer()
    query = SparseVector(np.array([1], np.int32), np.ones(1, np.float32))
    for key in ("a", "b"):
        with scorer.scores(key, postings, query):
            pass
    assert scorer.idle_buffers() == {"a": 1, "b": 1}
    with scorer.scores("a", postings, query):  # a search still reading "a" when it is merged away
        scorer.prune({"b"})
        assert scorer.idle_buffers() == {"b": 1}
    assert scorer.idle_buffers() == {"b": 1}  # its buffer is not kept either


def test_buffers_follow_concurrent_searches_not_threads() -> None:
    """Many threads searching one after another share one buffer; a burst keeps at most `max_idle`."""
    postings = build_postings([{1: 1.0}, {1: 2.0}])
    scorer = SparseScorer(max_idle=2)
    query = SparseVector(np.array([1], np.int32), np.ones(1, np.float32))

    def one_search() -> None:
        with scorer.scores("seg", postings, query) as s:
            assert s.top(1)[0].tolist() == [1]

    for _ in range(20):
        t = threading.Thread(target=one_search)
        t.start()
        t.join()
    assert scorer.idle_buffers() == {"seg": 1}
    with contextlib.ExitStack() as stack:  # five searches at once: five buffers, two kept afterwards
        for _ in range(5):
            stack.enter_context(scorer.scores("seg", postings, query))
    assert scorer.idle_buffers() == {"seg": 2}


def test_warm_up_compiles_the_kernels() -> None:
    sparse_scorer.warm_up()
    kernels: list[Any] = [sparse_scorer._accumulate, sparse_scorer._best_rows, sparse_scorer._best_touched]
    assert all(k.signatures for k in kernels)


@pytest.mark.parametrize("k", [1, 7, 100, 5000, 10**12])  # the last: "all", far past memory if allocated
def test_top_k_over_many_row_blocks(strategy: None, k: int) -> None:
    rng = np.random.default_rng(k)
    rows = [
        {
            int(t): float(rng.choice([0.5, 1.0, rng.uniform(0.1, 2)]))
            for t in rng.choice(VOCAB, 3, replace=False)
        }
        for _ in range(3000)
    ]  # repeated values: ties across blocks
    postings = build_postings(rows)
    query = SparseVector(np.array([1, 5, 9, 30], np.int32), np.array([1.0, 0.5, 2.0, 1.0], np.float32))
    expected = bincount_scores(postings, query)
    positive = np.flatnonzero(expected > 0)
    order = positive[np.lexsort((positive, -expected[positive]))][:k]
    with SparseScorer().scores("seg", postings, query) as scores:
        top_rows, top_values = scores.top(k)
    np.testing.assert_array_equal(top_rows, order)
    np.testing.assert_array_equal(top_values, expected[order])
