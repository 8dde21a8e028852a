"""The first-place vote (`+vote` after a fusion): properties (hypothesis) and the names that carry it."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from trivec.errors import InputError
from trivec.models.weights import FUSIONS, fusion_to_use, split_fusion
from trivec.retrieval import fuse, top_k
from trivec.retrieval.fusion import applied_fusion, first_place_vote

MODES = ("dense", "sparse", "colbert")
finite = st.floats(-10, 10, allow_nan=False, allow_infinity=False, width=32)
vectors = st.integers(2, 40).flatmap(
    lambda n: st.tuples(*(arrays(np.float64, n, elements=finite) for _ in range(3)))
)
weight_triples = st.tuples(*(st.floats(0.01, 5) for _ in range(3)))
methods = st.sampled_from(["weighted", "rrf", "zscore"])


def firsts(scores: dict[str, np.ndarray]) -> list[int]:
    """Each mode's clear first (a unique best score); a mode whose best is tied has none."""
    out = []
    for values in scores.values():
        best = values.max()
        if (values == best).sum() == 1:
            out.append(int(np.argmax(values)))
    return out


@given(vectors, weight_triples, methods)
def test_a_candidate_two_modes_rank_first_ranks_first_and_nothing_else_moves(
    triple: tuple[np.ndarray, ...], w: tuple[float, ...], method: str
) -> None:
    scores = dict(zip(MODES, triple, strict=True))
    weights = dict(zip(MODES, w, strict=True))
    plain = fuse(scores, method, weights)
    voted = fuse(scores, method + "+vote", weights)
    tops = firsts(scores)
    majority = [c for c in set(tops) if tops.count(c) >= 2]
    if majority:
        assert int(top_k(voted, 1)[0]) == majority[0]
        if int(top_k(plain, 1)[0]) == majority[0]:  # first already (ties by position): nothing to do
            assert np.array_equal(voted, plain)
            return
        others = np.arange(plain.shape[0]) != majority[0]
        assert np.array_equal(voted[others], plain[others])  # only the winner's score moves
        assert np.all(voted[majority[0]] > voted[others])  # strictly: score order is rank order
    else:
        assert np.array_equal(voted, plain)


@given(vectors, st.tuples(st.floats(0.01, 5), st.floats(0.01, 5)), methods)
def test_with_two_modes_the_vote_changes_nothing(
    triple: tuple[np.ndarray, ...], w: tuple[float, float], method: str
) -> None:
    """Both modes ranking a candidate first already puts it first in any of the fusions."""
    scores = {"dense": triple[0], "sparse": triple[1]}
    weights = {"dense": w[0], "sparse": w[1], "colbert": 0.0}
    assert np.array_equal(fuse(scores, method + "+vote", weights), fuse(scores, method, weights))


def test_the_vote_overrules_one_modes_large_margin() -> None:
    """Dense and ColBERT agree on candidate 0; the lexical mode's large score for candidate 1 carries the
    weighted mean, the vote puts 0 back first."""
    scores = {
        "dense": np.array([0.80, 0.78, 0.50]),
        "sparse": np.array([0.0, 0.30, 0.0]),
        "colbert": np.array([0.70, 0.66, 0.40]),
    }
    weights = {"dense": 0.4, "sparse": 0.2, "colbert": 0.4}
    assert int(top_k(fuse(scores, "weighted", weights), 1)[0]) == 1
    voted = fuse(scores, "weighted+vote", weights)
    assert top_k(voted, 3).tolist() == [0, 1, 2]
    assert voted[0] == np.nextafter(fuse(scores, "weighted", weights)[1], np.inf)
    # a mode without weight has no vote: sparse and ColBERT alone disagree, nothing moves
    unweighted = {"dense": 0.0, "sparse": 0.5, "colbert": 0.5}
    assert np.array_equal(fuse(scores, "weighted+vote", unweighted), fuse(scores, "weighted", unweighted))


def test_a_mode_without_a_clear_first_abstains() -> None:
    """A lexical mode that matches nothing (all 0) must not side with dense's first by position."""
    scores = {
        "dense": np.array([0.80, 0.79, 0.50]),
        "sparse": np.array([0.0, 0.0, 0.0]),
        "colbert": np.array([0.60, 0.70, 0.50]),
    }
    weights = {"dense": 0.4, "sparse": 0.2, "colbert": 0.4}
    for method in ("weighted", "zscore", "rrf"):
        assert np.array_equal(fuse(scores, method + "+vote", weights), fuse(scores, method, weights))
    scores["sparse"] = np.array([np.nan, np.nan, np.nan])
    assert np.array_equal(
        fuse(scores, "weighted+vote", weights), fuse(scores, "weighted", weights), equal_nan=True
    )


def test_auto_vote_resolves_per_query_and_keeps_the_vote() -> None:
    rng = np.random.default_rng(0)
    scores = {m: rng.normal(0.5, 0.05, 50) for m in MODES}
    weights = {"dense": 0.4, "sparse": 0.2, "colbert": 0.4}
    wide = {m: (0.0, 1.0) for m in MODES}
    narrow = {m: (0.0, 1e-6) for m in MODES}
    assert applied_fusion(scores, "auto+vote", weights, wide) == "weighted+vote"
    assert applied_fusion(scores, "auto+vote", weights, narrow) == "zscore+vote"
    assert applied_fusion({"dense": scores["dense"]}, "auto+vote", weights, wide) is None
    assert np.array_equal(
        fuse(scores, "auto+vote", weights, spread_ranges=narrow), fuse(scores, "zscore+vote", weights)
    )


def test_fusion_names_with_the_vote() -> None:
    assert {f"{m}+vote" for m in ("weighted", "rrf", "zscore", "auto")} <= set(FUSIONS)
    assert split_fusion("auto+vote") == ("auto", True)
    assert split_fusion("rrf") == ("rrf", False)
    for bad in ("vote", "+vote", "auto+vote+vote", "Auto+vote"):
        with pytest.raises(InputError, match="unknown fusion"):
            split_fusion(bad)
    with pytest.raises(InputError, match="fusion_spreads"):
        fusion_to_use("auto+vote", "weighted", None)
    assert fusion_to_use(None, "zscore+vote", None) == "zscore+vote"


def test_the_vote_leaves_non_finite_and_tiny_inputs_alone() -> None:
    scores = {m: np.array([0.9, 0.1]) for m in MODES}
    fused = np.array([np.nan, 0.1])
    assert np.array_equal(first_place_vote(fused, scores), fused, equal_nan=True)  # the winner's is NaN
    one = {m: np.array([0.5]) for m in MODES}
    assert first_place_vote(np.array([0.5]), one).tolist() == [0.5]
    inf_best = np.array([0.2, np.inf])
    assert first_place_vote(inf_best, scores).tolist() == [0.2, np.inf]  # best not finite: unchanged
