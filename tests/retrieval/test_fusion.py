"""Properties of fusion and merging (hypothesis)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from trivec.errors import InputError
from trivec.inference.scoring import hybrid_scores
from trivec.retrieval import fuse, merge_top_k, rrf_scores, top_k, zscore_scores
from trivec.retrieval.fusion import (
    applied_fusion,
    check_spread_ranges,
    query_spreads,
    ranks,
    spread,
    spread_sample,
)

finite = st.floats(-10, 10, allow_nan=False, allow_infinity=False, width=32)
vectors = st.integers(1, 40).flatmap(
    lambda n: st.tuples(*(arrays(np.float64, n, elements=finite) for _ in range(3)))
)
weight_triples = st.tuples(*(st.floats(0.01, 5) for _ in range(3)))  # positive (dense, sparse, colbert)


def per_mode(values: tuple) -> dict:
    """(dense, sparse, colbert) values as `{mode: value}`."""
    return dict(zip(("dense", "sparse", "colbert"), values, strict=True))


@given(arrays(np.float64, st.integers(0, 50), elements=finite), st.integers(0, 60))
def test_top_k_is_a_stable_sort_prefix(values: np.ndarray, k: int) -> None:
    expected = np.argsort(-values, kind="stable")[:k]
    assert top_k(values, k).tolist() == expected.tolist()


@given(
    st.lists(arrays(np.float64, st.integers(0, 20), elements=finite), min_size=1, max_size=5),
    st.integers(1, 30),
)
def test_merging_per_part_top_k_equals_global_top_k(parts: list[np.ndarray], k: int) -> None:
    offsets = np.cumsum([0] + [p.shape[0] for p in parts])
    per_part = []
    for part, base in zip(parts, offsets, strict=False):
        best = top_k(part, k)
        per_part.append((part[best], best + base))
    merged_scores, merged_keys = merge_top_k(per_part, k)
    everything = np.concatenate(parts)
    expected = top_k(everything, k)
    assert merged_keys.tolist() == expected.tolist()
    assert np.array_equal(merged_scores, everything[expected])


@given(vectors, weight_triples)
def test_weighted_fusion_is_the_reference_weighted_mean(
    triple: tuple[np.ndarray, ...], w: tuple[float, ...]
) -> None:
    scores = per_mode(triple)
    weights = per_mode(w)
    fused = fuse(scores, "weighted", weights)
    manual = sum(weights[m] * scores[m] for m in scores) / sum(weights.values())
    assert np.allclose(fused, manual)
    assert np.allclose(fused, hybrid_scores(scores, weights))
    # a convex combination lies between the per-mode extremes
    stacked = np.stack(triple)
    assert np.all(fused <= stacked.max(axis=0) + 1e-9) and np.all(fused >= stacked.min(axis=0) - 1e-9)


@given(vectors)
def test_rrf_ignores_monotone_rescaling(triple: tuple[np.ndarray, ...]) -> None:
    scores = per_mode(triple)
    rescaled = {m: np.cbrt(v) * 8.0 for m, v in scores.items()}  # strictly increasing, no collapsed values
    assert np.allclose(rrf_scores(scores), rrf_scores(rescaled))


@given(vectors)
def test_fusion_is_permutation_equivariant(triple: tuple[np.ndarray, ...]) -> None:
    n = triple[0].shape[0]
    perm = np.random.default_rng(n).permutation(n)
    scores = per_mode(triple)
    permuted = {m: v[perm] for m, v in scores.items()}
    weights = {"dense": 0.4, "sparse": 0.2, "colbert": 0.4}
    assert np.allclose(fuse(permuted, "weighted", weights), fuse(scores, "weighted", weights)[perm])
    # RRF breaks exact ties by position, so compare only where ranks are unique
    if all(len(np.unique(v)) == n for v in triple):
        assert np.allclose(fuse(permuted, "rrf", None), fuse(scores, "rrf", None)[perm])


@settings(max_examples=50)
@given(arrays(np.float64, st.integers(1, 30), elements=finite))
def test_single_mode_and_ranks(values: np.ndarray) -> None:
    assert np.array_equal(fuse({"dense": values}, "rrf", None), values)
    r = ranks(values)
    assert sorted(r.tolist()) == list(range(1, values.shape[0] + 1))
    assert r[int(np.argmax(values))] == 1


@given(
    vectors,
    st.tuples(*(st.floats(0.05, 20) for _ in range(3))),
    st.tuples(*(st.floats(-5, 5) for _ in range(3))),
)
def test_zscore_fusion_ignores_each_modes_scale_and_offset(
    triple: tuple[np.ndarray, ...], scales: tuple[float, ...], offsets: tuple[float, ...]
) -> None:
    """What z-score fusion is for: a mode whose scores spread wider (or sit higher) for some texts weighs the
    same, so s ↦ a·s + b (a > 0) per mode leaves the fused scores as they were."""
    # spreads near the "all alike" cut (1e-9 of the scores' size) may land on either side of it once moved
    assume(all(v.std() < 1e-12 or v.std() > 1e-6 for v in triple))
    weights = {"dense": 0.4, "sparse": 0.2, "colbert": 0.4}
    scores = per_mode(triple)
    moved = {m: a * v + b for (m, v), a, b in zip(scores.items(), scales, offsets, strict=True)}
    assert np.allclose(fuse(moved, "zscore", weights), fuse(scores, "zscore", weights), atol=1e-6)


@given(vectors, weight_triples)
def test_zscore_fusion_is_the_weighted_mean_of_standardised_scores(
    triple: tuple[np.ndarray, ...], w: tuple[float, ...]
) -> None:
    scores = per_mode(triple)
    weights = per_mode(w)
    manual = np.zeros(triple[0].shape[0])
    for mode, values in scores.items():
        if values.std() > 1e-9 * max(1.0, np.abs(values).max()):  # all alike: tells them apart by nothing
            manual += weights[mode] * (values - values.mean()) / values.std()
    assert np.allclose(zscore_scores(scores, weights), manual / sum(w), atol=1e-9)
    n = triple[0].shape[0]
    perm = np.random.default_rng(n).permutation(n)
    permuted = {m: v[perm] for m, v in scores.items()}
    assert np.allclose(fuse(permuted, "zscore", weights), fuse(scores, "zscore", weights)[perm])


def test_zscore_fusion_follows_the_clearer_mode_where_raw_scores_follow_the_wider_one() -> None:
    # dense tells the candidates apart by 0.01–0.03 (cosines in a narrow band), sparse by up to 0.3:
    # the weighted mean lets sparse decide, z-scores weigh both as the weights say
    dense = np.array([0.80, 0.79, 0.78, 0.77])
    sparse = np.array([0.0, 0.3, 0.1, 0.05])
    weights = {"dense": 0.8, "sparse": 0.2}
    assert int(np.argmax(fuse({"dense": dense, "sparse": sparse}, "weighted", weights))) == 1
    assert int(np.argmax(fuse({"dense": dense, "sparse": sparse}, "zscore", weights))) == 0
    constant = {"dense": np.full(3, 0.5), "sparse": np.full(3, 2.0)}
    assert np.array_equal(fuse(constant, "zscore", weights), np.zeros(3))


def test_unknown_fusion_and_missing_weights_are_named() -> None:
    scores = {"dense": np.ones(2), "sparse": np.ones(2)}
    with pytest.raises(InputError, match="unknown fusion 'z'; expected one of weighted, rrf, zscore, auto"):
        fuse(scores, "z", {"dense": 1.0, "sparse": 1.0})
    with pytest.raises(InputError, match="zscore fusion needs weights"):
        fuse(scores, "zscore", None)


def test_zscore_fusion_passes_a_non_finite_score_on_and_standardises_the_rest_without_it() -> None:
    weights = {"dense": 0.4, "sparse": 0.2}
    dense, sparse = np.array([0.5, 0.4, np.inf, 0.3]), np.array([0.1, 0.3, 0.2, 0.0])
    fused = fuse({"dense": dense, "sparse": sparse}, "zscore", weights)
    finite = dense[[0, 1, 3]]
    dense_z = (finite - finite.mean()) / finite.std()
    sparse_z = ((sparse - sparse.mean()) / sparse.std())[[0, 1, 3]]
    assert np.isnan(fused[2])
    assert np.allclose(fused[[0, 1, 3]], (0.4 * dense_z + 0.2 * sparse_z) / 0.6)


@given(vectors, weight_triples)
def test_auto_fusion_is_weighted_within_the_ranges_and_zscore_outside(
    triple: tuple[np.ndarray, ...], w: tuple[float, ...]
) -> None:
    scores = per_mode(triple)
    weights = per_mode(w)
    around = {m: (spread(v), spread(v)) for m, v in scores.items()}  # every spread exactly at its bounds
    assert np.array_equal(
        fuse(scores, "auto", weights, spread_ranges=around), fuse(scores, "weighted", weights)
    )
    assert applied_fusion(scores, "auto", weights, around) == "weighted"
    below = {**around, "sparse": (spread(scores["sparse"]) + 1.0, spread(scores["sparse"]) + 2.0)}
    assert np.array_equal(fuse(scores, "auto", weights, spread_ranges=below), fuse(scores, "zscore", weights))
    assert applied_fusion(scores, "auto", weights, below) == "zscore"
    assert applied_fusion({"dense": triple[0]}, "auto", weights, below) is None  # one mode: its own scores
    # a mode the ranges do not cover is out of the calibration, unless it is not fused (weight 0)
    partial = {m: around[m] for m in ("dense", "colbert")}
    assert np.array_equal(
        fuse(scores, "auto", weights, spread_ranges=partial), fuse(scores, "zscore", weights)
    )
    unfused = {**weights, "sparse": 0.0}
    assert np.array_equal(
        fuse(scores, "auto", unfused, spread_ranges=partial), fuse(scores, "weighted", unfused)
    )


def test_auto_fusion_standardises_the_mode_that_spreads_wider_than_calibrated() -> None:
    # calibrated where dense and sparse both spread ≈ 0.01: the weighted mean; English-like lexical scores
    # spreading 0.1 fall outside, and the query is fused by z-scores instead
    weights = {"dense": 0.8, "sparse": 0.2}
    ranges = {"dense": (0.002, 0.05), "sparse": (0.002, 0.05)}
    dense = np.array([0.80, 0.79, 0.78, 0.77])
    narrow = {"dense": dense, "sparse": np.array([0.0, 0.03, 0.01, 0.005])}
    wide = {"dense": dense, "sparse": np.array([0.0, 0.3, 0.1, 0.05])}
    assert np.array_equal(
        fuse(narrow, "auto", weights, spread_ranges=ranges), fuse(narrow, "weighted", weights)
    )
    assert int(np.argmax(fuse(wide, "auto", weights, spread_ranges=ranges))) == 0
    assert int(np.argmax(fuse(wide, "weighted", weights))) == 1


def test_auto_fusion_without_spreads_and_bad_spreads_are_named() -> None:
    scores = {"dense": np.array([0.1, 0.2]), "sparse": np.array([0.3, 0.0])}
    with pytest.raises(InputError, match="auto fusion needs the model's calibrated score spreads"):
        fuse(scores, "auto", {"dense": 1.0, "sparse": 1.0})
    assert check_spread_ranges({"dense": [0.0, 0.1]}) == {"dense": (0.0, 0.1)}
    for bad, named in (
        ({}, "expected a mapping"),
        ([0.1, 0.2], "expected a mapping"),
        ({"lexical": [0.0, 1.0]}, "unknown mode 'lexical'"),
        ({"dense": [0.2, 0.1]}, "dense: expected \\[lowest, highest\\]"),
        ({"dense": [-0.1, 0.1]}, "dense: expected"),
        ({"dense": [0.1]}, "dense: expected"),
        ({"dense": ["a", 0.1]}, "dense: expected"),
        ({"dense": [0.1, float("inf")]}, "dense: expected"),
    ):
        with pytest.raises(ValueError, match=named):
            check_spread_ranges(bad)


def test_auto_fusion_measures_spreads_over_the_dense_and_sparse_top_100() -> None:
    """A deep candidate set (an evaluation's dense+sparse takes 1,000) is judged on the sample the ranges
    are calibrated over: the candidates in the dense top 100 or the positive sparse top 100."""
    rng = np.random.default_rng(0)
    dense, sparse = rng.normal(0.6, 0.05, 1000), np.maximum(rng.normal(0.0, 0.1, 1000), 0.0)
    scores = {"dense": dense, "sparse": sparse}
    sample = set(np.argsort(-dense, kind="stable")[:100].tolist())
    sample |= {int(i) for i in np.argsort(-sparse, kind="stable")[:100] if sparse[i] > 0}
    assert set(spread_sample(scores).tolist()) == sample
    expected = {m: float(v[sorted(sample)].std()) for m, v in scores.items()}
    assert query_spreads(scores) == pytest.approx(expected)
    assert query_spreads(scores)["dense"] != pytest.approx(float(dense.std()))  # not the whole set's
    assert spread_sample({"colbert": dense}).tolist() == list(range(1000))  # no first-stage mode: all
