"""Properties of fusion and merging (hypothesis)."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from trivec.inference.scoring import hybrid_scores
from trivec.retrieval import fuse, merge_top_k, rrf_scores, top_k
from trivec.retrieval.fusion import ranks

finite = st.floats(-10, 10, allow_nan=False, allow_infinity=False, width=32)
vectors = st.integers(1, 40).flatmap(
    lambda n: st.tuples(*(arrays(np.float64, n, elements=finite) for _ in range(3)))
)


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


@given(vectors, st.tuples(st.floats(0.01, 5), st.floats(0.01, 5), st.floats(0.01, 5)))
def test_weighted_fusion_is_the_reference_weighted_mean(
    triple: tuple[np.ndarray, ...], w: tuple[float, ...]
) -> None:
    scores = dict(zip(("dense", "sparse", "colbert"), triple, strict=True))
    weights = dict(zip(("dense", "sparse", "colbert"), w, strict=True))
    fused = fuse(scores, "weighted", weights)
    manual = sum(weights[m] * scores[m] for m in scores) / sum(weights.values())
    assert np.allclose(fused, manual)
    assert np.allclose(fused, hybrid_scores(scores, weights))
    # a convex combination lies between the per-mode extremes
    stacked = np.stack(triple)
    assert np.all(fused <= stacked.max(axis=0) + 1e-9) and np.all(fused >= stacked.min(axis=0) - 1e-9)


@given(vectors)
def test_rrf_ignores_monotone_rescaling(triple: tuple[np.ndarray, ...]) -> None:
    scores = dict(zip(("dense", "sparse", "colbert"), triple, strict=True))
    rescaled = {m: np.cbrt(v) * 8.0 for m, v in scores.items()}  # strictly increasing, no collapsed values
    assert np.allclose(rrf_scores(scores), rrf_scores(rescaled))


@given(vectors)
def test_fusion_is_permutation_equivariant(triple: tuple[np.ndarray, ...]) -> None:
    n = triple[0].shape[0]
    perm = np.random.default_rng(n).permutation(n)
    scores = dict(zip(("dense", "sparse", "colbert"), triple, strict=True))
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
