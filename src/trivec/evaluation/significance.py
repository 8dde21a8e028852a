"""Paired comparison of two scoring modes (or two models) on the same queries.

A retrieval set of a few hundred questions where dense already scores 97 tells two modes apart by one or two
questions: a difference of means alone cannot say whether a hybrid lost to dense or drew. Each result of
`trivec eval` of a retrieval or reranking task keeps every scored query's main score per mode (`per_query`:
nDCG@10, average precision), and `paired_difference` gives the
mean difference with a 95 % paired-bootstrap interval (queries resampled with replacement, percentile
interval) and the two-sided p-value of the paired randomization test (each query's difference flips its
sign at random; Smucker, Allan & Carterette, 2007, recommend it for IR). Both are seeded, so a report
reads the same every time it is written.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from trivec.errors import InputError

ROUNDS = 10_000
LEVEL = 0.95


@dataclass(frozen=True)
class PairedDifference:
    """Mean of `a − b` over the paired queries, its bootstrap interval and randomization-test p-value."""

    mean: float
    low: float
    high: float
    p_value: float
    queries: int

    def describe(self, scale: float = 100.0) -> str:
        """`+0.13 [-0.20, +0.45] p 0.420` (× `scale`; `p < 0.001` below that), the form the reports print."""
        p = "p < 0.001" if self.p_value < 0.001 else f"p {self.p_value:.3f}"
        return f"{scale * self.mean:+.2f} [{scale * self.low:+.2f}, {scale * self.high:+.2f}] {p}"


def paired_difference(
    a: Sequence[float] | np.ndarray,
    b: Sequence[float] | np.ndarray,
    rounds: int = ROUNDS,
    level: float = LEVEL,
    seed: int = 0,
) -> PairedDifference:
    """Compare per-query scores `a` and `b` (same queries, same order)."""
    first = np.asarray(a, dtype=np.float64)
    second = np.asarray(b, dtype=np.float64)
    if first.ndim != 1 or first.shape != second.shape:
        raise InputError(
            f"paired scores need two lists of the same length, got {first.shape} and {second.shape}"
        )
    if first.size == 0:
        raise InputError("paired scores need at least one query")
    if not (np.isfinite(first).all() and np.isfinite(second).all()):
        raise InputError("paired scores must be finite numbers")
    if rounds < 1:
        raise InputError(f"rounds must be >= 1, got {rounds}")
    if not 0.0 < level < 1.0:
        raise InputError(f"level must be between 0 and 1, got {level}")
    diff = first - second
    rng = np.random.default_rng(seed)
    means = np.empty(rounds)
    flipped = np.empty(rounds)
    for start in range(0, rounds, 500):  # in blocks: rounds × queries draws would not fit for large sets
        stop = min(rounds, start + 500)
        picks = rng.integers(0, diff.size, size=(stop - start, diff.size))
        means[start:stop] = diff[picks].mean(axis=1)
        signs = 2.0 * rng.integers(0, 2, size=(stop - start, diff.size)) - 1.0
        flipped[start:stop] = (signs * diff).mean(axis=1)
    tail = (1.0 - level) / 2
    low, high = np.quantile(means, [tail, 1.0 - tail])
    observed = abs(float(diff.mean()))
    # the observed assignment counts as one of the permutations, so p is never 0 (and exactly 1 for no difference)
    extreme = int(np.count_nonzero(np.abs(flipped) >= observed - 1e-12))
    return PairedDifference(
        mean=float(diff.mean()),
        low=float(low),
        high=float(high),
        p_value=(extreme + 1) / (rounds + 1),
        queries=int(diff.size),
    )


def mode_differences(
    result: Mapping[str, Any], baseline: str = "dense", rounds: int = ROUNDS
) -> dict[str, PairedDifference]:
    """Every other mode of one `trivec eval` result against `baseline`, paired over its judged queries
    (empty when the result has no per-query values or no `baseline`: results written before they were kept,
    a task type that keeps none)."""
    per_query = result.get("per_query") or {}
    values: Mapping[str, Sequence[float]] = per_query.get("values", {})
    if baseline not in values:
        return {}
    return {
        mode: paired_difference(scores, values[baseline], rounds=rounds)
        for mode, scores in values.items()
        if mode != baseline
    }
