"""EncodeResult's row operations: slices, picks and joins keep every output aligned with its text."""

from __future__ import annotations

from dataclasses import fields

import numpy as np
from hypothesis import given
from hypothesis import strategies as st

from trivec.inference.results import PER_TEXT, EncodeResult
from trivec.inference.sparse import SparseVector


def result(n: int) -> EncodeResult:
    """n texts with every output filled, each text's items marked with its number."""
    return EncodeResult(
        dense=np.repeat(np.arange(n, dtype=np.float32)[:, None], 4, axis=1),
        sparse=[SparseVector(np.array([i], np.int64), np.array([1.0], np.float32)) for i in range(n)],
        colbert=[np.full((i + 1, 3), i, np.float32) for i in range(n)],
        colbert_codes=[(np.full((i + 1, 2), i, np.uint8), None) for i in range(n)],
        num_tokens=list(range(n)),
        hidden_states=[np.full((i + 1, 5), i, np.float32) for i in range(n)],
    )


def texts_of(encoded: EncodeResult) -> list[list[int]]:
    """Per text, the number every output of it carries (all equal when the outputs are aligned)."""
    out = []
    for i in range(len(encoded)):
        marks = [int(encoded.dense[i, 0]), int(encoded.sparse[i].indices[0]), encoded.num_tokens[i]]
        marks += [int(encoded.colbert[i][0, 0]), int(encoded.colbert_codes[i][0][0, 0])]
        marks.append(int(encoded.hidden_states[i][0, 0]))
        out.append(marks)
    return out


def test_every_field_is_carried() -> None:
    """A field added to EncodeResult must be listed, or the row operations would drop it."""
    assert {f.name for f in fields(EncodeResult)} == {"dense", "num_tokens", *PER_TEXT}


@given(st.integers(0, 12), st.data())
def test_rows_take_and_concat_keep_texts_aligned(n: int, data: st.DataObject) -> None:
    full = result(n)
    start = data.draw(st.integers(0, n))
    stop = data.draw(st.integers(start, n))
    assert texts_of(full.rows(start, stop)) == [[i] * 6 for i in range(start, stop)]
    picked = data.draw(st.lists(st.integers(0, max(n - 1, 0)), max_size=8)) if n else []
    assert texts_of(full.take(picked)) == [[i] * 6 for i in picked]
    joined = EncodeResult.concat([full.rows(0, start), full.rows(start, stop), full.rows(stop, n)])
    assert texts_of(joined) == texts_of(full)


def test_missing_outputs_stay_missing() -> None:
    dense_only = EncodeResult(dense=np.zeros((3, 2), np.float32), num_tokens=[1, 2, 3])
    for out in (dense_only.rows(1, 3), dense_only.take([2, 0]), EncodeResult.concat([dense_only] * 2)):
        assert all(getattr(out, name) is None for name in PER_TEXT)
    assert len(EncodeResult.concat([dense_only] * 2)) == 6
    assert np.shares_memory(dense_only.rows(1, 3).dense, dense_only.dense)  # a view: ingestion copies nothing
