"""Scoring functions: properties against brute-force definitions (hypothesis)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from trivec.errors import InputError
from trivec.inference import (
    SparseVector,
    dense_scores,
    hybrid_scores,
    lexical_matrix,
    lexical_score,
    lexical_scores,
    maxsim,
    maxsim_scores,
    normalize_weights,
)

VOCAB = 50
# allow_subnormal=False: a native library in the process may set flush-to-zero, which hypothesis detects
finite = st.floats(min_value=-2, max_value=2, allow_nan=False, width=32, allow_subnormal=False)


@st.composite
def sparse_vectors(draw: st.DrawFn) -> SparseVector:
    ids = draw(st.lists(st.integers(0, VOCAB - 1), unique=True, max_size=15))
    values = draw(
        st.lists(st.floats(0.0625, 3, width=32, allow_subnormal=False), min_size=len(ids), max_size=len(ids))
    )
    return SparseVector.from_dict({"indices": ids, "values": values})


def dense_of(vector: SparseVector) -> np.ndarray:
    out = np.zeros(VOCAB, dtype=np.float64)
    out[vector.indices] = vector.values
    return out


def token_rows(dim: int = 4) -> st.SearchStrategy[np.ndarray]:
    return st.integers(0, 6).flatmap(lambda n: arrays(np.float32, (n, dim), elements=finite))


@given(sparse_vectors(), st.lists(sparse_vectors(), max_size=8))
def test_lexical_equals_vocab_dot_product(query: SparseVector, passages: list[SparseVector]) -> None:
    expected = np.array([dense_of(query) @ dense_of(p) for p in passages])
    np.testing.assert_allclose(lexical_scores(query, passages), expected, rtol=1e-5, atol=1e-5)
    for p, value in zip(passages, expected, strict=True):
        assert lexical_score(query, p) == pytest.approx(value, rel=1e-5, abs=1e-5)
        assert lexical_score(query, p) == pytest.approx(lexical_score(p, query), rel=1e-6, abs=1e-6)
    if passages:
        np.testing.assert_allclose(lexical_matrix([query], passages)[0], expected, rtol=1e-5, atol=1e-5)


@given(token_rows(), st.lists(token_rows(), max_size=6))
def test_maxsim_matches_brute_force_and_ignores_other_passages(
    query: np.ndarray, passages: list[np.ndarray]
) -> None:
    def brute(q: np.ndarray, p: np.ndarray) -> float:
        if len(q) == 0 or len(p) == 0:
            return 0.0
        return float(np.mean([max(float(qi @ pj) for pj in p) for qi in q]))

    many = maxsim_scores(query, passages)
    for i, passage in enumerate(passages):
        assert many[i] == pytest.approx(brute(query, passage), abs=1e-4)
        assert maxsim(query, passage) == pytest.approx(many[i], abs=1e-5)
        # exact: scoring one passage alone gives the same number as scoring it among others (docs/differences.md Q1)
        assert maxsim_scores(query, [passage])[0] == pytest.approx(many[i], abs=1e-5)


def test_maxsim_keeps_negative_best_matches() -> None:
    query = np.array([[1.0, 0.0]], dtype=np.float32)
    short = np.array([[-0.5, 0.5]], dtype=np.float32)
    longer = np.array([[0.1, 0.9], [0.2, 0.8], [0.0, 1.0]], dtype=np.float32)
    assert maxsim_scores(query, [short, longer])[0] == pytest.approx(-0.5)


def test_dense_scores_shapes() -> None:
    q = np.eye(3, dtype=np.float32)
    assert dense_scores(q, q).shape == (3, 3)
    assert dense_scores(q[0], q).shape == (3,)


@given(
    st.lists(st.floats(0, 10, allow_nan=False), min_size=3, max_size=3),
    arrays(np.float64, (3, 5), elements=st.floats(-5, 5, allow_nan=False)),
)
def test_hybrid_is_a_weighted_mean(weights: list[float], scores: np.ndarray) -> None:
    by_mode = dict(zip(("dense", "sparse", "colbert"), scores, strict=True))
    w = normalize_weights(weights)
    if sum(weights) == 0:
        with pytest.raises(ValueError):
            hybrid_scores(by_mode, w)
        return
    fused = hybrid_scores(by_mode, w)
    total = sum(w.values())
    expected = sum(
        (w[m] / total) * by_mode[m] for m in by_mode
    )  # normalised first: denormal weights stay exact
    np.testing.assert_allclose(fused, expected, rtol=1e-9, atol=1e-9)
    assert np.all(fused <= scores.max(axis=0) + 1e-9) and np.all(fused >= scores.min(axis=0) - 1e-9)


def test_weights_validation() -> None:
    assert normalize_weights(None) == {"dense": 0.4, "sparse": 0.2, "colbert": 0.4}
    assert normalize_weights({"dense": 1}) == {"dense": 1.0, "sparse": 0.0, "colbert": 0.0}
    with pytest.raises(ValueError, match="3 numbers"):
        normalize_weights([1, 2])
    with pytest.raises(ValueError, match="unknown score mode"):
        normalize_weights({"bm25": 1})
    with pytest.raises(ValueError, match="≥ 0"):
        normalize_weights([1, -1, 0])


@given(
    st.lists(st.integers(0, 30), max_size=40).flatmap(
        lambda ids: st.tuples(
            st.just(ids),
            st.lists(st.floats(-1, 3, width=32, allow_subnormal=False), min_size=len(ids), max_size=len(ids)),
        )
    )
)
def test_sparse_vector_keeps_max_weight_per_id(case: tuple[list[int], list[float]]) -> None:
    ids, weights = case
    skip = frozenset({0, 1, 2, 3})
    vector = SparseVector.from_token_weights(
        np.array(ids, dtype=np.int64), np.array(weights, dtype=np.float32), skip
    )
    expected: dict[int, float] = {}
    for token, weight in zip(ids, weights, strict=True):
        if token in skip or weight <= 0:
            continue
        expected[token] = max(expected.get(token, 0.0), np.float32(weight))
    assert vector.indices.tolist() == sorted(expected)
    np.testing.assert_array_equal(
        vector.values, np.array([expected[k] for k in sorted(expected)], dtype=np.float32)
    )
    assert SparseVector.from_dict(vector.to_dict()).to_dict() == vector.to_dict()


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"indices": [1, 1], "values": [0.1, 0.2]}, "unique"),
        ({"indices": [1, 2], "values": [0.1]}, "same length"),
        ({"indices": [-1], "values": [0.1]}, "non-negative"),
        ({"indices": [1], "values": [float("nan")]}, "finite"),
        ({"x": 1.0}, "token ids"),
    ],
)
def test_sparse_vector_parsing_errors(data: dict, message: str) -> None:
    with pytest.raises(InputError, match=message):
        SparseVector.from_dict(data)


def test_sparse_vector_accepts_flagembedding_dicts() -> None:
    vector = SparseVector.from_dict({"12": 0.5, "3": 0.25})
    assert vector.indices.tolist() == [3, 12] and vector.values.tolist() == [0.25, 0.5]
