"""Paired comparison of two scoring modes on the same queries.

A retrieval set of a few hundred questions where dense already scores 97 tells two modes apart by one or two
questions: a difference of means alone cannot say whether a hybrid lost to dense or drew. Each result of
`trivec eval` of a retrieval or reranking task keeps every scored query's main score per mode (`per_query`:
nDCG@10, average precision), and `paired_difference` gives the mean difference with a paired-bootstrap
interval (queries resampled with replacement, percentile interval, `LEVEL`) and the two-sided p-value of the
paired randomization test (each query's difference flips its sign at random). Both assume nothing about how
the differences are distributed, which per-query scores (bounded, tied, often zero) would break. Only the
queries whose scores differ carry the test: with k of them, no p can be below 2 / 2^k (4 changed questions:
0.125), so each comparison says how many differ, and with k ≤ `EXACT_UP_TO` the test enumerates every sign
assignment (exact p) instead of sampling them. Sampling is seeded, so a report reads the same every time it
is written. The p-values are per comparison, not corrected for the many a report prints.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from trivec.errors import InputError

ROUNDS = 10_000
LEVEL = 0.95
EXACT_UP_TO = 16  # changed queries up to which the randomization test enumerates all 2^k sign assignments
DRAWS_PER_BLOCK = 4_000_000  # bootstrap indices drawn at once (32 MB), whatever the number of queries
NO_PER_QUERY = "no per-query values: written before they were kept"


@dataclass(frozen=True)
class PairedDifference:
    """Mean of `a − b` over the paired queries, its bootstrap interval, the randomization test's p-value
    (`exact`: from every sign assignment, else from `rounds` sampled ones) and how many queries differ."""

    mean: float
    low: float
    high: float
    p_value: float
    queries: int
    changed: int
    exact: bool

    def describe(self, scale: float = 100.0) -> str:
        """`+0.13 [-0.20, +0.45] p 0.420, 10 differ` (× `scale`; `p < 0.001` below that), as reports print it."""
        p = "p < 0.001" if self.p_value < 0.001 else f"p {self.p_value:.3f}"
        return f"{scale * self.mean:+.2f} [{scale * self.low:+.2f}, {scale * self.high:+.2f}] {p}, {self.changed} differ"


def paired_difference(
    a: Sequence[float] | np.ndarray,
    b: Sequence[float] | np.ndarray,
    rounds: int = ROUNDS,
    level: float = LEVEL,
    seed: int = 0,
) -> PairedDifference:
    """Compare per-query scores `a` and `b` (one number per query, same queries in the same order): the mean
    of `a − b` in the scores' own scale (nDCG 0–1: × 100 for points), its bootstrap interval at `level`, the
    randomization test's p (`rounds` draws each, `seed`ed) and how many queries differ."""
    first, second = _scores(a, "paired scores a"), _scores(b, "paired scores b")
    if first.shape != second.shape:
        raise InputError(
            f"paired scores need as many values in a as in b, got {first.size} and {second.size}"
        )
    if first.size == 0:
        raise InputError("paired scores need at least one query")
    if rounds < 1:
        raise InputError(f"rounds must be >= 1, got {rounds}")
    if not 0.0 < level < 1.0:
        raise InputError(f"level must be between 0 and 1, got {level}")
    diff = first - second
    rng = np.random.default_rng(seed)
    low, high = bootstrap_interval(diff, rounds, level, rng)
    changed = diff[diff != 0.0]
    p_value, exact = randomization_p(changed, rounds, rng)
    return PairedDifference(
        mean=float(diff.mean()),
        low=low,
        high=high,
        p_value=p_value,
        queries=int(diff.size),
        changed=int(changed.size),
        exact=exact,
    )


def _scores(values: object, name: str) -> np.ndarray:
    """`values` as a flat float array, or an `InputError` that says, of `name`, why not."""
    array = None
    if not isinstance(values, (str, bytes, Mapping)) and values is not None:
        try:  # lists, arrays, tensors, series: anything numpy reads as an array
            array = np.asarray(values)
        except (ValueError, TypeError, RuntimeError):  # ragged nesting, objects numpy cannot read
            array = None
    if array is None or array.ndim != 1:
        raise InputError(f"{name} must be a flat list of numbers, one per query")
    if array.size and array.dtype.kind not in "biuf":
        raise InputError(f"{name} holds {'text' if array.dtype.kind == 'U' else 'other things'}, not numbers")
    array = array.astype(np.float64)
    if not np.isfinite(array).all():
        raise InputError(f"{name} must hold finite numbers")
    return array


def bootstrap_interval(
    diff: np.ndarray, rounds: int, level: float, rng: np.random.Generator
) -> tuple[float, float]:
    """Percentile interval of the mean of `diff` over `rounds` resamples of its queries (with replacement)."""
    means = np.empty(rounds)
    block = max(1, DRAWS_PER_BLOCK // diff.size)
    for start in range(0, rounds, block):
        stop = min(rounds, start + block)
        means[start:stop] = diff[rng.integers(0, diff.size, size=(stop - start, diff.size))].mean(axis=1)
    tail = (1.0 - level) / 2
    low, high = np.quantile(means, [tail, 1.0 - tail])
    return float(low), float(high)


def randomization_p(changed: np.ndarray, rounds: int, rng: np.random.Generator) -> tuple[float, bool]:
    """Two-sided p of the paired randomization test from the nonzero per-query differences `changed` (a zero
    difference is the same under either sign): every sign assignment when there are at most
    `EXACT_UP_TO`, else `rounds` sampled ones with the observed one counted among them, so p is never 0.
    Returns (p, exact)."""
    if changed.size == 0:
        return 1.0, True
    observed = abs(float(changed.sum()))
    tolerance = 1e-9 * max(1.0, float(np.abs(changed).sum()))
    if changed.size <= EXACT_UP_TO:
        assignments = np.arange(2**changed.size)[:, None] >> np.arange(changed.size) & 1
        sums = np.abs((2.0 * assignments - 1.0) @ changed)
        return float(np.count_nonzero(sums >= observed - tolerance)) / sums.size, True
    extreme = 0
    block = max(1, DRAWS_PER_BLOCK // changed.size)
    for start in range(0, rounds, block):
        signs = 2.0 * rng.integers(0, 2, size=(min(rounds, start + block) - start, changed.size)) - 1.0
        extreme += int(np.count_nonzero(np.abs(signs @ changed) >= observed - tolerance))
    return (extreme + 1) / (rounds + 1), False


@dataclass(frozen=True, eq=False)
class PerQuery:
    """A result's `per_query` block, checked (`read_per_query`): the metric, the query ids (as text, distinct,
    at least one) and one array of scores per mode aligned on them, so the pairings below need no checks."""

    metric: str
    query_ids: tuple[str, ...]
    values: dict[str, np.ndarray]

    def against(self, baseline: str = "dense", rounds: int = ROUNDS) -> dict[str, PairedDifference]:
        """Every other mode against `baseline` over these queries (empty when `baseline` was not scored)."""
        if baseline not in self.values:
            return {}
        return {
            mode: paired_difference(scores, self.values[baseline], rounds=rounds)
            for mode, scores in self.values.items()
            if mode != baseline
        }

    def problem_with(self, other: PerQuery | None, other_name: str = "the other result") -> str | None:
        """Why these values cannot be paired query by query with `other`'s (None: they can): it keeps none,
        they keep other metrics, or they scored other queries."""
        if other is None:
            return f"{other_name} keeps no per-query values"
        if self.metric != other.metric:
            return f"other metric ({self.metric} vs {other.metric})"
        ids, other_ids = set(self.query_ids), set(other.query_ids)
        if ids != other_ids:
            return f"other queries ({len(ids)} vs {len(other_ids)}, {len(ids & other_ids)} shared)"
        return None

    def paired_with(self, other: PerQuery | None, rounds: int = ROUNDS) -> dict[str, PairedDifference]:
        """Each mode both keep, `self` − `other`, paired by query id; empty when `problem_with` finds one."""
        if other is None or self.problem_with(other):
            return {}
        position = {q: i for i, q in enumerate(other.query_ids)}
        order = np.array([position[q] for q in self.query_ids], dtype=np.int64)
        return {
            mode: paired_difference(values, other.values[mode][order], rounds=rounds)
            for mode, values in self.values.items()
            if mode in other.values
        }


def mode_differences(
    result: Mapping[str, Any], baseline: str = "dense", rounds: int = ROUNDS
) -> dict[str, PairedDifference]:
    """Every other mode of one `trivec eval` result against `baseline`, paired over its scored queries
    (empty when the result has no per-query values or no `baseline`: results written before they were kept,
    a task type that keeps none, a run without that mode)."""
    block = read_per_query(result)
    return block.against(baseline, rounds) if block else {}


def run_differences(
    result: Mapping[str, Any], other: Mapping[str, Any], rounds: int = ROUNDS
) -> dict[str, PairedDifference]:
    """Each mode two results of one task have in common, `result` − `other` (two models, or one model at two
    settings), paired by query id; empty when either keeps no per-query values, they keep other metrics or
    they scored other queries."""
    mine, theirs = read_per_query(result), read_per_query(other)
    return mine.paired_with(theirs, rounds) if mine else {}


def pairing_problem(
    result: Mapping[str, Any], other: Mapping[str, Any], other_name: str = "the other result"
) -> str | None:
    """Why two results of one task cannot be paired query by query (None: they can): one keeps no
    per-query values, they keep other metrics, or they scored other queries."""
    mine, theirs = read_per_query(result), read_per_query(other)
    return mine.problem_with(theirs, other_name) if mine else NO_PER_QUERY


def per_query_values(result: Mapping[str, Any]) -> dict[str, np.ndarray]:
    """The checked per-query scores of a `trivec eval` result, one array per mode (`read_per_query`); `{}`
    when the result has none."""
    block = read_per_query(result)
    return block.values if block else {}


def read_per_query(result: Mapping[str, Any]) -> PerQuery | None:
    """The `per_query` block of a `trivec eval` result, checked: `InputError` naming what is wrong with it
    (its shape, or values whose mean is not the main score); None when the result has none."""
    block = result.get("per_query")
    if block is None:
        return None
    if not isinstance(block, Mapping) or not isinstance(block.get("values"), Mapping):
        raise InputError("per_query: expected an object with 'metric', 'query_ids' and 'values' per mode")
    ids = block.get("query_ids")
    if (
        not isinstance(block.get("metric"), str)
        or not isinstance(ids, list)
        or len(set(map(str, ids))) != len(ids)
    ):
        raise InputError("per_query: 'metric' must be a name and 'query_ids' a list of distinct ids")
    if not ids:
        raise InputError("per_query: 'query_ids' is empty: a paired comparison needs at least one query")
    out = {}
    for mode, values in block["values"].items():
        array = _scores(values, f"per_query: the values of {mode!r}")
        if array.shape != (len(ids),):
            raise InputError(
                f"per_query: {mode!r} needs one value per query id ({len(ids)}), has {array.size}"
            )
        out[str(mode)] = array
    _check_main_score(result.get("main_score"), block["metric"], out)
    return PerQuery(block["metric"], tuple(map(str, ids)), out)


def _check_main_score(main: object, metric: str, values: Mapping[str, np.ndarray]) -> None:
    """`InputError` unless each mode's per-query values average its main score (when the result has one):
    values that are not the ones the score was taken over would pair something else."""
    if not isinstance(main, Mapping) or not isinstance(main.get("values"), Mapping):
        return
    if main.get("metric") != metric:
        raise InputError(f"per_query: metric {metric!r} is not the main score {main.get('metric')!r}")
    for mode, array in values.items():
        expected = main["values"].get(mode)
        if expected is None:
            continue
        if not isinstance(expected, (int, float)):
            raise InputError(f"main_score: the value of {mode!r} is not a number")
        if not abs(float(array.mean()) - float(expected)) <= 1e-5:  # so a NaN main score fails too
            raise InputError(
                f"per_query: the values of {mode!r} average {array.mean():.6f}, "
                f"not its main score {float(expected):.6f}"
            )
