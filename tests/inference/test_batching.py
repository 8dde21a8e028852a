"""Token-budget batching plan: every input once, budget respected, longest first."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from trivec.inference.batching import ATTENTION_BUDGET_FACTOR, plan_batches


@given(
    lengths=st.lists(st.integers(min_value=1, max_value=9000), max_size=200),
    budget=st.integers(min_value=1, max_value=50000),
    max_batch=st.integers(min_value=1, max_value=64),
)
def test_plan_covers_inputs_once_and_respects_budget(lengths: list[int], budget: int, max_batch: int) -> None:
    batches = plan_batches(lengths, budget, max_batch)
    flat = [i for batch in batches for i in batch]
    assert sorted(flat) == list(range(len(lengths)))
    for batch in batches:
        width = max(lengths[i] for i in batch)
        assert len(batch) <= max_batch
        if len(batch) > 1:  # a single over-long text runs alone
            assert len(batch) * width <= budget
            assert len(batch) * width * width <= budget * ATTENTION_BUDGET_FACTOR
        assert lengths[batch[0]] == width  # sorted longest first


def test_invalid_budget() -> None:
    with pytest.raises(ValueError, match="batch_tokens"):
        plan_batches([3], 0)
