"""Properties of the wire format: float and base64 round-trips, `dimensions`, and input parsing."""

from __future__ import annotations

import base64
import json

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from pydantic import ValidationError

from trivec.serving.render import render_embeddings
from trivec.serving.schemas import EmbeddingsRequest

finite = st.floats(-1e6, 1e6, allow_nan=False, allow_infinity=False, width=32)
matrices = st.integers(1, 5).flatmap(
    lambda n: st.integers(1, 40).flatmap(lambda d: arrays(np.float32, (n, d), elements=finite))
)


@settings(max_examples=60, deadline=None)
@given(matrices)
def test_float_and_base64_round_trip_exactly(vectors: np.ndarray) -> None:
    as_float = json.loads(render_embeddings(vectors, "float", "m", 7, None, normalize=False))
    as_b64 = json.loads(render_embeddings(vectors, "base64", "m", 7, None, normalize=False))
    floats = np.array([d["embedding"] for d in as_float["data"]], dtype=np.float32)
    packed = np.stack([np.frombuffer(base64.b64decode(d["embedding"]), dtype="<f4") for d in as_b64["data"]])
    np.testing.assert_array_equal(floats, vectors)
    np.testing.assert_array_equal(packed, vectors)
    assert as_float["usage"] == {"prompt_tokens": 7, "total_tokens": 7}
    assert [d["index"] for d in as_b64["data"]] == list(range(len(vectors)))


@settings(max_examples=60, deadline=None)
@given(matrices, st.integers(1, 40))
def test_dimensions_truncate_then_renormalise(vectors: np.ndarray, dimensions: int) -> None:
    body = json.loads(render_embeddings(vectors, "float", "m", 0, dimensions, normalize=True))
    got = np.array([d["embedding"] for d in body["data"]], dtype=np.float64)
    keep = min(dimensions, vectors.shape[1])
    assert got.shape == (len(vectors), keep)
    prefix = vectors[:, :keep].astype(np.float64)
    norms = np.linalg.norm(prefix, axis=1)
    for row, want, norm in zip(got, prefix, norms, strict=True):
        if keep < vectors.shape[1] and norm > 1e-3:
            assert abs(np.linalg.norm(row) - 1) < 1e-5
            np.testing.assert_allclose(row * norm, want, rtol=1e-4, atol=1e-3 * norm)
        elif keep == vectors.shape[1]:
            # full size: returned as computed (JSON numbers parse back to the same float32)
            np.testing.assert_array_equal(row.astype(np.float32), want.astype(np.float32))


@given(st.lists(st.text(max_size=30), min_size=1, max_size=8))
def test_any_list_of_strings_parses_in_order(texts: list[str]) -> None:
    assert EmbeddingsRequest.model_validate({"input": texts}).input == texts
    assert EmbeddingsRequest.model_validate({"input": texts[0]}).input == texts[:1]


@given(
    st.lists(
        st.one_of(
            st.integers(), st.floats(allow_nan=False), st.none(), st.booleans(), st.lists(st.integers())
        ),
        min_size=1,
        max_size=5,
    )
)
def test_non_string_items_are_refused(items: list[object]) -> None:
    with pytest.raises(ValidationError):
        EmbeddingsRequest.model_validate({"input": ["ok", *items]})
