"""Each metric on small cases computed by hand, and properties of the threshold sweeps and top-k."""

from __future__ import annotations

import itertools
import math
import random

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from trivec.evaluation.metrics import (
    best_accuracy,
    best_f1,
    bitext_scores,
    bootstrapped_clustering,
    classification_scores,
    pair_classification_scores,
    reranking_scores,
    retrieval_scores,
    retrieval_scores_per_query,
    sts_scores,
    undersample,
)
from trivec.evaluation.search import SparseIndex, top_k
from trivec.inference.scoring import lexical_scores
from trivec.inference.sparse import SparseVector


# ----------------------------------------------------------------------------------------------- retrieval
def test_retrieval_scores_by_hand() -> None:
    qrels = {"q1": {"d1": 1, "d3": 1}, "q2": {"d2": 2}}
    run = {"q1": {"d1": 0.9, "d2": 0.8, "d3": 0.7}, "q2": {"d1": 0.5, "d2": 0.4}}
    s = retrieval_scores(qrels, run, k_values=(1, 3, 10))
    # q1: relevant at ranks 1 and 3 → AP = (1/1 + 2/3) / 2; q2: relevant at rank 2 → AP = 1/2
    assert s["map"] == pytest.approx(((1 + 2 / 3) / 2 + 0.5) / 2)
    # trec_eval nDCG uses the grade itself as gain: q1 = (1 + 1/log2 4) / (1 + 1/log2 3); q2 = (2/log2 3) / 2
    ndcg_q1 = (1 + 1 / math.log2(4)) / (1 + 1 / math.log2(3))
    ndcg_q2 = (2 / math.log2(3)) / 2
    assert s["ndcg_at_3"] == pytest.approx((ndcg_q1 + ndcg_q2) / 2)
    assert s["ndcg_at_1"] == pytest.approx((1.0 + 0.0) / 2)
    assert s["mrr_at_1"] == pytest.approx((1.0 + 0.0) / 2)
    assert s["mrr_at_10"] == pytest.approx((1.0 + 0.5) / 2)
    assert s["recall_at_1"] == pytest.approx((0.5 + 0.0) / 2)
    assert s["recall_at_3"] == pytest.approx(1.0)
    assert s["precision_at_1"] == pytest.approx(0.5)


def test_retrieval_scores_count_a_judged_query_missing_from_the_run_as_zero() -> None:
    qrels = {"q1": {"d1": 1}, "q2": {"d2": 1}}
    s = retrieval_scores(qrels, {"q1": {"d1": 1.0}}, k_values=(10,))
    assert s["ndcg_at_10"] == pytest.approx(0.5)
    assert s["mrr_at_10"] == pytest.approx(0.5)


def test_per_query_values_are_the_ones_the_mean_is_taken_over() -> None:
    qrels = {"q1": {"d1": 1, "d3": 1}, "q2": {"d2": 2}, "q3": {"d4": 1}}
    run = {"q1": {"d1": 0.9, "d2": 0.8, "d3": 0.7}, "q2": {"d1": 0.5, "d2": 0.4}, "q9": {"d4": 1.0}}
    means, per_query = retrieval_scores_per_query(qrels, run, k_values=(1, 3, 10))
    assert means == retrieval_scores(qrels, run, k_values=(1, 3, 10))
    assert set(per_query) == {"q1", "q2", "q3"} and per_query["q3"] == 0.0  # judged, missing from the run
    assert per_query["q1"] == pytest.approx((1 + 1 / math.log2(4)) / (1 + 1 / math.log2(3)))
    assert sum(per_query.values()) / 3 == pytest.approx(means["ndcg_at_10"])
    _, recall = retrieval_scores_per_query(qrels, run, k_values=(1, 3, 10), measure="recall_at_1")
    assert recall == {"q1": 0.5, "q2": 0.0, "q3": 0.0}
    _, average_precision = retrieval_scores_per_query(qrels, run, measure="map")
    assert sum(average_precision.values()) / 3 == pytest.approx(means["map"])
    _, reciprocal_rank = retrieval_scores_per_query(qrels, run, k_values=(1, 3, 10), measure="mrr_at_10")
    assert reciprocal_rank == {"q1": 1.0, "q2": 0.5, "q3": 0.0}
    for bad in ("ndcg_at_7", "mrr_at_5", "ndcg"):
        with pytest.raises(ValueError, match="per-query measure"):
            retrieval_scores_per_query(qrels, run, k_values=(1, 3, 10), measure=bad)


def test_mrr_cut_respects_trec_tie_order() -> None:
    # tied scores: trec_eval orders them by document id, descending → d9 before d1
    qrels = {"q": {"d1": 1}}
    s = retrieval_scores(qrels, {"q": {"d1": 0.5, "d9": 0.5}}, k_values=(1, 2))
    assert s["mrr_at_1"] == 0.0
    assert s["mrr_at_2"] == pytest.approx(0.5)


def test_reranking_scores_by_hand() -> None:
    candidates = {"q": ["a", "b", "c", "d"], "all_pos": ["x"], "no_pos": ["y", "z"]}
    positives = {"q": {"b", "d"}, "all_pos": {"x"}, "no_pos": set()}
    scores = {
        "q": np.array([0.9, 0.8, 0.1, 0.7]),
        "all_pos": np.array([1.0]),
        "no_pos": np.array([0.3, 0.2]),
    }
    s = reranking_scores(positives, candidates, scores)
    # ranking a, b, d, c: positives at 2 and 3 → AP = (1/2 + 2/3) / 2; first positive at rank 2
    assert s["map"] == pytest.approx((1 / 2 + 2 / 3) / 2)
    assert s["mrr_at_10"] == pytest.approx(0.5)
    assert s["evaluated_queries"] == 1  # queries without a negative or a positive are skipped, as MTEB


# ----------------------------------------------------------------------------------------------- STS
def _unit_angles(angles: list[float]) -> np.ndarray:
    return np.array([[math.cos(a), math.sin(a)] for a in angles], dtype=np.float32)


def test_sts_spearman_and_pearson() -> None:
    base = _unit_angles([0.0] * 4)
    other = _unit_angles([0.1, 0.5, 1.0, 1.5])  # cosine falls as the angle grows
    s = sts_scores(base, other, [5.0, 3.0, 2.0, 0.0])
    assert s["cosine_spearman"] == pytest.approx(1.0)
    assert s["spearman"] == s["cosine_spearman"]
    cosines = np.cos([0.1, 0.5, 1.0, 1.5])
    expected_pearson = np.corrcoef(cosines, [5.0, 3.0, 2.0, 0.0])[0, 1]
    assert s["cosine_pearson"] == pytest.approx(expected_pearson, abs=1e-6)
    reversed_ = sts_scores(base, other, [0.0, 2.0, 3.0, 5.0])
    assert reversed_["cosine_spearman"] == pytest.approx(-1.0)


# ----------------------------------------------------------------------------------------------- pairs
def test_best_accuracy_by_hand() -> None:
    scores = np.array([0.9, 0.8, 0.7, 0.6])
    labels = np.array([1, 0, 1, 0])
    # split after 1st: (1 + 2)/4; after 2nd: (1 + 1)/4; after 3rd: (2 + 1)/4 → first best is after the 1st
    accuracy, threshold = best_accuracy(scores, labels)
    assert accuracy == pytest.approx(0.75)
    assert threshold == pytest.approx(0.85)


def test_best_accuracy_never_splits_ties() -> None:
    accuracy, threshold = best_accuracy(np.array([0.9, 0.9, 0.1]), np.array([1, 0, 0]))
    assert accuracy == pytest.approx(2 / 3)  # the only split lies between 0.9 and 0.1
    assert threshold == pytest.approx(0.5)


def test_best_accuracy_for_distances_sweeps_upwards() -> None:
    accuracy, threshold = best_accuracy(
        np.array([0.1, 0.2, 0.9]), np.array([1, 1, 0]), higher_is_similar=False
    )
    assert accuracy == 1.0
    assert threshold == pytest.approx(0.55)


def test_best_f1_by_hand() -> None:
    scores = np.array([0.9, 0.8, 0.7, 0.6, 0.5])
    labels = np.array([1, 0, 1, 1, 0])
    # candidates: top1 P=1 R=1/3 F1=.5; top2 P=.5 R=1/3 F1=.4; top3 P=2/3 R=2/3 F1=2/3; top4 P=3/4 R=1 F1=6/7
    f1, precision, recall, threshold = best_f1(scores, labels)
    assert f1 == pytest.approx(6 / 7)
    assert (precision, recall) == (pytest.approx(0.75), pytest.approx(1.0))
    assert threshold == pytest.approx(0.55)


def test_pair_classification_takes_the_max_over_similarities() -> None:
    a = np.array([[1, 0], [1, 0], [1, 0], [1, 0]], dtype=np.float32)
    b = np.array([[1, 0.1], [0, 1], [1, 0.2], [0.2, 1]], dtype=np.float32)
    s = pair_classification_scores(a, b, [1, 0, 1, 0])
    assert s["cosine_accuracy"] == 1.0
    assert s["cosine_ap"] == pytest.approx(1.0)
    for metric in ("accuracy", "f1", "ap", "precision", "recall"):
        assert s[f"max_{metric}"] == max(
            s[f"{n}_{metric}"] for n in ("cosine", "dot", "euclidean", "manhattan")
        )


def _brute_accuracy(scores: list[float], labels: list[int]) -> float:
    values = sorted(set(scores), reverse=True)
    best = 0.0
    for high, low in itertools.pairwise(values):
        t = (high + low) / 2
        predicted = [1 if s > t else 0 for s in scores]
        best = max(best, sum(p == y for p, y in zip(predicted, labels, strict=True)) / len(labels))
    return best


def _brute_f1(scores: list[float], labels: list[int]) -> float:
    values = sorted(set(scores), reverse=True)
    best = 0.0
    for high, low in itertools.pairwise(values):
        t = (high + low) / 2
        tp = sum(1 for s, y in zip(scores, labels, strict=True) if s > t and y == 1)
        predicted = sum(1 for s in scores if s > t)
        if tp:
            p, r = tp / predicted, tp / sum(labels)
            best = max(best, 2 * p * r / (p + r))
    return best


@settings(max_examples=150, deadline=None)
@given(
    st.lists(
        st.tuples(st.integers(0, 6).map(lambda v: v / 6), st.integers(0, 1)),
        min_size=2,
        max_size=25,
    ).filter(lambda rows: 0 < sum(y for _, y in rows) < len(rows))
)
def test_threshold_sweeps_equal_brute_force(rows: list[tuple[float, int]]) -> None:
    scores = [s for s, _ in rows]
    labels = [y for _, y in rows]
    accuracy, _ = best_accuracy(np.array(scores), np.array(labels))
    assert accuracy == pytest.approx(_brute_accuracy(scores, labels))
    f1, *_ = best_f1(np.array(scores), np.array(labels))
    assert f1 == pytest.approx(_brute_f1(scores, labels))
    # distances: the same sweep on negated scores
    assert best_accuracy(-np.array(scores), np.array(labels), higher_is_similar=False)[0] == pytest.approx(
        accuracy
    )
    # the order of the input rows does not matter
    perm = random.Random(len(rows)).sample(range(len(rows)), len(rows))
    shuffled = best_accuracy(np.array(scores)[perm], np.array(labels)[perm])[0]
    assert shuffled == pytest.approx(accuracy)


# ----------------------------------------------------------------------------------------------- bitext
def test_bitext_scores() -> None:
    source = np.eye(4, dtype=np.float32)
    target = np.eye(4, dtype=np.float32)[[0, 1, 3, 2]]
    target[3] = [0.9, 0.1, 0, 0]
    s = bitext_scores(source, target)
    # predictions: 0→0 (exact beats 0.99), 1→1, 2→0 (all cosines 0: the first wins), 3→2 → 2 of 4
    assert s["accuracy"] == pytest.approx(0.5)
    assert 0.0 <= s["f1"] <= 1.0


# ----------------------------------------------------------------------------------------------- classification
def test_undersample_keeps_samples_per_label_and_redraws() -> None:
    labels = [0, 0, 0, 1, 1, 1, 2]
    idxs, kept = undersample(labels, 2, None, seed=42)
    assert sorted(idxs) == list(range(7))
    counts = {lab: sum(1 for i in kept if labels[i] == lab) for lab in set(labels)}
    assert counts == {0: 2, 1: 2, 2: 1}
    # MTEB re-shuffles the previous permutation with a fresh RandomState(seed): reproducible, and a new draw
    order = list(range(7))
    np.random.RandomState(42).shuffle(order)
    assert idxs == order
    again, _ = undersample(labels, 2, list(idxs), seed=42)
    second = list(order)
    np.random.RandomState(42).shuffle(second)
    assert again == second


def test_classification_scores_by_hand() -> None:
    s = classification_scores([0, 0, 1, 1], [0, 1, 1, 1])
    assert s["accuracy"] == pytest.approx(0.75)
    # class 0: P=1 R=.5 F1=2/3; class 1: P=2/3 R=1 F1=.8
    assert s["f1"] == pytest.approx((2 / 3 + 0.8) / 2)
    # AP of the predicted labels (binary only): positives ranked [1,1,1] over [0]: P at recall 1 = 2/3
    assert s["ap"] == pytest.approx(2 / 3)
    assert "ap" not in classification_scores([0, 1, 2], [0, 1, 2])


# ----------------------------------------------------------------------------------------------- clustering
def test_bootstrapped_clustering_on_separated_clusters() -> None:
    rng = np.random.default_rng(0)
    centers = np.array([[10, 0], [0, 10], [-10, -10]], dtype=np.float32)
    labels = [str(i % 3) for i in range(60)]
    points = np.stack([centers[int(lab)] + rng.normal(0, 0.1, 2) for lab in labels]).astype(np.float32)
    s = bootstrapped_clustering(points, labels, rng=random.Random(42), seed=42, rounds=3, sample_size=50)
    assert s["v_measure"] == pytest.approx(1.0)
    assert len(s["v_measures"]) == 3
    again = bootstrapped_clustering(points, labels, rng=random.Random(42), seed=42, rounds=3, sample_size=50)
    assert again == s


# ----------------------------------------------------------------------------------------------- top-k
@settings(max_examples=100, deadline=None)
@given(st.lists(st.integers(-3, 3), min_size=0, max_size=30), st.integers(0, 35))
def test_top_k_equals_a_full_sort(values: list[int], k: int) -> None:
    array = np.array(values, dtype=np.float64)
    expected = sorted(range(len(values)), key=lambda i: (-values[i], i))[:k]
    assert top_k(array, k).tolist() == expected


@st.composite
def sparse_vectors(draw: st.DrawFn) -> SparseVector:
    ids = sorted(draw(st.sets(st.integers(0, 40), max_size=8)))
    values = [draw(st.floats(0.01, 3.0)) for _ in ids]
    return SparseVector(np.array(ids, dtype=np.int32), np.array(values, dtype=np.float32))


@settings(max_examples=60, deadline=None)
@given(
    st.lists(sparse_vectors(), min_size=1, max_size=12), st.lists(sparse_vectors(), min_size=1, max_size=4)
)
def test_sparse_search_equals_lexical_scores(
    documents: list[SparseVector], queries: list[SparseVector]
) -> None:
    """The CSR product ranks exactly by `lexical_scores`; documents sharing no token are not returned."""
    results = SparseIndex(documents).search(queries, k=5)
    for query, (indices, scores) in zip(queries, results, strict=True):
        expected = lexical_scores(query, documents).astype(np.float64)
        ranked = [i for i in top_k(expected, 5).tolist() if expected[i] > 0]
        assert indices.tolist() == ranked
        np.testing.assert_allclose(scores, expected[ranked], rtol=1e-6)


def test_bm25_index_takes_a_caller_tokeniser() -> None:
    from trivec.evaluation.bm25 import Bm25Index

    texts = ["101 7 7", "205 9", "7 9 9"]  # model piece ids: no word tokeniser would keep the numbers apart
    default = Bm25Index(texts, "en")
    pieces = Bm25Index(texts, "en", tokenize=str.split)
    assert pieces.tokenize("101 7") == ["101", "7"] and default.tokenize("101 7") != ["101", "7"]
    scores = pieces.scores("7")
    assert scores[1] == 0 and scores[0] > scores[2] > 0  # tf 2 beats tf 1 in a document of equal length
    assert not pieces.scores("").any() and [r[0].tolist() for r in pieces.search(["101"], 3)] == [[0]]
