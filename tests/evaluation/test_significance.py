"""Paired comparisons: the bootstrap interval and randomization test on cases whose answer is known, and
their properties (order of the pair, shifts, seeding)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from trivec.errors import InputError
from trivec.evaluation.significance import (
    mode_differences,
    paired_difference,
    pairing_problem,
    read_per_query,
    run_differences,
)

SCORES = st.lists(st.floats(0.0, 1.0, allow_nan=False), min_size=1, max_size=60)


@settings(max_examples=40, deadline=None)
@given(SCORES)
def test_a_mode_against_itself_differs_by_nothing(values: list[float]) -> None:
    same = paired_difference(values, values, rounds=200)
    assert (same.mean, same.low, same.high, same.p_value) == (0.0, 0.0, 0.0, 1.0)
    assert same.queries == len(values) and same.changed == 0 and same.exact


@settings(max_examples=40, deadline=None)
@given(st.data())
def test_swapping_the_pair_negates_the_difference_and_keeps_p(data: st.DataObject) -> None:
    a = data.draw(SCORES)
    b = data.draw(st.lists(st.floats(0.0, 1.0, allow_nan=False), min_size=len(a), max_size=len(a)))
    ab = paired_difference(a, b, rounds=300, seed=3)
    ba = paired_difference(b, a, rounds=300, seed=3)
    assert ba.mean == pytest.approx(-ab.mean, abs=1e-12)
    # the same draws, negated: the interval mirrors and the two-sided p is the same
    assert ba.low == pytest.approx(-ab.high, abs=1e-12) and ba.high == pytest.approx(-ab.low, abs=1e-12)
    assert ba.p_value == pytest.approx(ab.p_value)
    assert ab.low <= ab.high and 0.0 < ab.p_value <= 1.0


@settings(max_examples=30, deadline=None)
@given(SCORES, st.floats(-0.5, 0.5, allow_nan=False))
def test_a_constant_gain_is_the_interval_itself(values: list[float], gain: float) -> None:
    shifted = [v + gain for v in values]
    result = paired_difference(shifted, values, rounds=200)
    assert result.mean == pytest.approx(gain, abs=1e-9)
    assert result.low == pytest.approx(gain, abs=1e-9) and result.high == pytest.approx(gain, abs=1e-9)


def test_a_clear_gain_is_significant_and_a_single_flip_is_not() -> None:
    rng = np.random.default_rng(1)
    base = rng.uniform(0.3, 0.9, size=400)
    better = paired_difference(base + 0.05 + rng.normal(0, 0.02, 400), base)
    assert better.low > 0.04 and better.high < 0.06 and better.p_value < 0.001
    assert better.describe().endswith("] p < 0.001, 400 differ") and not better.exact
    # 112 questions at the ceiling, one of them moved from rank 1 to rank 2 (nDCG 1 → 0.63)
    ceiling = np.ones(112)
    one_lost = ceiling.copy()
    one_lost[7] = 1 / np.log2(3)
    flip = paired_difference(one_lost, ceiling)
    assert flip.mean == pytest.approx(-(1 - 1 / np.log2(3)) / 112)
    assert flip.high == 0.0 and flip.p_value == 1.0  # one changed query: every sign flip is as extreme
    assert flip.describe() == f"-0.33 [{100 * flip.low:+.2f}, +0.00] p 1.000, 1 differ" and flip.low < -0.0066


def test_few_changed_queries_get_the_exact_p_of_every_sign_assignment() -> None:
    # three queries each 1 better: of the 8 sign assignments, all-plus and all-minus are as extreme → 2 / 8
    three = paired_difference([1.0, 1.0, 1.0, 0.5], [0.0, 0.0, 0.0, 0.5])
    assert three.exact and three.changed == 3 and three.p_value == pytest.approx(0.25)
    # +3, +1, −1: |sum| ≥ 3 for ±(3 + 1 − 1), ±(3 − 1 + 1), ±(3 + 1 + 1) → 6 / 8
    mixed = paired_difference([3.0, 1.0, 0.0], [0.0, 0.0, 1.0])
    assert mixed.p_value == pytest.approx(6 / 8)
    # sixteen changed: still exact, 2 / 2^16 the least p; seventeen: sampled, (extreme + 1) / (rounds + 1)
    assert paired_difference(np.ones(16), np.zeros(16)).p_value == pytest.approx(2 / 2**16)
    sampled = paired_difference(np.ones(17), np.zeros(17), rounds=999)
    assert not sampled.exact and sampled.p_value == pytest.approx(1 / 1000)


def test_the_bootstrap_interval_is_the_percentile_interval_of_resampled_means() -> None:
    # two queries, differences 0 and 1: resampled means 0, 0.5, 1 with probability 1/4, 1/2, 1/4
    both = paired_difference([0.0, 1.0], [0.0, 0.0], rounds=4000)
    assert (both.low, both.high) == (0.0, 1.0)
    narrow = paired_difference([0.0, 1.0], [0.0, 0.0], rounds=4000, level=0.4)  # the middle 40 %: 0.5 only
    assert (narrow.low, narrow.high) == (0.5, 0.5)


def test_the_same_seed_gives_the_same_numbers() -> None:
    a, b = np.linspace(0, 1, 50), np.linspace(0, 1, 50) ** 2
    assert paired_difference(a, b, seed=5) == paired_difference(a, b, seed=5)


@pytest.mark.parametrize(
    ("a", "b", "rounds", "level", "message"),
    [
        ([1.0, 2.0], [1.0], 100, 0.95, "as many values in a as in b, got 2 and 1"),
        ([], [], 100, 0.95, "at least one query"),
        ([1.0, float("nan")], [1.0, 1.0], 100, 0.95, "paired scores a must hold finite numbers"),
        ([[1.0, 2.0]], [[1.0, 2.0]], 100, 0.95, "paired scores a must be a flat list of numbers"),
        ([1.0], 1.0, 100, 0.95, "paired scores b must be a flat list"),
        ([1.0], None, 100, 0.95, "paired scores b must be a flat list"),
        (["0.5"], [1.0], 100, 0.95, "paired scores a holds text, not numbers"),
        ([{"q": 1}], [1.0], 100, 0.95, "paired scores a holds other things"),
        ([[1.0], [1.0, 2.0]], [1.0, 2.0], 100, 0.95, "paired scores a must be a flat list"),
        ([1.0], [1.0], 0, 0.95, "rounds must be >= 1"),
        ([1.0], [1.0], 100, 1.0, "level must be between 0 and 1"),
    ],
)
def test_bad_input_is_named(a: object, b: object, rounds: int, level: float, message: str) -> None:
    with pytest.raises(InputError, match=message):
        paired_difference(a, b, rounds=rounds, level=level)


def test_mode_differences_read_a_result_and_skip_one_without_values() -> None:
    result = {
        "per_query": {
            "metric": "ndcg_at_10",
            "query_ids": ["q1", "q2", "q3"],
            "values": {"dense": [1.0, 0.5, 0.0], "all": [1.0, 1.0, 0.5], "bm25": [0.0, 0.5, 0.0]},
        }
    }
    differences = mode_differences(result, rounds=500)
    assert set(differences) == {"all", "bm25"}
    assert differences["all"].mean == pytest.approx(1 / 3) and differences["all"].queries == 3
    assert differences["bm25"].mean == pytest.approx(-1 / 3)
    assert mode_differences({"main_score": {}}) == {}  # a result written before per-query values were kept
    assert mode_differences(result, baseline="colbert") == {}


def test_arrays_tensors_and_lists_are_all_read_as_scores() -> None:
    import torch

    from_tensor = paired_difference(torch.tensor([1.0, 0.5]), np.array([0.5, 0.5]))
    assert from_tensor == paired_difference([1.0, 0.5], [0.5, 0.5])
    with pytest.raises(InputError, match="paired scores a must be a flat list"):
        paired_difference({"q1": 1.0}, [1.0])


def test_a_result_whose_main_score_is_not_a_number_is_named() -> None:
    result = {
        "main_score": {"metric": "ndcg_at_10", "values": {"dense": "high"}},
        "per_query": {"metric": "ndcg_at_10", "query_ids": ["q1"], "values": {"dense": [1.0]}},
    }
    with pytest.raises(InputError, match="main_score: the value of 'dense' is not a number"):
        mode_differences(result)


def _kept(ids: list[str], dense: list[float], main: float | None = None) -> dict:
    """A result keeping per-query dense nDCG@10 over `ids` (with a main score of `main` when given)."""
    result: dict = {"per_query": {"metric": "ndcg_at_10", "query_ids": ids, "values": {"dense": dense}}}
    if main is not None:
        result["main_score"] = {"metric": "ndcg_at_10", "values": {"dense": main}}
    return result


def test_a_block_without_queries_or_with_a_nan_main_score_is_named() -> None:
    with pytest.raises(InputError, match="'query_ids' is empty"):
        mode_differences(_kept([], [], main=0.5))  # its mean is NaN: no main score check would catch it
    with pytest.raises(InputError, match=r"average 0\.500000, not its main score nan"):
        mode_differences(_kept(["q1", "q2"], [1.0, 0.0], main=float("nan")))
    block = read_per_query(_kept(["q1", 2], [1.0, 0.0], main=0.5))
    assert block is not None and block.query_ids == ("q1", "2") and block.metric == "ndcg_at_10"


@pytest.mark.parametrize("broken", [[1, 2], {"values": {}}, {"metric": "map", "values": [1.0]}])
def test_pairing_two_results_checks_both_blocks_first(broken: object) -> None:
    good = _kept(["q1", "q2"], [1.0, 0.0])
    for first, second in ((good, {"per_query": broken}), ({"per_query": broken}, good)):
        with pytest.raises(InputError, match="per_query: "):
            run_differences(first, second)
        with pytest.raises(InputError, match="per_query: "):
            pairing_problem(first, second)


def test_two_results_pair_by_query_id_or_say_why_not() -> None:
    mine = _kept(["q1", "q2", "q3"], [1.0, 0.5, 0.0])
    theirs = _kept(["q3", "q1", "q2"], [0.0, 0.5, 0.5])
    differences = run_differences(mine, theirs, rounds=200)
    assert differences["dense"].mean == pytest.approx(0.5 / 3) and differences["dense"].changed == 1
    assert pairing_problem(mine, theirs) is None
    assert pairing_problem(mine, {}, "b") == "b keeps no per-query values" and run_differences(mine, {}) == {}
    assert pairing_problem({}, mine).startswith("no per-query values") and run_differences({}, mine) == {}
    other = _kept(["q1", "q2", "x"], [1.0, 0.5, 0.0])
    assert pairing_problem(mine, other) == "other queries (3 vs 3, 2 shared)"
    assert run_differences(mine, other) == {}
